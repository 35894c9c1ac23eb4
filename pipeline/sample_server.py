"""The demo's sources: a generated sample served over HTTP from 127.0.0.1 during a run."""

from __future__ import annotations

import contextlib
import functools
import os
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from pipeline.sample import SampleSpec, generate_sample

DEFAULT_PORT = 8765


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


def _bind(root: Path, port: int) -> ThreadingHTTPServer:
    handler = functools.partial(_Quiet, directory=str(root))
    try:
        return ThreadingHTTPServer(("127.0.0.1", port), handler)
    except OSError:  # busy: any port will do, the sample names its canonical base anyway
        return ThreadingHTTPServer(("127.0.0.1", 0), handler)


@contextlib.contextmanager
def serve_sample(
    root: Path, spec: SampleSpec | None = None, seed: int = 0
) -> Iterator[tuple[str, str]]:
    """Generate the sample in ``root`` (once) and serve it; yields (the base URL its files
    name, the base URL it is served at). The files always name
    ``http://127.0.0.1:$ACMMG_DEMO_PORT`` (default 8765), wherever it is served, so the
    sample's bytes, and everything built from it, do not depend on a busy port."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    port = int(os.environ.get("ACMMG_DEMO_PORT", DEFAULT_PORT))
    canonical = f"http://127.0.0.1:{port}"
    httpd = _bind(root, port)
    served = f"http://127.0.0.1:{httpd.server_address[1]}"
    marker = root / ".generated"
    recipe = f"{canonical}\n{spec!r}\n{seed}"
    if not marker.exists() or marker.read_text() != recipe:
        generate_sample(root, canonical, seed=seed, spec=spec)
        marker.write_text(recipe)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield canonical, served
    finally:
        httpd.shutdown()
        httpd.server_close()
