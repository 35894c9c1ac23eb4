"""Quality-filter fixpoint: checked against networkx on seeded random graphs and by hand."""

from __future__ import annotations

import itertools
import json
import shutil
from pathlib import Path

import networkx as nx
import numpy as np
import polars as pl
import pytest

from pipeline import workdir
from pipeline.errors import StageError
from pipeline.filter import FilterParams, filter_fixpoint
from tests.clip_fixtures import asin, random_edges, write_graph, write_images, write_items


def _full_filter(work, **settings) -> dict:
    """The filter with no CLIP-T cut unless asked; its full record (filter_stats.json)."""
    filter_fixpoint(
        work, FilterParams(**{"min_clip_t": None, "clip_t_percentile": None} | settings)
    )
    return json.loads((work / workdir.FILTER_STATS).read_text())


def write_scores(work: Path, scores: dict[str, tuple[float, float]]) -> None:
    """clip/index.parquet and clip/scores.parquet for the given asins (no model needed)."""
    out = work / workdir.CLIP_DIR
    out.mkdir(parents=True, exist_ok=True)
    asins = sorted(scores)
    pl.DataFrame({"asin": asins, "row": np.arange(len(asins), dtype=np.int64)}).write_parquet(
        out / "index.parquet"
    )
    pl.DataFrame(
        {
            "asin": asins,
            "clip_t_title": [float(scores[a][0]) for a in asins],
            "clip_t_desc": [float(scores[a][1]) for a in asins],
        }
    ).write_parquet(out / "scores.parquet")


def make_work(
    work: Path,
    edges: pl.DataFrame,
    scores: dict[str, tuple[float, float]],
    no_item: set[str] = frozenset(),
    image_status: dict[str, str] | None = None,
    no_image_row: set[str] = frozenset(),
) -> list[str]:
    write_graph(work, edges)
    nodes = sorted(set(edges["src_asin"]) | set(edges["dst_asin"]))
    write_items(work, [a for a in nodes if a not in no_item])
    write_images(work, [a for a in nodes if a not in no_image_row], status=image_status, size=32)
    write_scores(work, scores)
    return nodes


def oracle(edges: pl.DataFrame, good: set[str], k: int, min_w: int) -> nx.Graph:
    """k-core of the >= min_w graph restricted to the good nodes (the bad set is static)."""
    g = nx.Graph()
    g.add_edges_from(
        edges.filter(pl.col("weight") >= min_w).select("src_asin", "dst_asin").iter_rows()
    )
    g.remove_nodes_from([n for n in list(g) if n not in good])
    return nx.k_core(g, k)


def check_fixpoint(work: Path, k: int = 5, min_w: int = 3) -> tuple[pl.DataFrame, pl.DataFrame]:
    nodes = pl.read_parquet(work / workdir.FINAL_DIR / "nodes.parquet")
    edges = pl.read_parquet(work / workdir.FINAL_DIR / "edges.parquet")
    assert nodes.schema == {"asin": pl.String, "degree": pl.Int64}
    assert edges.schema == {"src_asin": pl.String, "dst_asin": pl.String, "weight": pl.Int64}
    if nodes.height:
        assert nodes["degree"].min() >= k
        assert edges["weight"].min() >= min_w
    assert (edges["src_asin"] < edges["dst_asin"]).all()
    ends = set(edges["src_asin"]) | set(edges["dst_asin"])
    assert ends == set(nodes["asin"])
    deg = pl.concat([edges.select(a="src_asin"), edges.select(a="dst_asin")])["a"].value_counts()
    assert dict(deg.iter_rows()) == dict(nodes.iter_rows())
    return nodes, edges


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_fixpoint_matches_networkx_on_random_graphs(tmp_path, seed):
    rng = np.random.default_rng(seed)
    n = 70
    edges = random_edges(n, 0.22, seed=seed)
    nodes = sorted(set(edges["src_asin"]) | set(edges["dst_asin"]))
    scores = {a: (float(rng.normal(30, 4)), float(rng.normal(29, 4))) for a in nodes}
    picks = rng.permutation(nodes)
    no_item, placeholder, failed, no_emb = (
        set(picks[:2]), set(picks[2:5]), {picks[5]}, {picks[6]},
    )  # fmt: skip
    for a in no_emb:
        del scores[a]
    make_work(
        tmp_path, edges, scores, no_item=no_item,
        image_status={**dict.fromkeys(placeholder, "placeholder"), **dict.fromkeys(failed, "failed")},
    )  # fmt: skip
    stats = _full_filter(tmp_path, min_clip_t=24.0)
    got, _ = check_fixpoint(tmp_path)
    low = {a for a, (t, d) in scores.items() if t < 24.0 or d < 24.0}
    bad = no_item | placeholder | failed | no_emb | low
    want = oracle(edges, set(nodes) - bad, 5, 3)
    assert set(got["asin"]) == set(want.nodes)
    assert got.height > 10  # the test graph keeps a real core
    final_edges = pl.read_parquet(tmp_path / workdir.FINAL_DIR / "edges.parquet")
    assert final_edges.height == want.number_of_edges()
    # Counting: every candidate is either kept or removed once, under one reason.
    removed = pl.read_parquet(tmp_path / workdir.FINAL_DIR / "removed_nodes.parquet")
    assert removed["asin"].n_unique() == removed.height
    assert set(removed["asin"]) | set(got["asin"]) == set(nodes)
    assert sum(stats["removed"].values()) == len(nodes) - got.height
    assert stats["removed"].get("no_item", 0) == len(no_item)
    assert stats["removed"].get("image_placeholder", 0) == len(placeholder - no_item)
    assert stats["rounds"][-1]["removed_quality"] == {}
    assert stats["rounds"][-1]["removed_kcore"] == 0
    assert stats["thresholds"] == {"clip_t_title": 24.0, "clip_t_desc": 24.0}


