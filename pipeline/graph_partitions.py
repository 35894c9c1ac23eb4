"""The graph build split for a cluster: the projection by user-hash partition, a sum merge.

``pipeline.graph.build_graph`` forms every pair on one machine. Here the same build runs as
map-reduce steps that a task runner may spread over machines sharing the work directory:

1. ``prepare_partitions``: baskets, heavy-user cut and exact pruning exactly as build_graph
   (and ``bipartite.parquet``); the kept baskets go to P files by hash(user) mod P.
2. ``project_partition`` (P, independent): one file's pairs with their partial counts,
   bucketed by i mod P. No threshold: a pair's buyers may be spread over partitions.
3. ``merge_bucket`` (P, independent): one bucket of every partition, summed; the pairs that
   reach min_copurchase. Each pair is in exactly one bucket.
4. ``merge_partitions``: the kept pairs of every bucket, their k-core; edges, nodes and stats
   written exactly as build_graph writes them.

Each user is in one partition, so the sums are the exact co-purchase counts, and the
artifacts and stats are byte for byte those of build_graph (tests/test_graph_partitions.py).
What it buys is spreading the pair counting, which grows with C(d, 2) per user, and its
memory; what it costs is that a partition cannot threshold early, so together they count
every distinct pair, where build_graph passes only those reaching the threshold (bench/README.md,
"Partitioned projection").
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from pathlib import Path

from pipeline import workdir
from pipeline.db import count, open_db
from pipeline.errors import StageError
from pipeline.graph import GraphParams, finish, prepare, purchases_view, write_graph
from pipeline.io import atomic_path, read_json, write_json
from pipeline.resources import Resources
from pipeline.sql import execute_script, quote_literal

log = logging.getLogger(__name__)

PREP = "prepare.json"
ITEM_IDS = "item_ids.parquet"


partition_dir = workdir.graph_partition_dir


def baskets_file(work: Path, part: int, partitions: int) -> Path:
    return partition_dir(work, partitions) / f"baskets-{part:03d}.parquet"


def pairs_dir(work: Path, part: int, partitions: int) -> Path:
    """A partition's partial counts, one hive folder ``bucket=<b>`` per non-empty bucket."""
    return partition_dir(work, partitions) / f"pairs-{part:03d}"


def kept_file(work: Path, bucket: int, partitions: int) -> Path:
    return partition_dir(work, partitions) / f"kept-{bucket:03d}.parquet"


def _check(partitions: int, index: int = 0, what: str = "part") -> None:
    if partitions < 1 or not 0 <= index < partitions:
        raise ValueError(f"need 0 <= {what} < partitions, got {what} {index} of {partitions}")


def _lit(path: Path) -> str:
    return quote_literal(str(path))


def _prepared(work: Path, partitions: int) -> dict:
    path = partition_dir(work, partitions) / PREP
    if not path.exists():
        raise StageError(f"{path}: run prepare_partitions for {partitions} partitions first")
    return read_json(path)


def prepare_partitions(
    work: Path, p: GraphParams, partitions: int, res: Resources = Resources()
) -> dict:
    """``reviews.parquet`` -> ``bipartite.parquet``, the item ids and P basket files; returns
    the stats so far (also kept in the partition directory for the merge)."""
    work = Path(work)
    _check(partitions)
    out = partition_dir(work, partitions)
    out.mkdir(parents=True, exist_ok=True)
    con = open_db(work, res)
    min_copurchase, max_items_per_user = p.min_copurchase, p.max_items_per_user
    stats = purchases_view(con, work, p.usable_items_only)
    stats.update(prepare(con, min_copurchase, max_items_per_user, work, partitions=partitions))
    with atomic_path(out / ITEM_IDS) as tmp:
        con.execute(
            f"COPY (SELECT asin, iid FROM item_ids ORDER BY iid) TO {_lit(tmp)} (FORMAT parquet)"
        )
    for part in range(partitions):
        with atomic_path(baskets_file(work, part, partitions)) as tmp:
            con.execute(
                f"COPY (SELECT items FROM kept_baskets WHERE part = {part}) "
                f"TO {_lit(tmp)} (FORMAT parquet)"
            )
    settings = {"min_copurchase": min_copurchase, "max_items_per_user": max_items_per_user}
    write_json(out / PREP, {"partitions": partitions, **settings, "stats": stats})
    log.info(
        "graph: %d users' baskets in %d partitions, %d pair instances to form",
        stats["users"],
        partitions,
        stats["pair_instances_after_prune"],
    )
    return stats


