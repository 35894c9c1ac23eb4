"""A real threaded HTTP/1.1 file server on 127.0.0.1 for tests, with scriptable faults.

Serves files under a directory, with byte ranges (206, or 416 past the end). ``faults`` maps
a URL path to a list of behaviours consumed one per GET: "drop" (send half the body, then
close), "drop:N" (send N bytes, then close), a status ("404", "503"; "429:2" adds
Retry-After: 2), "slow" (sleep before answering).
``ignore_range`` answers 200 with the whole file to Range requests. ``close_delimited`` sends
bodies without Content-Length and closes the connection after them (HTTP/1.0 style), so a
"drop" is indistinguishable from the end. ``headers`` maps a path to extra response headers
(an ETag, a Digest...), ``redirects`` a path to the Location of a 302, and ``head_status``,
when set, answers every HEAD with that status. Every request is logged in ``requests`` as
(method, path, Range header or None).

    with FaultyServer(root) as srv: ...        # or srv = FaultyServer(root).start(); srv.close()
"""

from __future__ import annotations

import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote


class QuietServer(ThreadingHTTPServer):
    """A threading server that does not print a client's dropped connection: the tests that
    read stderr (one-line errors) must see only what the product wrote."""

    daemon_threads = True
    # socketserver's default backlog is 5: eight fetch threads on a loaded machine overflow it,
    # the kernel drops a SYN and the client's retransmit comes after 1 s, past the tests' 1 s
    # connect timeout (a spurious "connect timeout" seen once in a full run).
    request_queue_size = 64

    def handle_error(self, request, client_address) -> None:
        if not isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            super().handle_error(request, client_address)


class FaultyServer:
    def __init__(self, root: Path, port: int = 0):
        self.root = Path(root)
        self.faults: dict[str, list[str]] = {}
        self.requests: list[tuple[str, str, str | None]] = []
        self.ignore_range = False
        self.close_delimited = False
        self.headers: dict[str, dict[str, str]] = {}
        self.redirects: dict[str, str] = {}
        self.head_status: int | None = None
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # keep test output quiet
                pass

            def do_HEAD(self):
                self._serve(head=True)

            def do_GET(self):
                self._serve(head=False)

            def _serve(self, head: bool):
                path = unquote(self.path.split("?")[0])
                rng = self.headers.get("Range")
                server.requests.append((self.command, path, rng))
                queue = server.faults.get(path) or []
                fault = queue.pop(0) if queue and not head else None
                if path in server.redirects:
                    self.send_response(302)
                    self.send_header("Location", server.redirects[path])
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                if head and server.head_status:
                    self.send_error(server.head_status)
                    return
                if fault == "slow":
                    time.sleep(3)
                if fault is not None and fault.split(":")[0].isdigit():
                    # "503", or "429:2" for a status with Retry-After: 2
                    code, _, after = fault.partition(":")
                    self.send_response(int(code))
                    if after:
                        self.send_header("Retry-After", after)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                f = (server.root / path.lstrip("/")).resolve()
                if server.root.resolve() not in f.parents or not f.is_file():
                    self.send_error(404)
                    return
                data = f.read_bytes()
                start = 0
                if rng and rng.startswith("bytes=") and not head and not server.ignore_range:
                    start = int(rng.removeprefix("bytes=").split("-")[0])
                    if start >= len(data):
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{len(data)}")
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                else:
                    self.send_response(200)
                body = data[start:]
                if server.close_delimited:
                    self.send_header("Connection", "close")
                    self.close_connection = True
                else:
                    self.send_header("Content-Length", str(len(body)))
                self.send_header("Accept-Ranges", "bytes")
                for name, value in server.headers.get(path, {}).items():
                    self.send_header(name, value)
                self.end_headers()
                if head:
                    return
                if fault is not None and fault.startswith("drop"):
                    n = int(fault.split(":")[1]) if ":" in fault else len(body) // 2
                    self.wfile.write(body[:n])
                    self.wfile.flush()
                    self.close_connection = True
                    self.connection.shutdown(2)
                    return
                self.wfile.write(body)

        self.httpd = QuietServer(("127.0.0.1", port), Handler)
        self.port = self.httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def start(self) -> FaultyServer:
        self.thread.start()
        return self

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def data_requests(self) -> list[tuple[str, str, str | None]]:
        """Requests other than a published category's LATEST and manifest.json."""
        return [r for r in self.requests if not r[1].endswith(("/LATEST", "/manifest.json"))]

    def __enter__(self) -> FaultyServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()
