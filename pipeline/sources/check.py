"""Ask every source of the registry whether it answers, without downloading it.

Each URL of a source (the registry's URL, then its mirrors) gets a HEAD request, or a GET of
byte 0 where HEAD is refused (400, 403, 405, 501: some object stores and CDNs), following
redirects; the answer gives the size, ETag and Last-Modified. A source is reachable when one
of its URLs answers; the first that does is the one a build would download from.
"""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from urllib.parse import urlparse

import requests

from acmmg.retry import RetryPolicy, check_status, describe
from pipeline.categories import Category
from pipeline.http import make_session

HEAD_REFUSED = (400, 403, 405, 501)
CHECK_POLICY = RetryPolicy(attempts=2, backoff=0.5, deadline=20.0, max_retry_after=10.0)


@dataclass(frozen=True)
class Probe:
    """What one URL answered."""

    url: str
    ok: bool
    status: str  # "HTTP 200", "HTTP 404", "connection refused", ...
    size: int | None = None
    etag: str | None = None
    last_modified: str | None = None
    final_url: str | None = None  # where redirects ended


@dataclass(frozen=True)
class SourceCheck:
    """One source of one category: its URLs in order, and what each answered."""

    category: str
    source: str  # "reviews" or "meta"
    probes: list[Probe] = field(default_factory=list)
    generated: bool = False  # a sample category: made locally, nothing to ask
    local: bool = False  # file names, not URLs (e.g. Amazon-M2, behind a sign-in): not asked

    @property
    def answered(self) -> Probe | None:
        return next((p for p in self.probes if p.ok), None)

    @property
    def reachable(self) -> bool:
        return self.generated or self.local or self.answered is not None


def _size(resp: requests.Response) -> int | None:
    for r in [*resp.history, resp]:  # the Hugging Face Hub states the size on its redirect
        if r.headers.get("X-Linked-Size", "").isdigit():
            return int(r.headers["X-Linked-Size"])
    m = re.match(r"bytes \d+-\d+/(\d+)", resp.headers.get("Content-Range", ""))
    if m:
        return int(m.group(1))
    length = resp.headers.get("Content-Length", "")
    return int(length) if length.isdigit() and resp.status_code == 200 else None


def probe(url: str, session: requests.Session | None = None, timeout: float = 20.0) -> Probe:
    """HEAD ``url`` (a GET of byte 0 where HEAD is refused); never reads the body."""
    sess = session or make_session()

    def ask() -> requests.Response:
        r = sess.head(url, allow_redirects=True, timeout=(10.0, timeout))
        if r.status_code in HEAD_REFUSED:
            r.close()
            r = sess.get(
                url,
                headers={"Range": "bytes=0-0", "Accept-Encoding": "identity"},
                allow_redirects=True,
                stream=True,
                timeout=(10.0, timeout),
            )
            r.close()  # the headers are all we want
        return check_status(r, url)

    try:
        r = CHECK_POLICY.call(ask, what=url)
    except requests.RequestException as e:
        return Probe(url, False, describe(e))
    etag = next(
        (h.headers["X-Linked-Etag"] for h in r.history if "X-Linked-Etag" in h.headers), None
    )
    return Probe(
        url,
        True,
        f"HTTP {r.status_code}",
        size=_size(r),
        etag=etag or r.headers.get("ETag"),
        last_modified=r.headers.get("Last-Modified"),
        final_url=r.url if r.url != url else None,
    )


def check_category(cat: Category, session: requests.Session | None = None) -> list[SourceCheck]:
    """The checks of one category's sources (URLs asked in order until one answers)."""
    out = []
    for source, urls in cat.sources().items():
        if cat.source == "sample":
            out.append(SourceCheck(cat.slug, source, generated=True))
            continue
        if not all(urlparse(u).scheme for u in urls):
            out.append(SourceCheck(cat.slug, source, local=True))
            continue
        probes = []
        for url in urls:
            probes.append(probe(url, session))
            if probes[-1].ok:
                break
        out.append(SourceCheck(cat.slug, source, probes))
    return out


def check_sources(categories: list[Category], workers: int = 8) -> list[SourceCheck]:
    """``check_category`` for each category, a few at a time, in the given order."""
    session = make_session()
    with ThreadPoolExecutor(max(1, workers)) as pool:
        results = list(pool.map(lambda c: check_category(c, session), categories))
    return [check for checks in results for check in checks]
