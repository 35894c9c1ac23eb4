"""The image stage: fetch, verify and normalise the image of every candidate node.

Inputs: the candidate nodes (``work/nodes.parquet`` or ``nodes``: column ``asin``) and the
items (``asin``, ``image_url``) of ``work/items_clean.parquet``, else ``work/items.parquet``.
Outputs: ``work/images.parquet`` (one row per candidate, sorted by asin), the normalised
JPEGs in ``work/image_store/`` and the ``images`` entry of ``work/stats.json``.

Row statuses: ``ok``; ``placeholder`` (its image is shared by more than
``placeholder_threshold`` items); failures: ``no_url``, ``placeholder_url`` (a URL on the
``placeholder_urls`` list, not fetched), ``bad_url``, ``bad_scheme``, ``blocked_address``,
``timeout``, ``connection_error``, ``ssl_error``, ``too_many_redirects``, ``http_404``
(404/410), ``http_error`` (any other non-2xx; ``http_status`` says which), ``too_large``,
``not_image``, ``corrupt``, ``truncated``, ``decompression_bomb``, ``extreme_aspect``,
``too_small``, ``unsupported_mode``, ``internal_error``. ``url`` is the item's URL,
``fetch_url`` the one fetched (its full-size form, see urls.py).

Resume: results are appended to a journal (``work/images_journal/part-*.parquet``) every
``chunk_size`` items, so a killed run loses at most the chunk in flight. A rerun skips every
item whose journal row has the same URL and settings fingerprint, except (1) transient
failures, which are tried again: ``timeout``, ``connection_error`` and ``http_error`` with
status 429 or 5xx (unless ``retry_transient`` is off), and (2) ``ok`` rows whose stored JPEG
has gone missing. Placeholders are derived from the journal at the end of every run, so they
need no refetch when the threshold changes.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing as mp
import os
import queue
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import polars as pl
from PIL import ImageFile

from .. import workdir
from ..errors import StageError, UserError
from ..io import atomic_path
from ..modality import TEXT_ONLY_REASON, text_only
from ..progress import Progress
from ..resources import Resources
from ..workdir import (
    IMAGES,
    IMAGES_JOURNAL,
    IMAGES_LOCK,
    ITEMS,
    ITEMS_CLEAN,
    NODES,
    image_store_path,
)
from .config import ImageConfig
from .fetch import is_transient
from .worker import RESULT_FIELDS, Processor, start_threads, worker_main

log = logging.getLogger(__name__)

JOURNAL_DIR = IMAGES_JOURNAL
LOCK_FILE = IMAGES_LOCK

ROW_SCHEMA: dict[str, Any] = {
    "asin": pl.Utf8,
    "url": pl.Utf8,
    "fetch_url": pl.Utf8,
    "status": pl.Utf8,
    "error": pl.Utf8,
    "http_status": pl.Int64,
    "bytes": pl.Int64,
    "width": pl.Int64,
    "height": pl.Int64,
    "orig_width": pl.Int64,
    "orig_height": pl.Int64,
    "sha256": pl.Utf8,
    "dhash": pl.Utf8,
}
JOURNAL_SCHEMA = {**ROW_SCHEMA, "fingerprint": pl.Utf8}
assert tuple(ROW_SCHEMA)[1:] == RESULT_FIELDS


class Journal:
    """Append-only parquet parts; the latest row of an asin wins (parts are numbered)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.mkdir(parents=True, exist_ok=True)
        for stray in path.glob(".part-*.tmp"):  # left by a killed write
            stray.unlink()
        self.seq = max((self._seq(p) for p in self.parts()), default=0) + 1

    @staticmethod
    def _seq(p: Path) -> int:
        return int(p.stem.split("-")[1])

    def parts(self) -> list[Path]:
        return sorted(self.path.glob("part-*.parquet"), key=self._seq)

    def append(self, rows: list[dict[str, Any]]) -> None:
        if rows:
            self.append_frame(
                pl.DataFrame(
                    [{k: r.get(k) for k in JOURNAL_SCHEMA} for r in rows], schema=JOURNAL_SCHEMA
                )
            )

    def append_frame(self, df: pl.DataFrame) -> None:
        with atomic_path(self.path / f"part-{self.seq:08d}.parquet") as tmp:
            df.select(list(JOURNAL_SCHEMA)).write_parquet(tmp)
        self.seq += 1

    def latest(self) -> pl.DataFrame:
        parts = self.parts()
        if not parts:
            return pl.DataFrame(schema=JOURNAL_SCHEMA)
        frames = [
            _conform(pl.read_parquet(p)).with_columns(pl.lit(self._seq(p)).alias("_seq"))
            for p in parts
        ]
        return (
            pl.concat(frames)
            .sort("_seq", maintain_order=True)
            .unique(subset="asin", keep="last", maintain_order=True)
            .drop("_seq")
        )

    def compact(self) -> None:
        """Rewrite the journal as one part (newer than all others), then drop the others."""
        parts = self.parts()
        if len(parts) <= 1:
            return
        self.append_frame(self.latest().sort("asin"))
        for p in parts:
            p.unlink()


