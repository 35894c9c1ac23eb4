"""Sessions and one-line descriptions of network errors for the pipeline.

The retry policy itself (what is retried, how often, how long) is defined once, in the light
package (``acmmg.retry``), and shared with the loader: import it from there.
"""

from __future__ import annotations

import requests
import urllib3

from acmmg.retry import describe, kind, root_text

__all__ = ["alias", "describe_error", "make_session"]


def make_session(user_agent: str | None = None) -> requests.Session:
    """A requests session without retries of its own (the policy retries) that names us."""
    from pipeline import __version__

    s = requests.Session()
    adapter = requests.adapters.HTTPAdapter(max_retries=0, pool_maxsize=16)
    s.mount("http://", adapter)
    s.mount("https://", adapter)
    s.headers["User-Agent"] = user_agent or f"acmmg-pipeline/{__version__}"
    return s


def describe_error(exc: BaseException) -> str | None:
    """One line for a network or storage error (HTTP, DNS, refused, TLS, credentials, disk),
    or None when ``exc`` is none of those (a bug: the caller shows the traceback)."""
    mod = type(exc).__module__ or ""
    if isinstance(exc, requests.RequestException | urllib3.exceptions.HTTPError):
        url = getattr(getattr(exc, "request", None), "url", None) or getattr(exc, "url", None)
        return f"{url}: {describe(exc)}" if url else describe(exc)
    if mod.startswith("httpx"):  # Prefect's client (its API server), the Hugging Face Hub
        try:
            url = str(exc.request.url)  # type: ignore[attr-defined]
        except (AttributeError, RuntimeError):
            url = None
        text = describe(exc) if kind(exc) != "other" else root_text(exc)
        return f"{url}: {text}" if url else text
    if mod.startswith(("botocore", "aiobotocore")):
        name = type(exc).__name__
        if name in ("NoCredentialsError", "PartialCredentialsError"):
            return (
                "no credentials for the object store (set AWS_ACCESS_KEY_ID and "
                "AWS_SECRET_ACCESS_KEY, or AWS_PROFILE)"
            )
        return f"object store: {root_text(exc)}"
    if isinstance(exc, OSError):  # storage: permissions, a full disk, a missing path
        return f"{type(exc).__name__}: {root_text(exc)}"
    return None


def alias(url: str, aliases: tuple[str, ...] | list[str] = ()) -> str:
    """Where to connect for ``url``: the first ``FROM=TO`` prefix pair of ``aliases`` whose
    FROM starts it is replaced by TO. A locally served sample is named by a fixed base URL in
    every file and record, and reached wherever it is served today, so what a build
    publishes does not depend on the port."""
    for pair in aliases:
        src, _, dst = pair.partition("=")
        if src and url.startswith(src):
            return dst + url[len(src) :]
    return url
