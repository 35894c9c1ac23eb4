"""One retry policy for every HTTP download, and one-line descriptions of network errors.

Retried, with exponential backoff and jitter, within a bounded number of tries and time:
timeouts, connections reset or closed early, HTTP 429 (its Retry-After honoured) and 5xx
(501 Not Implemented excepted). Not retried, because another try gets the same answer: a
refused connection, a host name that does not resolve, a failed TLS handshake, any other
4xx. Every retry is logged with the URL, the reason and the wait.

    policy = RetryPolicy.from_env()            # ACMMG_FETCH_RETRIES retries after the first try
    body = policy.call(lambda: get_bytes(url), what=url)

``call`` re-raises the last error; ``describe(exc)`` says in one line what it was. Callers
that read bodies (resuming with Range) put the whole attempt, request and body, in the
function they pass, so a connection dropped mid-body is retried by the same rules.
"""

from __future__ import annotations

import email.utils
import http.client
import logging
import os
import random
import socket
import ssl
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import TypeVar
from urllib.parse import urlparse

import requests
import tenacity
import urllib3

log = logging.getLogger(__name__)
T = TypeVar("T")


class HttpStatusError(requests.HTTPError):
    """A response with a status >= 400; carries the status and the Retry-After (seconds)."""

    def __init__(self, url: str, status: int, reason: str = "", retry_after: float | None = None):
        self.url = url
        self.status = status
        self.reason = reason
        self.retry_after = retry_after
        super().__init__(f"HTTP {status} {reason}".strip())


class IncompleteBody(IOError):
    """The body ended before the length the server announced (a dropped connection)."""


def parse_retry_after(value: str | None) -> float | None:
    """Seconds to wait from a Retry-After header (delta seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return None if when is None else max(0.0, when.timestamp() - time.time())


def check_status(resp: requests.Response, url: str | None = None) -> requests.Response:
    """``resp`` if its status is below 400, else an HttpStatusError (Retry-After parsed)."""
    if resp.status_code >= 400:
        raise HttpStatusError(
            url or resp.url,
            resp.status_code,
            resp.reason or "",
            parse_retry_after(resp.headers.get("Retry-After")),
        )
    return resp


def transient_status(status: int) -> bool:
    """Whether an HTTP status is worth another try: 429 and 5xx but 501."""
    return status == 429 or (status >= 500 and status != 501)


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and every exception inside it (causes, contexts, urllib3 reasons, args)."""
    todo, seen = [exc], set()
    while todo:
        e = todo.pop(0)
        if id(e) in seen:
            continue
        seen.add(id(e))
        yield e
        inner = [e.__cause__, e.__context__, getattr(e, "reason", None), *e.args]
        todo.extend(x for x in inner if isinstance(x, BaseException))


def _status(exc: BaseException) -> int | None:
    """The HTTP status of an HttpStatusError, or of requests' raise_for_status error."""
    if isinstance(exc, HttpStatusError):
        return exc.status
    resp = getattr(exc, "response", None)
    if isinstance(exc, requests.HTTPError) and resp is not None:
        return resp.status_code
    return None


def _kind(exc: BaseException) -> str:
    """What went wrong, one of: status, refused, dns, tls, timeout, reset, url, other."""
    chain = list(_chain(exc))
    if _status(exc) is not None:
        return "status"
    # Order matters: a timeout or reset is often wrapped in a generic ConnectionError.
    if any(isinstance(e, urllib3.exceptions.NameResolutionError | socket.gaierror) for e in chain):
        return "dns"
    if any(isinstance(e, ConnectionRefusedError) for e in chain):
        return "refused"
    if any(isinstance(e, ssl.SSLError | urllib3.exceptions.SSLError) for e in chain):
        return "tls"
    timeouts = (requests.Timeout, urllib3.exceptions.TimeoutError, TimeoutError, socket.timeout)
    if any(isinstance(e, timeouts) for e in chain):
        return "timeout"
    resets = (
        ConnectionResetError,
        ConnectionAbortedError,
        BrokenPipeError,
        http.client.IncompleteRead,
        http.client.RemoteDisconnected,
        urllib3.exceptions.ProtocolError,
        requests.exceptions.ChunkedEncodingError,
        IncompleteBody,
    )
    if any(isinstance(e, resets) for e in chain):
        return "reset"
    bad_url = (requests.exceptions.InvalidURL, requests.exceptions.MissingSchema)
    if any(isinstance(e, bad_url + (requests.exceptions.InvalidSchema,)) for e in chain):
        return "url"
    if isinstance(exc, requests.ConnectionError):
        return "reset"  # a connection that failed in a way not named above: try again
    return "other"


def is_transient(exc: BaseException) -> bool:
    """Whether another try may succeed (see the module docstring)."""
    kind = _kind(exc)
    if kind == "status":
        return transient_status(_status(exc))  # type: ignore[arg-type]
    return kind in ("timeout", "reset") or getattr(exc, "transient", False)


