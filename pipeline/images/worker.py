"""Fetch + normalise + store one URL, and the worker loops that run it in threads/processes.

Kept free of heavy imports (no polars/duckdb): worker processes are spawned and import this.
"""

from __future__ import annotations

import hashlib
import logging
import queue
import signal
import threading
from pathlib import Path
from typing import Any

from ..http import alias
from ..io import atomic_path
from ..workdir import image_store_path
from .config import ImageConfig
from .fetch import Fetcher, describe
from .normalize import Rejected, normalize_image
from .urls import full_size_url, placeholder_pattern

log = logging.getLogger(__name__)

RESULT_FIELDS = (
    "url",
    "fetch_url",  # what was fetched: url in its full-size form (urls.full_size_url)
    "status",
    "error",
    "http_status",
    "bytes",
    "width",
    "height",
    "orig_width",
    "orig_height",
    "sha256",
    "dhash",
)


def store_image(work: Path, sha256: str, data: bytes) -> Path:
    """Put normalised JPEG bytes into the content store (no-op when already there)."""
    dest = image_store_path(work, sha256)
    if not dest.exists():
        with atomic_path(dest) as tmp:
            tmp.write_bytes(data)
    return dest


class Processor:
    """Everything one URL needs; thread-safe (one per process)."""

    def __init__(self, work: Path, config: ImageConfig) -> None:
        self.work = Path(work)
        self.config = config
        self.fetcher = Fetcher(config)

    def close(self) -> None:
        self.fetcher.close()

    def process(self, url: str) -> dict[str, Any]:
        row: dict[str, Any] = dict.fromkeys(RESULT_FIELDS)
        row["url"] = url
        cfg = self.config
        try:
            fetch_url = full_size_url(url) if cfg.amazon_full_size else url
            row["fetch_url"] = fetch_url
            pattern = placeholder_pattern((url, fetch_url), cfg.placeholder_urls)
            if pattern is not None:
                row.update(status="placeholder_url", error=f"known placeholder URL ({pattern})")
                return row
            f = self.fetcher.fetch(alias(fetch_url, cfg.url_aliases))
            row.update(status=f.status, error=f.error, http_status=f.http_status)
            if f.status != "ok" or f.body is None:
                return row
            row["bytes"] = len(f.body)
            try:
                n = normalize_image(f.body, cfg)
            except Rejected as e:
                row.update(status=e.status, error=e.message)
                return row
            sha = hashlib.sha256(n.jpeg).hexdigest()
            store_image(self.work, sha, n.jpeg)
            row.update(
                width=n.width,
                height=n.height,
                orig_width=n.orig_width,
                orig_height=n.orig_height,
                sha256=sha,
                dhash=n.dhash,
            )
        except MemoryError:
            row.update(status="too_large", error="out of memory while decoding")
        except Exception as e:  # one bad item must never stop the stage: count it, log it
            log.warning("unexpected error on %s", url, exc_info=True)
            row.update(status="internal_error", error=describe(e))
        return row


def serve(processor: Processor, tasks: Any, results: Any) -> None:
    """Thread loop: take URLs from ``tasks`` until a None, put result rows on ``results``."""
    while True:
        url = tasks.get()
        if url is None:
            return
        results.put(processor.process(url))


def worker_main(work: str, config: ImageConfig, tasks: Any, results: Any) -> None:
    """Entry point of a spawned worker process: ``config.threads`` threads share one session."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C
    proc = Processor(Path(work), config)
    threads = [
        threading.Thread(target=serve, args=(proc, tasks, results), daemon=True)
        for _ in range(config.threads)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    proc.close()


def start_threads(processor: Processor, n: int) -> tuple[queue.Queue, queue.Queue, list]:
    """In-process variant of worker_main: returns (tasks, results, threads)."""
    tasks: queue.Queue = queue.Queue()
    results: queue.Queue = queue.Queue()
    threads = [
        threading.Thread(target=serve, args=(processor, tasks, results), daemon=True)
        for _ in range(n)
    ]
    for t in threads:
        t.start()
    return tasks, results, threads
