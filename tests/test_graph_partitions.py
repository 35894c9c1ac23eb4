"""The partitioned projection (user-hash partitions + sum merge) gives build_graph's bytes."""

from __future__ import annotations

import json
import shutil

import polars as pl
import pytest

from pipeline.cli import main
from pipeline.errors import StageError
from pipeline.graph import GraphParams, build_graph
from pipeline.graph_partitions import (
    build_graph_partitioned,
    kept_file,
    merge_bucket,
    merge_partitions,
    pairs_dir,
    prepare_partitions,
    project_partition,
)
from tests.test_graph import _random_purchases, _work_from

OUTPUTS = ("edges.parquet", "nodes.parquet", "bipartite.parquet")
P = GraphParams()


def _twin(src, dst):
    """A copy of a work directory holding only the graph stage's inputs."""
    dst.mkdir(parents=True)
    for name in ("reviews.parquet", "items_clean.parquet"):
        if (src / name).exists():
            shutil.copy(src / name, dst / name)
    return dst


def _same_outputs(a, b) -> None:
    for name in OUTPUTS:
        assert (a / name).read_bytes() == (b / name).read_bytes(), name


@pytest.mark.parametrize("partitions", [1, 2, 3, 7])
@pytest.mark.parametrize("seed", [0, 5])
def test_partitioned_equals_single_machine(seed, partitions, tmp_path):
    single = _work_from(_random_purchases(seed), tmp_path / "single")
    parted = _twin(single, tmp_path / "parted")
    want = build_graph(single, GraphParams(min_copurchase=2, k=3))
    got = build_graph_partitioned(parted, GraphParams(min_copurchase=2, k=3), partitions)
    assert got == want
    _same_outputs(single, parted)
    # Users are split, each to one partition: the partial counts add up to every pair
    # instance; a pair lands in bucket i mod P.
    counts = _partials(parted, partitions)
    assert counts["c"].sum() == want["pair_instances_after_prune"]
    assert (counts["i"] < counts["j"]).all()
    assert (counts["i"] % partitions == counts["bucket"]).all()


def _partials(work, partitions) -> pl.DataFrame:
    frames = [
        pl.read_parquet(f, hive_partitioning=False).with_columns(
            bucket=pl.lit(int(f.parent.name.split("=")[1]))
        )
        for p in range(partitions)
        for f in sorted(pairs_dir(work, p, partitions).rglob("*.parquet"))
    ]
    return pl.concat(frames)


def test_partitioned_with_clean_items_and_heavy_users(sample_dir, tmp_path):
    """The generated category through ingest and clean (purchases of unusable items are
    counted and left out), with a heavy-user cut, on more partitions than a cluster would use."""
    main(
        [
            "graph",
            "--reviews",
            str(sample_dir / "Demo.jsonl.gz"),
            "--meta",
            str(sample_dir / "meta_Demo.jsonl.gz"),
            "--out",
            str(tmp_path / "single"),
            "--max-items-per-user",
            "12",
        ]
    )
    single = tmp_path / "single"
    parted = _twin(single, tmp_path / "parted")
    # The CLI wrote the whole build's stats.json; the graph's part must match.
    want = json.loads((single / "stats.json").read_text())
    got = build_graph_partitioned(parted, GraphParams(max_items_per_user=12), 5)
    assert got["purchases_of_unusable_items"] > 0 and got["max_items_users_removed"] > 0
    assert got["edges"] > 100
    assert got.items() <= want.items()
    _same_outputs(single, parted)


def test_empty_partitions_and_buckets_and_a_rerun(tmp_path):
    work = _work_from(_random_purchases(2), tmp_path / "w")
    single = _twin(work, tmp_path / "single")
    want = build_graph(single, GraphParams(min_copurchase=2, k=2))
    partitions = 50  # more partitions than items, so some buckets are empty
    assert build_graph_partitioned(work, GraphParams(min_copurchase=2, k=2), partitions) == want
    empty = [p for p in range(partitions) if not any(pairs_dir(work, p, partitions).iterdir())]
    assert empty
    assert pl.read_parquet(kept_file(work, partitions - 1, partitions)).height == 0
    # Running again over the finished intermediate files gives the same bytes.
    assert build_graph_partitioned(work, GraphParams(min_copurchase=2, k=2), partitions) == want
    _same_outputs(single, work)


def test_partition_steps_check_their_inputs(tmp_path):
    work = _work_from(_random_purchases(1), tmp_path / "w")
    with pytest.raises(StageError, match="prepare_partitions"):
        project_partition(work, P, 0, 2)
    with pytest.raises(ValueError, match="part 2 of 2"):
        project_partition(work, P, 2, 2)
    prepare_partitions(work, P, 2)
    project_partition(work, P, 0, 2)
    with pytest.raises(StageError, match="pairs-001"):
        merge_bucket(work, P, 0, 2)
    project_partition(work, P, 1, 2)
    merge_bucket(work, P, 0, 2)
    with pytest.raises(StageError, match="kept-001"):
        merge_partitions(work, P, 2)
    merge_bucket(work, P, 1, 2)
    with pytest.raises(StageError, match="prepared for min_copurchase 3"):
        merge_partitions(work, GraphParams(min_copurchase=2), 2)
    assert merge_partitions(work, P, 2)["min_copurchase"] == 3