def _host(exc: BaseException) -> str:
    for e in _chain(exc):
        if isinstance(e, urllib3.exceptions.NameResolutionError) and e.conn is not None:
            return str(e.conn.host)
        req = getattr(e, "request", None)
        if req is not None and getattr(req, "url", None):
            return urlparse(req.url).hostname or ""
    return ""


def describe(exc: BaseException) -> str:
    """One line saying what a network error was, without object addresses or tracebacks."""
    kind = _kind(exc)
    if kind == "status":
        if isinstance(exc, HttpStatusError):
            return str(exc)
        return f"HTTP {_status(exc)} {exc.response.reason or ''}".strip()  # type: ignore[union-attr]
    if kind == "dns":
        host = _host(exc)
        return f"cannot resolve host {host!r}" if host else "cannot resolve the host name"
    if kind == "refused":
        return "connection refused"
    if kind == "tls":
        root = next(
            e for e in _chain(exc) if isinstance(e, ssl.SSLError | urllib3.exceptions.SSLError)
        )
        return f"TLS handshake failed ({getattr(root, 'reason', None) or root})"
    if kind == "timeout":
        return "timed out"
    if kind == "reset":
        return f"connection reset or closed early ({_root_text(exc)})"
    return _root_text(exc)


def _root_text(exc: BaseException) -> str:
    root = list(_chain(exc))[-1]
    text = str(root).split("\n")[0] or type(root).__name__
    return text if len(text) < 200 else text[:200] + "..."


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to try one request (or one resumable download)."""

    attempts: int = 4  # tries in all, the first included
    backoff: float = 1.0  # wait before the second try; doubles each time, with jitter
    backoff_max: float = 8.0
    deadline: float = 60.0  # no new try starts later than this after the first one
    max_retry_after: float = 60.0  # a server asking to wait longer fails now

    @classmethod
    def from_env(cls, **overrides) -> RetryPolicy:
        """The default policy; ``ACMMG_FETCH_RETRIES`` (retries after the first try) wins."""
        policy = cls(**overrides)
        if "attempts" not in overrides and os.environ.get("ACMMG_FETCH_RETRIES"):
            policy = replace(policy, attempts=1 + max(0, int(os.environ["ACMMG_FETCH_RETRIES"])))
        return policy

    def wait(self, attempt: int, exc: BaseException | None = None) -> float:
        """Seconds before try ``attempt + 1`` after try ``attempt`` (1-based) failed."""
        delay = min(self.backoff_max, self.backoff * 2 ** (attempt - 1))
        delay = delay / 2 + random.uniform(0, delay / 2)  # jitter: spread synchronized clients
        retry_after = getattr(exc, "retry_after", None)
        return max(delay, retry_after) if retry_after is not None else delay

    def call(self, fn: Callable[[], T], what: str = "request") -> T:
        """``fn()``, tried again on transient errors; the last error is re-raised."""

        def stop(state: tenacity.RetryCallState) -> bool:
            exc = state.outcome.exception() if state.outcome else None
            if getattr(exc, "retry_after", None) is not None:
                if exc.retry_after > self.max_retry_after:  # type: ignore[union-attr]
                    return True
            if state.attempt_number >= self.attempts:
                return True
            upcoming = min(self.backoff_max, self.backoff * 2 ** (state.attempt_number - 1))
            return state.seconds_since_start + upcoming > self.deadline

        def before_sleep(state: tenacity.RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome else None
            reason = describe(exc) if exc else "failed"
            log.warning(
                "%s; try %d of %d in %.1f s",
                reason if what in reason else f"{what}: {reason}",
                state.attempt_number + 1,
                self.attempts,
                state.next_action.sleep if state.next_action else 0.0,
            )

        retrying = tenacity.Retrying(
            retry=tenacity.retry_if_exception(is_transient),
            stop=stop,
            wait=lambda state: self.wait(
                state.attempt_number, state.outcome.exception() if state.outcome else None
            ),
            before_sleep=before_sleep,
            reraise=True,
        )
        start = time.monotonic()
        try:
            return retrying(fn)
        except Exception as exc:
            tries = retrying.statistics.get("attempt_number", 1)
            if tries > 1:
                log.warning(
                    "%s: giving up after %d tries in %.0f s (%s)",
                    what,
                    tries,
                    time.monotonic() - start,
                    describe(exc),
                )
            raise


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
        text = describe(exc) if _kind(exc) != "other" else _root_text(exc)
        return f"{url}: {text}" if url else text
    if mod.startswith(("botocore", "aiobotocore")):
        name = type(exc).__name__
        if name in ("NoCredentialsError", "PartialCredentialsError"):
            return (
                "no credentials for the object store (set AWS_ACCESS_KEY_ID and "
                "AWS_SECRET_ACCESS_KEY, or AWS_PROFILE)"
            )
        return f"object store: {_root_text(exc)}"
    if isinstance(exc, OSError):  # storage: permissions, a full disk, a missing path
        return f"{type(exc).__name__}: {_root_text(exc)}"
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
