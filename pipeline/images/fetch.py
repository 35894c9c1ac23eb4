"""HTTP download of one image URL: pooled session, timeouts, retries, redirects, byte cap.

Time: ``connect_timeout`` per connect, ``read_timeout`` per socket read, and
``total_timeout`` for a whole attempt (every redirect hop: connect, TLS, headers and body),
enforced by a watchdog that shuts the socket down (deadline.py).

Retried by the one retry policy of every download (``acmmg.retry``: exponential backoff and
jitter, Retry-After respected up to ``max_retry_after``), ``retries`` times at most:
timeouts, connection resets, 429 and 5xx (501 excepted); but not an attempt that ran out of
``total_timeout``, and no retry starts past it (the whole request, all tries, stays within
it; a rerun of the stage tries again). Not retried: a refused connection, an unknown host,
TLS failures, other 4xx, policy rejections, oversized or non-image bodies. Redirects are
followed by hand so that every hop is checked against the address policy.
"""

from __future__ import annotations

import http.cookiejar
import re
import time
from dataclasses import dataclass
from urllib.parse import urljoin

import requests
from urllib3.exceptions import ReadTimeoutError

from acmmg.retry import Retry, RetryPolicy, parse_retry_after, transient_status
from acmmg.retry import is_transient as retry_rules

from .config import ImageConfig
from .deadline import Watchdog
from .safety import AddressPolicy, BlockedPeer, GuardedAdapter, UrlRejected

REDIRECT_CODES = (301, 302, 303, 307, 308)
# Statuses a later run may try again: the cause may have gone away.
TRANSIENT_STATUSES = ("timeout", "connection_error")


def is_transient(status: str, http_status: int | None) -> bool:
    """Whether a failed row is worth another try on a rerun (see fetch_images)."""
    if status in TRANSIENT_STATUSES:
        return True
    return status == "http_error" and http_status is not None and transient_status(http_status)


class _Retryable(Exception):
    """A try that failed in a way the policy retries; carries its result."""

    transient = True  # read by acmmg.retry.is_transient

    def __init__(self, result: Fetched) -> None:
        super().__init__(result.error or result.status)
        self.result = result
        self.retry_after = result.retry_after


@dataclass
class Fetched:
    status: str  # "ok" or a failure reason
    error: str | None = None
    http_status: int | None = None
    body: bytes | None = None
    attempts: int = 1
    retry_after: float | None = None  # from a 429/503 answer
    final: bool = False  # not worth another attempt in this run (see the module docstring)


_ADDR = re.compile(r"0x[0-9a-fA-F]+")


def describe(exc: BaseException) -> str:
    """A short, stable description of an exception (no object addresses), for the error column."""
    root: BaseException = exc
    seen = set()
    while True:
        nxt = root.__cause__ or root.__context__
        if nxt is None or id(nxt) in seen:
            break
        seen.add(id(nxt))
        root = nxt
    text = str(root) or type(root).__name__
    text = _ADDR.sub("", text)
    return f"{type(root).__name__}: {text}"[:300]