def _conform(part: pl.DataFrame) -> pl.DataFrame:
    """A journal part in JOURNAL_SCHEMA; parts written before a column existed get nulls."""
    missing = [pl.lit(None, t).alias(c) for c, t in JOURNAL_SCHEMA.items() if c not in part.columns]
    return part.with_columns(missing).select(list(JOURNAL_SCHEMA)).cast(JOURNAL_SCHEMA)


@contextlib.contextmanager
def _work_lock(work: Path) -> Iterator[None]:
    """One image run per work directory at a time (two would interleave journal parts)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - non-POSIX: no locking
        yield
        return
    with open(work / LOCK_FILE, "w") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise UserError(f"another image run is using {work}") from None
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def load_candidates(
    work: Path, nodes: Path | None = None, meta: list[str] | None = None
) -> pl.DataFrame:
    """Candidate nodes with their image URL (null when the item has none): asin, url."""
    nodes_path = Path(nodes) if nodes else work / NODES
    if not nodes_path.exists():
        raise UserError(
            f"candidate nodes not found: {nodes_path} (run the graph stage or pass --nodes)"
        )
    nd = pl.read_parquet(nodes_path)
    if "asin" not in nd.columns:
        raise UserError(f"{nodes_path} has no asin column")
    try:
        items_path = workdir.items(work)
    except StageError:
        if not meta:
            raise UserError(
                f"no {ITEMS_CLEAN} or {ITEMS} in {work}: run ingest first or pass --meta"
            ) from None
        from ..ingest import ingest_items

        items_path = Path(ingest_items(list(meta), work))
    items = pl.read_parquet(items_path)
    missing = {"asin", "image_url"} - set(items.columns)
    if missing:
        raise UserError(f"{items_path} lacks columns {sorted(missing)}")
    urls = (
        items.select("asin", pl.col("image_url").cast(pl.Utf8).str.strip_chars().alias("url"))
        .with_columns(pl.when(pl.col("url") == "").then(None).otherwise(pl.col("url")).alias("url"))
        .unique(subset="asin", keep="first", maintain_order=True)
    )
    cands = nd.select(pl.col("asin").cast(pl.Utf8)).unique().drop_nulls()
    return cands.join(urls, on="asin", how="left").sort("asin")


def _plan(cands: pl.DataFrame, done: pl.DataFrame, work: Path, cfg: ImageConfig) -> pl.DataFrame:
    """The candidates that need work this run (see the module docstring for the rule)."""
    fp = cfg.fingerprint()
    m = cands.join(
        done.select(
            "asin", pl.col("url").alias("j_url"), "status", "http_status", "sha256", "fingerprint"
        ),
        on="asin",
        how="left",
    )
    statuses = m["status"].to_list()
    redo = []
    for url, j_url, status, http_status, sha, jfp in zip(
        m["url"], m["j_url"], statuses, m["http_status"], m["sha256"], m["fingerprint"], strict=True
    ):
        if status is None or url != j_url or jfp != fp:
            redo.append(True)
        elif cfg.retry_transient and is_transient(status, http_status):
            redo.append(True)
        elif status == "ok" and not image_store_path(work, sha).exists():
            redo.append(True)
        else:
            redo.append(False)
    return m.filter(pl.Series(redo, dtype=pl.Boolean)).select("asin", "url")


def _auto_processes(cfg: ImageConfig, n_urls: int) -> int:
    if cfg.processes:
        return cfg.processes
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        cpus = os.cpu_count() or 1
    # Spawning costs ~0.5 s per process: only worth it beyond a few chunks.
    return 1 if n_urls < 4 * cfg.chunk_size else max(1, cpus)


def _results(urls: list[str], work: Path, cfg: ImageConfig, processes: int) -> Iterator[dict]:
    """Result rows of ``urls``, in completion order, from threads or worker processes."""
    if not urls:
        return
    if processes <= 1:
        proc = Processor(work, cfg)
        n = min(cfg.threads, len(urls))
        tasks, results, threads = start_threads(proc, n)
        for u in urls:
            tasks.put(u)
        for _ in threads:
            tasks.put(None)
        try:
            for _ in urls:
                yield results.get()
        finally:
            with contextlib.suppress(queue.Empty):  # on abort: let the threads run dry
                while True:
                    tasks.get_nowait()
            for _ in threads:
                tasks.put(None)
            proc.close()
        return

    ctx = mp.get_context("spawn")  # fork is unsafe with the threads of polars and tqdm
    ptasks = ctx.Queue(maxsize=processes * cfg.threads * 4)
    presults = ctx.Queue()
    procs = [
        ctx.Process(target=worker_main, args=(str(work), cfg, ptasks, presults), daemon=True)
        for _ in range(processes)
    ]
    for p in procs:
        p.start()
    stop = threading.Event()

    def feed() -> None:
        for item in [*urls, *([None] * (processes * cfg.threads))]:
            while not stop.is_set():
                try:
                    ptasks.put(item, timeout=0.5)
                    break
                except queue.Full:
                    continue

    feeder = threading.Thread(target=feed, daemon=True)
    feeder.start()
    finished = False
    try:
        got = 0
        while got < len(urls):
            try:
                row = presults.get(timeout=1.0)
            except queue.Empty:
                dead = [p.exitcode for p in procs if p.exitcode not in (None, 0)]
                if dead:
                    raise RuntimeError(
                        f"an image worker process died (exit code {dead[0]}); rerun to resume"
                    ) from None
                continue
            got += 1
            yield row
        finished = True
    finally:
        stop.set()
        if not finished:
            ptasks.cancel_join_thread()
            for p in procs:
                p.terminate()
        for p in procs:
            p.join()
        feeder.join(timeout=5)


def _finalize(cands: pl.DataFrame, done: pl.DataFrame, cfg: ImageConfig) -> pl.DataFrame:
    """images.parquet rows: candidates x latest journal rows, with placeholders marked."""
    rows = cands.join(done.drop("url", "fingerprint"), on="asin", how="left")
    key = cfg.placeholder_hash
    shared = (
        rows.filter(pl.col("status") == "ok")
        .group_by(key)
        .agg(pl.len().alias("_shared"))
        .filter(pl.col("_shared") > cfg.placeholder_threshold)
    )
    rows = rows.join(shared, on=key, how="left")
    is_ph = (pl.col("status") == "ok") & pl.col("_shared").is_not_null()
    rows = rows.with_columns(
        pl.when(is_ph).then(pl.lit("placeholder")).otherwise(pl.col("status")).alias("status"),
        pl.when(is_ph)
        .then(pl.format("image shared by {} items", pl.col("_shared")))
        .otherwise(pl.col("error"))
        .alias("error"),
    ).drop("_shared")
    return rows.select(list(ROW_SCHEMA)).cast(ROW_SCHEMA).sort("asin")


def _summary(rows: pl.DataFrame, cfg: ImageConfig) -> dict[str, Any]:
    counts = dict(Counter(rows["status"].to_list()))
    ok = counts.pop("ok", 0)
    ph = counts.pop("placeholder", 0)
    return {
        "candidates": rows.height,
        "ok": ok,
        "placeholder": ph,
        "placeholder_images": rows.filter(pl.col("status") == "placeholder")[
            cfg.placeholder_hash
        ].n_unique(),
        "failed": dict(sorted(counts.items())),
        "failed_total": sum(counts.values()),
        "distinct_images": rows.filter(pl.col("status") == "ok")["sha256"].n_unique(),
        "bytes_downloaded": int(rows["bytes"].fill_null(0).sum()),
    }


def fetch_images(
    work: Path,
    nodes: Path | None = None,
    config: ImageConfig | None = None,
    progress: bool = False,
    meta: list[str] | None = None,
) -> dict[str, Any]:
    """Run the image stage on ``work``; returns the summary.

    The returned dict holds the final counts (the stage's stats) plus ``this_run``:
    what this invocation did (attempted URLs, new ok/failed, seconds, images per second).
    """
    work = Path(work)
    cfg = config or ImageConfig()
    nodes_path = Path(nodes) if nodes else work / NODES
    if not nodes_path.exists():  # checked before anything is created in ``work``
        raise UserError(
            f"candidate nodes not found: {nodes_path} (run the graph stage or pass --nodes)"
        )
    work.mkdir(parents=True, exist_ok=True)
    if ImageFile.LOAD_TRUNCATED_IMAGES:
        log.warning("PIL.ImageFile.LOAD_TRUNCATED_IMAGES is set: truncated images will pass")
    t0 = time.monotonic()
    with _work_lock(work):
        cands = load_candidates(work, nodes, meta)
        journal = Journal(work / JOURNAL_DIR)
        todo = _plan(cands, journal.latest(), work, cfg)
        fp = cfg.fingerprint()
        by_url: dict[str, list[str]] = {}
        no_url: list[dict[str, Any]] = []
        for asin, url in todo.iter_rows():
            if url is None:
                no_url.append(
                    {
                        "asin": asin,
                        "status": "no_url",
                        "error": "item has no image URL",
                        "fingerprint": fp,
                    }
                )
            else:
                by_url.setdefault(url, []).append(asin)
        journal.append(no_url)
        urls = sorted(by_url)
        processes = _auto_processes(cfg, len(urls))
        log.info(
            "images: %d candidates, %d to fetch (%d URLs), %d processes x %d threads",
            cands.height,
            todo.height - len(no_url),
            len(urls),
            processes,
            cfg.threads,
        )
        new = Counter()
        buf: list[dict[str, Any]] = []
        last_flush = time.monotonic()
        bar = Progress(len(urls), "images", "img", bars=progress)
        try:
            for res in _results(urls, work, cfg, processes):
                new["ok" if res["status"] == "ok" else "failed"] += 1
                if res["status"] != "ok":
                    log.debug("image %s: %s (%s)", res["url"], res["status"], res["error"])
                for asin in by_url[res["url"]]:
                    buf.append({"asin": asin, **res, "fingerprint": fp})
                if len(buf) >= cfg.chunk_size or time.monotonic() - last_flush > 5.0:
                    journal.append(buf)
                    buf, last_flush = [], time.monotonic()
                bar.update(1)
        finally:
            journal.append(buf)  # also on Ctrl-C: keep what is done
            bar.close()
        journal.compact()
        rows = _finalize(cands, journal.latest(), cfg)
        with atomic_path(work / IMAGES) as tmp:
            rows.write_parquet(tmp)
    summary = _summary(rows, cfg)
    elapsed = time.monotonic() - t0
    summary["this_run"] = {
        "attempted": len(urls),
        "ok": new["ok"],
        "failed": new["failed"],
        "skipped": cands.height - todo.height,
        "processes": processes,
        "elapsed_s": round(elapsed, 3),
        "images_per_s": round(len(urls) / elapsed, 2) if elapsed > 0 else None,
    }
    log.info(
        "images: %d ok, %d placeholder, %d failed %s",
        summary["ok"],
        summary["placeholder"],
        summary["failed_total"],
        summary["failed"],
    )
    return summary


def images_stage(work: Path, cfg: ImageConfig, res: Resources = Resources()) -> dict[str, Any]:
    """The image stage as the pipeline runs it: ``fetch_images`` and its stats (what this
    invocation did is logged, not recorded, so a resumed run records the same stats).
    A text-only build (pipeline/modality.py) fetches nothing: an empty images.parquet."""
    if text_only(work):
        with atomic_path(Path(work) / IMAGES) as tmp:
            pl.DataFrame(schema=ROW_SCHEMA).write_parquet(tmp)
        log.info("images: skipped, a text-only build (%s)", TEXT_ONLY_REASON)
        return {"skipped": "text-only", "reason": TEXT_ONLY_REASON, "candidates": 0, "ok": 0}
    summary = fetch_images(work, config=cfg, progress=res.progress)
    summary.pop("this_run", None)
    return summary
