"""The one retry policy of every download (light loader and pipeline alike), built on tenacity.

Retried, with exponential backoff and jitter, within a bounded number of tries and time:
timeouts, connections reset or closed early, HTTP 429 (its Retry-After honoured, up to a cap)
and 5xx (501 Not Implemented excepted). Not retried, because another try gets the same
answer: a refused connection, a host name that does not resolve, a failed TLS handshake, any
other 4xx. Every retry is logged in one line: the URL, the reason, the attempt and the wait.

    policy = RetryPolicy.from_env()            # ACMMG_FETCH_RETRIES retries after the first try
    body = policy.call(lambda: get_bytes(url), what=url)

``call`` re-raises the last error; ``describe(exc)`` says in one line what it was. Callers
that read bodies (resuming with Range) put the whole attempt, request and body, in the
function they pass, so a connection dropped mid-body is retried by the same rules. An
exception of the caller's own says whether it is worth another try with a ``transient``
attribute (and may carry ``retry_after`` seconds).

This module lives in the light package (``acmmg``) so that the loader and the pipeline share
it; it imports neither the pipeline nor anything heavy.
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
from typing import NamedTuple, TypeVar

import requests
import tenacity
import urllib3

log = logging.getLogger(__name__)
T = TypeVar("T")
RETRIES_ENV = "ACMMG_FETCH_RETRIES"


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


class Retry(NamedTuple):
    """One retry as logged: which URL, the attempt that failed (1-based), why, the wait."""

    url: str
    attempt: int
    reason: str
    wait: float


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


def kind(exc: BaseException) -> str:
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
    bad_url = (
        requests.exceptions.InvalidURL,
        requests.exceptions.MissingSchema,
        requests.exceptions.InvalidSchema,
    )
    if any(isinstance(e, bad_url) for e in chain):
        return "url"
    if isinstance(exc, requests.ConnectionError):
        return "reset"  # a connection that failed in a way not named above: try again
    return "other"


def is_transient(exc: BaseException) -> bool:
    """Whether another try may succeed (see the module docstring)."""
    if isinstance(getattr(exc, "transient", None), bool):
        return exc.transient  # type: ignore[attr-defined]  # the caller's own verdict
    k = kind(exc)
    if k == "status":
        return transient_status(_status(exc))  # type: ignore[arg-type]
    return k in ("timeout", "reset")


def _host(exc: BaseException) -> str:
    for e in _chain(exc):
        if isinstance(e, urllib3.exceptions.NameResolutionError) and e.conn is not None:
            return str(e.conn.host)
        req = getattr(e, "request", None)
        if req is not None and getattr(req, "url", None):
            from urllib.parse import urlparse

            return urlparse(req.url).hostname or ""
    return ""


def describe(exc: BaseException) -> str:
    """One line saying what a network error was, without object addresses or tracebacks."""
    k = kind(exc)
    if k == "status":
        if isinstance(exc, HttpStatusError):
            return str(exc)
        return f"HTTP {_status(exc)} {exc.response.reason or ''}".strip()  # type: ignore[union-attr]
    if k == "dns":
        host = _host(exc)
        return f"cannot resolve host {host!r}" if host else "cannot resolve the host name"
    if k == "refused":
        return "connection refused"
    if k == "tls":
        root = next(
            e for e in _chain(exc) if isinstance(e, ssl.SSLError | urllib3.exceptions.SSLError)
        )
        return f"TLS handshake failed ({getattr(root, 'reason', None) or root})"
    if k == "timeout":
        return "timed out"
    if k == "reset":
        return f"connection reset or closed early ({root_text(exc)})"
    return root_text(exc)


def root_text(exc: BaseException) -> str:
    """The first line of the innermost exception's message, at most ~200 characters."""
    root = list(_chain(exc))[-1]
    text = " ".join(str(root).split("\n")[0].split()) or type(root).__name__
    return text if len(text) < 200 else text[:200] + "..."


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to try one request (or one resumable download)."""

    attempts: int = 4  # tries in all, the first included
    backoff: float = 1.0  # wait before the second try; doubles each time, with jitter
    backoff_max: float = 8.0
    # No try starts later than this after the first one began (after the latest try that
    # made progress, for a resumable download: see ``call``'s ``progress``).
    deadline: float = 60.0
    max_retry_after: float = 60.0  # a server asking to wait longer fails now

    @classmethod
    def from_env(cls, **overrides) -> RetryPolicy:
        """The default policy; ``ACMMG_FETCH_RETRIES`` (retries after the first try) wins
        unless ``attempts`` is given."""
        policy = cls(**overrides)
        raw = os.environ.get(RETRIES_ENV)
        if "attempts" not in overrides and raw:
            try:
                retries = int(raw)
            except ValueError:
                from acmmg.errors import UserError

                raise UserError(f"${RETRIES_ENV} must be a whole number, not {raw!r}") from None
            policy = replace(policy, attempts=1 + max(0, retries))
        return policy

    def wait(self, attempt: int, exc: BaseException | None = None) -> float:
        """Seconds before try ``attempt + 1`` after try ``attempt`` (1-based) failed."""
        delay = min(self.backoff_max, self.backoff * 2 ** (attempt - 1))
        delay = delay / 2 + random.uniform(0, delay / 2)  # jitter: spread synchronized clients
        retry_after = getattr(exc, "retry_after", None)
        if retry_after is not None:
            delay = max(delay, min(float(retry_after), self.max_retry_after))
        return delay

    def call(
        self,
        fn: Callable[[], T],
        what: str = "request",
        record: list[Retry] | None = None,
        progress: Callable[[], int] | None = None,
    ) -> T:
        """``fn()``, tried again on transient errors; the last error is re-raised.

        ``what`` names the URL in the log lines; ``record`` receives each retry; ``progress``
        (bytes held so far, for a resumed download) restarts the deadline's clock after a try
        that made progress, so a long transfer that drops is still resumed (the attempts stay
        bounded)."""
        clock = {"start": time.monotonic(), "held": progress() if progress else 0}
        waits: dict[int, float | None] = {}

        def decide(state: tenacity.RetryCallState) -> float | None:
            """The wait before the next try, None to give up (memoized: tenacity asks for
            the wait and the stop in an order that changed between its versions)."""
            n = state.attempt_number
            if n not in waits:
                exc = state.outcome.exception() if state.outcome else None
                retry_after = getattr(exc, "retry_after", None)
                if progress is not None and (held := progress()) > clock["held"]:
                    clock.update(start=time.monotonic(), held=held)
                wait = self.wait(n, exc)
                if (
                    n >= self.attempts
                    # asked to wait longer than we would: fail now, a rerun may try again
                    or (retry_after is not None and retry_after > self.max_retry_after)
                    or time.monotonic() - clock["start"] + wait > self.deadline
                ):
                    waits[n] = None
                else:
                    waits[n] = wait
            return waits[n]

        def before_sleep(state: tenacity.RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome else None
            reason = describe(exc) if exc else "failed"
            wait = waits[state.attempt_number] or 0.0
            if record is not None:
                record.append(Retry(what, state.attempt_number, reason, wait))
            log.warning(
                "%s: attempt %d of %d failed (%s); retrying in %.1f s",
                what,
                state.attempt_number,
                self.attempts,
                reason,
                wait,
            )

        retrying = tenacity.Retrying(
            retry=tenacity.retry_if_exception(is_transient),
            stop=lambda state: decide(state) is None,
            wait=lambda state: decide(state) or 0.0,
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
                    "%s: giving up after %d attempts in %.0f s (%s)",
                    what,
                    tries,
                    time.monotonic() - start,
                    describe(exc),
                )
            raise