def test_cascade_and_reasons_by_hand(tmp_path):
    # K7 on core nodes 0..6 (degree 6) survives; K6 on ring nodes 10..15 has degree 5 and
    # collapses when node 10 (low title CLIP-T) goes; edges of weight 2 never count.
    core = [asin(i) for i in range(7)]
    ring = [asin(i) for i in range(10, 16)]
    rows = [(a, b, 3) for a, b in itertools.combinations(core, 2)]
    rows += [(a, b, 4) for a, b in itertools.combinations(ring, 2)]
    rows += [(asin(0), asin(10), 2), (asin(1), asin(11), 2)]  # below min_copurchase
    edges = pl.DataFrame(rows, schema=["src_asin", "dst_asin", "weight"], orient="row")
    edges = edges.with_columns(pl.col("weight").cast(pl.Int64))
    scores = {a: (30.0, 30.0) for a in core + ring}
    scores[asin(10)] = (10.0, 30.0)
    make_work(tmp_path, edges, scores)
    stats = _full_filter(tmp_path, min_clip_t=20.0)
    nodes, final_edges = check_fixpoint(tmp_path)
    assert nodes["asin"].to_list() == core and nodes["degree"].to_list() == [6] * 7
    assert final_edges.height == 21
    assert stats["removed"] == {"kcore": 5, "low_clip_t_title": 1}
    assert stats["removed_by_clip_t"] == 1
    assert stats["input"] == {"edges": 38, "edges_min_copurchase": 36, "nodes": 13}
    r1 = stats["rounds"][0]
    assert r1["removed_quality"] == {"low_clip_t_title": 1} and r1["removed_kcore"] == 5
    assert len(stats["rounds"]) == 2  # round 2 confirms nothing changes
    removed = pl.read_parquet(tmp_path / workdir.FINAL_DIR / "removed_nodes.parquet")
    assert dict(zip(removed["asin"], removed["reason"], strict=True))[asin(10)] == (
        "low_clip_t_title"
    )
    # Without any CLIP-T threshold the ring survives.
    stats = _full_filter(tmp_path)
    assert stats["nodes"] == 13 and stats["removed_by_clip_t"] == 0
    assert stats["thresholds"] == {"clip_t_title": None, "clip_t_desc": None}


def test_clip_t_fields_modes(tmp_path):
    core = [asin(i) for i in range(9)]
    edges = pl.DataFrame(
        [(a, b, 5) for a, b in itertools.combinations(core, 2)],
        schema={"src_asin": pl.String, "dst_asin": pl.String, "weight": pl.Int64},
        orient="row",
    )
    scores = {a: (30.0, 30.0) for a in core}
    scores[asin(0)] = (10.0, 30.0)  # low title
    scores[asin(1)] = (30.0, 10.0)  # low description
    scores[asin(2)] = (10.0, 10.0)  # both low
    make_work(tmp_path, edges, scores)
    dropped = {}
    for mode in ("both", "title", "desc", "either"):
        _full_filter(tmp_path, min_clip_t=20.0, clip_t_fields=mode)
        kept = set(pl.read_parquet(tmp_path / workdir.FINAL_DIR / "nodes.parquet")["asin"])
        dropped[mode] = set(core) - kept
    assert dropped["both"] == {asin(0), asin(1), asin(2)}
    assert dropped["title"] == {asin(0), asin(2)}
    assert dropped["desc"] == {asin(1), asin(2)}
    assert dropped["either"] == {asin(2)}


