"""Real servers on 127.0.0.1 for the image tests: an HTTP/1.1 server whose routes misbehave
the way crawled image hosts do, and a raw TCP server that counts connections or drips bytes.

    s = ImageServer(); url = s.add("/a.jpg", static(jpeg_bytes)); ...; s.close()
"""

from __future__ import annotations

import http.server
import socket
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import polars as pl

from pipeline.images import ImageConfig
from tests.httpserver import QuietServer

Responder = Callable[[http.server.BaseHTTPRequestHandler, int], None]


def send(h, code: int, body: bytes = b"", ctype: str = "image/jpeg", headers=None) -> None:
    h.send_response(code)
    h.send_header("Content-Type", ctype)
    h.send_header("Content-Length", str(len(body)))
    for k, v in (headers or {}).items():
        h.send_header(k, v)
    h.end_headers()
    h.wfile.write(body)


def static(body: bytes, ctype: str = "image/jpeg") -> Responder:
    return lambda h, n: send(h, 200, body, ctype)


def status(code: int) -> Responder:
    return lambda h, n: send(h, code, b"<html>error</html>", "text/html")


def fail_first(code: int, body: bytes, headers=None) -> Responder:
    """``code`` on the first request, then the image."""

    def r(h, n):
        if n == 1:
            send(h, code, b"busy", "text/plain", headers)
        else:
            send(h, 200, body)

    return r


def slow(delay: float, body: bytes) -> Responder:
    def r(h, n):
        time.sleep(delay)
        send(h, 200, body)

    return r


def redirect(location: str) -> Responder:
    return lambda h, n: send(h, 302, b"", "text/plain", {"Location": location})


def chunked(body: bytes) -> Responder:
    """No Content-Length: the byte cap must hold while streaming."""

    def r(h, n):
        h.send_response(200)
        h.send_header("Content-Type", "image/jpeg")
        h.send_header("Transfer-Encoding", "chunked")
        h.end_headers()
        for i in range(0, len(body), 65536):
            part = body[i : i + 65536]
            h.wfile.write(f"{len(part):x}\r\n".encode() + part + b"\r\n")
        h.wfile.write(b"0\r\n\r\n")

    return r


def drip_headers(interval: float, n: int = 300) -> Responder:
    """A status line, then one header byte per ``interval``: each read gets a byte well within
    any read timeout, the headers take ``n * interval`` seconds."""

    def r(h, _):
        h.close_connection = True
        h.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Type: image/jpeg\r\nX-Drip: ")
        for _ in range(n):
            h.wfile.write(b"a")
            time.sleep(interval)
        h.wfile.write(b"\r\nContent-Length: 0\r\n\r\n")

    return r


def drip_body(body: bytes, interval: float) -> Responder:
    """Headers with a Content-Length at once, then the body one byte per ``interval``."""

    def r(h, _):
        h.close_connection = True
        h.send_response(200)
        h.send_header("Content-Type", "image/jpeg")
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        for i in range(len(body)):
            h.wfile.write(body[i : i + 1])
            time.sleep(interval)

    return r


class ImageServer:
    def __init__(self) -> None:
        self.routes: dict[str, Responder] = {}
        self.hits: Counter[str] = Counter()
        self.times: dict[str, list[float]] = defaultdict(list)
        self.lock = threading.Lock()
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def do_GET(self) -> None:  # noqa: N802
                with server.lock:
                    server.hits[self.path] += 1
                    server.times[self.path].append(time.monotonic())
                    n = server.hits[self.path]
                route = server.routes.get(self.path)
                try:
                    if route is None:
                        send(self, 404, b"not found", "text/plain")
                    else:
                        route(self, n)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeouts, byte caps): expected

            def log_message(self, *args) -> None:
                pass

        self.httpd = QuietServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def add(self, path: str, responder: Responder) -> str:
        self.routes[path] = responder
        return self.base + path

    def snapshot(self) -> Counter[str]:
        with self.lock:
            return Counter(self.hits)

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class TcpServer:
    """A raw TCP server: counts the connections it accepts, and to each sends ``drip`` one byte
    per ``interval`` (nothing when ``drip`` is empty) until the peer goes away."""

    def __init__(self, host: str = "127.0.0.1", drip: bytes = b"", interval: float = 0.1):
        self.sock = socket.create_server((host, 0))
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        self.drip, self.interval = drip, interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        self.sock.settimeout(0.05)
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.accepted += 1
            threading.Thread(target=self._drip, args=(conn,), daemon=True).start()

    def _drip(self, conn: socket.socket) -> None:
        with conn:
            for i in range(len(self.drip)):
                if self._stop.is_set():
                    return
                try:
                    conn.sendall(self.drip[i : i + 1])
                except OSError:
                    return
                time.sleep(self.interval)
            self._stop.wait()

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.sock.close()


def make_work(tmp: Path, urls: dict[str, str | None], items_name: str = "items.parquet") -> Path:
    """A work directory whose candidate nodes are ``urls``' keys, with those image URLs."""
    work = tmp / "work"
    work.mkdir(parents=True, exist_ok=True)
    asins = sorted(urls)
    pl.DataFrame({"asin": asins, "degree": [5] * len(asins)}).write_parquet(work / "nodes.parquet")
    pl.DataFrame(
        {"asin": asins, "image_url": [urls[a] for a in asins]},
        schema={"asin": pl.Utf8, "image_url": pl.Utf8},
    ).write_parquet(work / items_name)
    return work


def closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (just released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def local_config(**kw) -> ImageConfig:
    """Settings for fetching from 127.0.0.1 with short timeouts and backoff."""
    base = ImageConfig(
        allow_private=("127.0.0.1/32",),
        connect_timeout=1.0,
        read_timeout=0.5,
        total_timeout=5.0,
        retries=1,
        backoff_base=0.05,
        max_bytes=2_000_000,
        threads=8,
        processes=1,
        chunk_size=8,
        placeholder_threshold=3,
    )
    return replace(base, **kw)