def project_partition(
    work: Path, p: GraphParams, part: int, partitions: int, res: Resources = Resources()
) -> dict:
    """One basket file -> its (i, j, c) partial counts, in buckets by i mod ``partitions``."""
    work = Path(work)
    _check(partitions, part)
    _prepared(work, partitions)
    con = open_db(work, res)
    src = baskets_file(work, part, partitions)
    con.execute(f"CREATE TEMP VIEW kept_baskets AS SELECT * FROM read_parquet({_lit(src)})")
    execute_script(con, "pair_instances")
    execute_script(con, "project_partial")
    dest = pairs_dir(work, part, partitions)
    # A folder of files: written beside it, then renamed into place in one step (and what a
    # killed attempt left beside it removed first).
    for stale in dest.parent.glob(f".{dest.name}.*"):
        shutil.rmtree(stale, ignore_errors=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
    try:
        con.execute(
            f"COPY (SELECT i, j, c, i % {partitions} AS bucket FROM partial_pairs) "
            f"TO {_lit(tmp / 'out')} (FORMAT parquet, PARTITION_BY (bucket))"
        )
        (tmp / "out").mkdir(exist_ok=True)  # no pairs at all: an empty folder
        shutil.rmtree(dest, ignore_errors=True)
        (tmp / "out").rename(dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    row = con.execute("SELECT count(*), coalesce(sum(c), 0) FROM partial_pairs").fetchall()[0]
    return {"part": part, "pairs": int(row[0]), "pair_instances": int(row[1])}


def merge_bucket(
    work: Path, p: GraphParams, bucket: int, partitions: int, res: Resources = Resources()
) -> dict:
    """Bucket ``bucket`` of every partition's counts, summed -> the pairs >= min_copurchase."""
    work = Path(work)
    _check(partitions, bucket, "bucket")
    prep = _prepared(work, partitions)
    missing = [
        str(d)
        for d in (pairs_dir(work, p, partitions) for p in range(partitions))
        if not d.is_dir()
    ]
    if missing:
        raise StageError(f"partitions not projected yet: {', '.join(missing)}")
    files = sorted(
        f
        for p in range(partitions)
        for f in (pairs_dir(work, p, partitions) / f"bucket={bucket}").glob("*.parquet")
    )
    con = open_db(work, res)
    if files:
        listed = ", ".join(_lit(f) for f in files)
        con.execute(
            f"CREATE TEMP VIEW partial_pairs AS SELECT i, j, c "
            f"FROM read_parquet([{listed}], hive_partitioning = false)"
        )
    else:
        con.execute("CREATE TEMP TABLE partial_pairs (i INTEGER, j INTEGER, c BIGINT)")
    execute_script(con, "merge_pairs", {"min_copurchase": prep["min_copurchase"]})
    with atomic_path(kept_file(work, bucket, partitions)) as tmp:
        con.execute(f"COPY pairs TO {_lit(tmp)} (FORMAT parquet)")
    return {"bucket": bucket, "pairs_kept": count(con, "SELECT count(*) FROM pairs")}


def merge_partitions(
    work: Path, p: GraphParams, partitions: int, res: Resources = Resources()
) -> dict:
    """The kept pairs of every bucket -> k-core -> edges.parquet and nodes.parquet, as
    ``build_graph`` writes them; returns the same stats."""
    work = Path(work)
    min_copurchase, k = p.min_copurchase, p.k
    _check(partitions)
    prep = _prepared(work, partitions)
    if prep["min_copurchase"] != min_copurchase:
        raise StageError(
            f"{partition_dir(work, partitions) / PREP} was prepared for min_copurchase "
            f"{prep['min_copurchase']}, not {min_copurchase}: prepare again"
        )
    files = [kept_file(work, b, partitions) for b in range(partitions)]
    missing = [str(f) for f in files if not f.exists()]
    if missing:
        raise StageError(f"buckets not merged yet: {', '.join(missing)}")
    con = open_db(work, res)
    ids = partition_dir(work, partitions) / ITEM_IDS
    con.execute(f"CREATE TEMP TABLE item_ids AS SELECT * FROM read_parquet({_lit(ids)})")
    listed = ", ".join(_lit(f) for f in files)
    con.execute(f"CREATE TEMP TABLE pairs AS SELECT * FROM read_parquet([{listed}])")
    stats = dict(prep["stats"])
    stats["pairs_kept"] = count(con, "SELECT count(*) FROM pairs")
    stats.update(finish(con, k))
    write_graph(con, work, stats, min_copurchase, k)
    return stats


def build_graph_partitioned(
    work: Path, p: GraphParams, partitions: int, res: Resources = Resources()
) -> dict:
    """Every step in this process, one after another (for tests and the benchmark; the
    build-category flow runs the partitions and the buckets as parallel tasks)."""
    prepare_partitions(work, p, partitions, res)
    for part in range(partitions):
        project_partition(work, p, part, partitions, res)
    for bucket in range(partitions):
        merge_bucket(work, p, bucket, partitions, res)
    return merge_partitions(work, p, partitions, res)