def test_percentile_threshold_is_computed_once_over_candidates(tmp_path):
    rng = np.random.default_rng(5)
    edges = random_edges(60, 0.3, seed=5)
    nodes = sorted(set(edges["src_asin"]) | set(edges["dst_asin"]))
    scores = {a: (float(rng.normal(30, 4)), float(rng.normal(29, 4))) for a in nodes}
    # Scores of items outside the graph must not move the percentile.
    outside = {f"X{i:09d}": (-500.0, -500.0) for i in range(200)}
    make_work(tmp_path, edges, {**scores, **outside})
    # Candidates: nodes of the >= 3 graph.
    cand = set(edges.filter(pl.col("weight") >= 3)["src_asin"]) | set(
        edges.filter(pl.col("weight") >= 3)["dst_asin"]
    )
    title = np.array([scores[a][0] for a in sorted(cand)])
    desc = np.array([scores[a][1] for a in sorted(cand)])
    stats = _full_filter(tmp_path, clip_t_percentile=20)
    th = stats["thresholds"]
    assert th["clip_t_title"] == pytest.approx(np.percentile(title, 20))
    assert th["clip_t_desc"] == pytest.approx(np.percentile(desc, 20))
    got, _ = check_fixpoint(tmp_path)
    good = {
        a for a in cand if scores[a][0] >= th["clip_t_title"] and scores[a][1] >= th["clip_t_desc"]
    }
    assert set(got["asin"]) == set(oracle(edges, good, 5, 3).nodes)
    assert got.height > 0 and len(stats["rounds"]) == 2
    # The larger of the absolute and the percentile threshold wins.
    stats = _full_filter(tmp_path, clip_t_percentile=20, min_clip_t=31.0)
    assert stats["thresholds"]["clip_t_title"] == 31.0
    assert stats["thresholds"]["clip_t_desc"] == pytest.approx(max(31.0, np.percentile(desc, 20)))


def test_output_is_a_fixpoint_and_deterministic(tmp_path):
    rng = np.random.default_rng(9)
    edges = random_edges(60, 0.25, seed=9)
    nodes = sorted(set(edges["src_asin"]) | set(edges["dst_asin"]))
    scores = {a: (float(rng.normal(30, 4)), float(rng.normal(29, 4))) for a in nodes}
    a_dir, b_dir = tmp_path / "a", tmp_path / "b"
    make_work(a_dir, edges, scores, image_status={nodes[0]: "placeholder"})
    shutil.copytree(a_dir, b_dir)
    _full_filter(a_dir, clip_t_percentile=10)
    _full_filter(b_dir, clip_t_percentile=10)
    for f in ("nodes.parquet", "edges.parquet", "removed_nodes.parquet", "filter_stats.json"):
        assert (a_dir / "final" / f).read_bytes() == (b_dir / "final" / f).read_bytes(), f
    # Filtering the result again with the thresholds it used changes nothing in one round.
    fstats = json.loads((a_dir / "final" / "filter_stats.json").read_text())
    again = tmp_path / "again"
    shutil.copytree(a_dir, again)
    shutil.copy(a_dir / "final" / "edges.parquet", again / workdir.EDGES)
    st = _full_filter(again, min_clip_t=None, clip_t_percentile=None)
    assert len(st["rounds"]) == 1 and st["nodes"] == fstats["nodes"]
    assert st["removed"] == {}
    summary = filter_fixpoint(a_dir, FilterParams(min_clip_t=None, clip_t_percentile=10))
    assert summary["nodes"] == fstats["nodes"] and summary["params"]["clip_t_percentile"] == 10
    assert summary["rounds"] == len(fstats["rounds"])


def test_missing_image_row_and_embedding_are_reasons(tmp_path):
    core = [asin(i) for i in range(8)]
    edges = pl.DataFrame(
        [(a, b, 3) for a, b in itertools.combinations(core, 2)],
        schema={"src_asin": pl.String, "dst_asin": pl.String, "weight": pl.Int64},
        orient="row",
    )
    scores = {a: (30.0, 30.0) for a in core if a != asin(1)}
    make_work(tmp_path, edges, scores, no_image_row={asin(0)})
    stats = _full_filter(tmp_path)
    assert stats["removed"] == {"image_missing": 1, "no_embedding": 1}
    assert stats["nodes"] == 6


def test_bad_arguments_and_missing_inputs(tmp_path):
    with pytest.raises(StageError, match="percentile"):
        FilterParams(clip_t_percentile=101)
    with pytest.raises(StageError, match="finite"):
        FilterParams(min_clip_t=float("nan"))
    with pytest.raises(StageError, match="clip_t_fields"):
        FilterParams(clip_t_fields="all")
    with pytest.raises(StageError, match="edges.parquet"):
        _full_filter(tmp_path)
