"""The CLIP-T cut is the product's own choice (issue 13.3): the settings the card names build
without it."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from pipeline import workdir
from pipeline.filter import FilterParams
from pipeline.runner import run_stage
from pipeline.stages import FILTER, check_settings
from tests.assemble_fixtures import make_work


def _filtered(work: Path, **settings) -> tuple[list, list, dict]:
    stats, _ = run_stage(FILTER, work, FilterParams(**settings))
    nodes = pl.read_parquet(work / workdir.FINAL_NODES)["asin"].sort().to_list()
    edges = pl.read_parquet(work / workdir.FINAL_EDGES).sort("src_asin", "dst_asin").rows()
    return nodes, edges, stats


@pytest.fixture
def work(tmp_path: Path) -> Path:
    work = tmp_path / "work"
    make_work(work, n=60)  # CLIP-T ~ N(30, 4) and N(28, 4): every score positive
    return work


def test_none_and_zero_both_build_uncut(work: Path) -> None:
    scores = pl.read_parquet(work / workdir.CLIP_SCORES)
    assert scores["clip_t_title"].min() > 0 and scores["clip_t_desc"].min() > 0
    none = _filtered(work, min_clip_t=None, clip_t_percentile=None)
    zero = _filtered(work, min_clip_t=0.0, clip_t_percentile=0.0)
    cut = _filtered(work)  # the defaults: a floor of 15, the bottom 5% on both fields
    assert none[0] == zero[0] and none[1] == zero[1]
    assert none[2]["removed_by_clip_t"] == zero[2]["removed_by_clip_t"] == 0
    assert len(none[0]) == 60  # nothing else in this work dir fails a rule
    assert cut[2]["removed_by_clip_t"] > 0 and len(cut[0]) < 60


def test_a_zero_floor_cuts_negative_scores(work: Path) -> None:
    """What the card says of random-weight models: min_clip_t=0 cuts negative cosines, only
    none builds uncut then."""
    path = work / workdir.CLIP_SCORES
    scores = pl.read_parquet(path)
    victim = scores["asin"][0]
    scores.with_columns(
        pl.when(pl.col("asin") == victim)
        .then(-1.0)
        .otherwise(pl.col("clip_t_title"))
        .alias("clip_t_title")
    ).write_parquet(path)
    assert pl.read_parquet(path).filter(pl.col("asin") == victim)["clip_t_title"][0] == -1.0
    zero = _filtered(work, min_clip_t=0.0, clip_t_percentile=0.0)
    none = _filtered(work, min_clip_t=None, clip_t_percentile=None)
    assert zero[2]["removed_by_clip_t"] == 1 and victim not in zero[0]
    assert none[2]["removed_by_clip_t"] == 0 and victim in none[0]


def test_the_card_s_settings_parse() -> None:
    """`--set min_clip_t=none --set clip_t_percentile=none` and the 0 / 0 form, as the CLI
    passes them (strings, or JSON null)."""
    assert check_settings({"min_clip_t": "none", "clip_t_percentile": None}) == {
        "min_clip_t": None,
        "clip_t_percentile": None,
    }
    assert check_settings({"min_clip_t": 0, "clip_t_percentile": "0"}) == {
        "min_clip_t": 0.0,
        "clip_t_percentile": 0.0,
    }
