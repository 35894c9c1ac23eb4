"""Image URLs before fetching: Amazon's full-size form, and known placeholder URLs.

Amazon serves one picture under many URLs: ``<id>._AC_SL1500_.jpg``, ``<id>._SX300_SY300_QL70_
ML2_.jpg``, ``<id>.__AC_SX300_SY300_QL70_FMwebp_.jpg`` (the modifiers between the id and the
extension ask for a size, crop, quality or format), on several hosts (m.media-amazon.com,
images-na.ssl-images-amazon.com, the older ecx.images-amazon.com ...), and pages link some as
``/images/W/MEDIAX_<n>-T2/images/I/<id>...``, a form that fails where the plain one works.
``https://m.media-amazon.com/images/I/<id>.<ext>`` is the original upload, full size.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable
from urllib.parse import urlsplit, urlunsplit

FULL_SIZE_HOST = "m.media-amazon.com"
AMAZON_IMAGE_HOSTS = frozenset(
    {
        "m.media-amazon.com",
        "images-na.ssl-images-amazon.com",
        "images-eu.ssl-images-amazon.com",
        "images-fe.ssl-images-amazon.com",
        "images.amazon.com",
        "ecx.images-amazon.com",
        "g-ecx.images-amazon.com",
        "z-ecx.images-amazon.com",
    }
)
# /images/I/<id>[.<modifiers>].<ext>, optionally behind /images/W/<rendering tag>/.
_PRODUCT_IMAGE = re.compile(
    r"^(?:/images/W/[^/]+)?/images/I/(?P<id>[A-Za-z0-9+%_-]+)(?:\.[^/]*)?"
    r"\.(?P<ext>jpe?g|png|gif|webp|tiff?)$",
    re.IGNORECASE,
)


def full_size_url(url: str) -> str:
    """The full-size form of an Amazon product image URL; any other URL unchanged."""
    if "\\" in url:  # hosts are read differently by different parsers: leave to the policy
        return url
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    host = (parts.hostname or "").lower()
    if (
        parts.scheme.lower() not in ("http", "https")
        or host not in AMAZON_IMAGE_HOSTS
        or parts.netloc.lower() != host  # user info or a port: not a plain CDN URL
    ):
        return url
    m = _PRODUCT_IMAGE.match(parts.path)
    if m is None:
        return url
    path = f"/images/I/{m['id']}.{m['ext']}"
    return urlunsplit(("https", FULL_SIZE_HOST, path, parts.query, ""))


def placeholder_pattern(urls: Iterable[str], patterns: Iterable[str]) -> str | None:
    """The first pattern that one of ``urls`` matches (case-sensitive shell pattern)."""
    for p in patterns:
        if any(fnmatch.fnmatchcase(u, p) for u in urls):
            return p
    return None
