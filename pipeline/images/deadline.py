"""A total time limit per request (connect + TLS + headers + body), enforced by a watchdog.

Socket timeouts bound each read only: a server that drips one byte per second never trips a
15 s read timeout, and a body with a Content-Length is read in one call, so checks between
chunks never run. Here a request runs inside ``Watchdog.limit(seconds)``; the connection code
(``safety.GuardedAdapter``) registers every socket the request uses with the thread's current
:class:`Deadline`, and one watchdog thread per process shuts those sockets down when the time
is up. The blocked read then returns at once (EOF or an error), and the caller sees
``Deadline.expired``.

A registered socket is held as a duplicate file descriptor owned by the deadline: shutting it
down reaches the connection even after urllib3 wraps the socket in TLS, and it can never hit
an unrelated socket that happens to reuse a closed descriptor number.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import os
import socket
import threading
import time
from collections.abc import Iterator

_local = threading.local()


class Deadline:
    """The time limit of one request and the sockets it uses."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.at = time.monotonic() + seconds
        self.expired = False
        self.done = False
        self._fds: list[int] = []
        self._lock = threading.Lock()

    def remaining(self) -> float:
        return self.at - time.monotonic()

    def watch(self, sock: socket.socket) -> None:
        """Shut ``sock`` down when the deadline passes (at once if it has passed)."""
        with self._lock:
            if self.done:
                return
            try:
                fd = os.dup(sock.fileno())
            except OSError:  # already closed: nothing to interrupt
                return
            self._fds.append(fd)
            if self.expired:
                _shutdown(fd)

    def expire(self) -> None:
        with self._lock:
            if self.done:
                return
            self.expired = True
            for fd in self._fds:
                _shutdown(fd)

    def finish(self) -> None:
        with self._lock:
            self.done = True
            for fd in self._fds:
                os.close(fd)
            self._fds.clear()


def _shutdown(fd: int) -> None:
    s = socket.socket(fileno=fd)
    try:
        s.shutdown(socket.SHUT_RDWR)
    except OSError:  # not connected (any more)
        pass
    finally:
        s.detach()  # the descriptor stays ours; Deadline.finish closes it


def current() -> Deadline | None:
    """The deadline of the request this thread is running, if any."""
    return getattr(_local, "deadline", None)


class Watchdog:
    """One thread that expires deadlines; shared by all threads of a Fetcher."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._heap: list[tuple[float, int, Deadline]] = []
        self._seq = itertools.count()
        self._thread: threading.Thread | None = None
        self._closed = False

    @contextlib.contextmanager
    def limit(self, seconds: float) -> Iterator[Deadline]:
        """Run the body as one request of at most ``seconds``; yields its Deadline."""
        d = Deadline(seconds)
        with self._cond:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="deadline", daemon=True)
                self._thread.start()
            heapq.heappush(self._heap, (d.at, next(self._seq), d))
            self._cond.notify()
        outer = current()
        _local.deadline = d
        try:
            yield d
        finally:
            _local.deadline = outer
            d.finish()  # finished entries leave the heap when they reach its top

    def _run(self) -> None:
        with self._cond:
            while not self._closed:
                now = time.monotonic()
                while self._heap and (self._heap[0][2].done or self._heap[0][0] <= now):
                    heapq.heappop(self._heap)[2].expire()
                wait = self._heap[0][0] - now if self._heap else None
                self._cond.wait(wait)

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify()
        if self._thread is not None:
            self._thread.join()