class Fetcher:
    """Downloads image bodies; one per process, shared by its threads."""

    def __init__(self, config: ImageConfig) -> None:
        self.config = config
        self.policy = AddressPolicy(config.allow_private)
        s = requests.Session()
        s.trust_env = False  # no proxies or .netrc: the policy checks the real peer
        s.cookies.set_policy(http.cookiejar.DefaultCookiePolicy(allowed_domains=[]))
        s.headers.update(
            {
                "User-Agent": config.user_agent,
                "Accept": "image/*,*/*;q=0.5",
                # Images are compressed already; a gzip body could also inflate past the cap.
                "Accept-Encoding": "identity",
            }
        )
        adapter = GuardedAdapter(
            self.policy,
            pool_connections=16,
            pool_maxsize=max(config.threads, 1),
            max_retries=0,  # retries are ours (they need backoff and Retry-After)
        )
        s.mount("http://", adapter)
        s.mount("https://", adapter)
        self.session = s
        self.watchdog = Watchdog()
        # The shared rules (acmmg.retry), with the image stage's own counts and waits.
        self.retry_policy = RetryPolicy(
            attempts=config.retries + 1,
            backoff=config.backoff_base,
            backoff_max=config.backoff_max,
            deadline=config.total_timeout,
            max_retry_after=config.max_retry_after,
        )

    def close(self) -> None:
        self.session.close()
        self.watchdog.close()

    def fetch(self, url: str) -> Fetched:
        """One image under the shared retry policy (``acmmg.retry``), all tries within
        ``total_timeout``: each try gets what is left of it, and no retry starts past it."""
        cfg = self.config
        start = time.monotonic()
        record: list[Retry] = []

        def once() -> Fetched:
            left = cfg.total_timeout - (time.monotonic() - start)
            res = self._attempt(url, max(left, 0.001))
            # final: a deadline run out, a refused connection, an unknown host (a rerun of
            # the stage may try them again, see is_transient)
            if not res.final and is_transient(res.status, res.http_status):
                raise _Retryable(res)
            return res

        try:
            res = self.retry_policy.call(once, what=url, record=record)
        except _Retryable as e:
            res = e.result
            if res.retry_after is not None and res.retry_after > cfg.max_retry_after:
                res.error = f"{res.error}; Retry-After {res.retry_after:.0f}s too long"
        res.attempts = len(record) + 1
        return res

    def _attempt(self, url: str, limit: float) -> Fetched:
        with self.watchdog.limit(limit) as dl:
            res = self._hops(url)
        if dl.expired:  # whatever the interrupted read made of it (EOF can look complete)
            msg = f"request not finished within {self.config.total_timeout}s"
            return Fetched("timeout", msg, res.http_status, final=True)
        return res

    def _hops(self, url: str) -> Fetched:
        cfg = self.config
        current = url
        for _hop in range(cfg.max_redirects + 1):
            try:
                current = self.policy.check_url(current)
            except UrlRejected as e:
                return Fetched(e.status, str(e))
            try:
                resp = self.session.get(
                    current,
                    stream=True,
                    allow_redirects=False,
                    timeout=(cfg.connect_timeout, cfg.read_timeout),
                )
            except BlockedPeer as e:
                return Fetched("blocked_address", str(e))
            except requests.exceptions.ConnectTimeout:
                return Fetched("timeout", f"connect timeout ({cfg.connect_timeout}s)")
            except requests.exceptions.Timeout:
                return Fetched("timeout", f"read timeout ({cfg.read_timeout}s)")
            except requests.exceptions.SSLError as e:
                return Fetched("ssl_error", describe(e))
            except requests.exceptions.ConnectionError as e:
                # Refused or unresolvable: the same answer now, so final in this run.
                return Fetched("connection_error", describe(e), final=not retry_rules(e))
            except (requests.exceptions.InvalidURL, requests.exceptions.InvalidSchema) as e:
                return Fetched("bad_url", describe(e))
            except requests.exceptions.RequestException as e:
                return Fetched("connection_error", describe(e))
            with resp:
                code = resp.status_code
                if code in REDIRECT_CODES and resp.headers.get("Location"):
                    current = urljoin(current, resp.headers["Location"])
                    continue
                return self._read(resp, code)
        return Fetched("too_many_redirects", f"more than {cfg.max_redirects} redirects")

    def _read(self, resp: requests.Response, code: int) -> Fetched:
        cfg = self.config
        if code == 404 or code == 410:
            return Fetched("http_404", f"HTTP {code}", code)
        if not 200 <= code < 300:
            ra = parse_retry_after(resp.headers.get("Retry-After")) if code in (429, 503) else None
            return Fetched("http_error", f"HTTP {code}", code, retry_after=ra)
        ctype = resp.headers.get("Content-Type", "").split(";")[0].strip().lower()
        if ctype.startswith("text/") or ctype in ("application/json", "application/xml"):
            return Fetched("not_image", f"content type {ctype}", code)
        length = resp.headers.get("Content-Length")
        if length and length.isdigit() and int(length) > cfg.max_bytes:
            return Fetched("too_large", f"Content-Length {length} > {cfg.max_bytes}", code)
        buf = bytearray()
        try:
            for chunk in resp.iter_content(chunk_size=256 * 1024):
                buf += chunk
                if len(buf) > cfg.max_bytes:
                    return Fetched("too_large", f"body over {cfg.max_bytes} bytes", code)
        except requests.exceptions.ConnectionError as e:
            # requests wraps a read timeout inside the body as a ConnectionError.
            if any(isinstance(a, ReadTimeoutError) for a in e.args):
                return Fetched("timeout", f"read timeout ({cfg.read_timeout}s)", code)
            return Fetched("connection_error", describe(e), code)
        except requests.exceptions.RequestException as e:  # chunked/content-decoding errors
            return Fetched("connection_error", describe(e), code)
        return Fetched("ok", None, code, body=bytes(buf))
