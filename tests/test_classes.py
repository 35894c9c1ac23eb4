"""Class labels from one level of the category taxonomy."""

from __future__ import annotations

import json
import math
from pathlib import Path

import polars as pl
import pytest

from pipeline.classes import (
    OTHER,
    ClassesParams,
    assign_labels,
    choose_classes,
    class_index,
    evaluate_level,
    level_labels,
    normalized_entropy,
    path_names,
    select_level,
)
from pipeline.errors import UserError
from pipeline.publish.assemble import AssembleParams
from pipeline.runner import run_stage
from pipeline.stages import CLASSES
from pipeline.stats import merged
from tests.assemble_fixtures import make_work


def test_normalized_entropy() -> None:
    assert normalized_entropy([5, 5, 5, 5]) == pytest.approx(1.0)
    assert normalized_entropy([10]) == 0.0
    assert normalized_entropy([]) == 0.0
    assert normalized_entropy([3, 0, 3]) == pytest.approx(1.0)  # empty classes ignored
    p = [0.9, 0.1]
    want = -(p[0] * math.log(p[0]) + p[1] * math.log(p[1])) / math.log(2)
    assert normalized_entropy([90, 10]) == pytest.approx(want)
    assert normalized_entropy([90, 10]) < normalized_entropy([60, 40])


def test_level_labels_and_rare_merging() -> None:
    paths = [["E", "A", "x"], ["E", "A"], ["E", "B", " y "], None, ["E", "", "z"]]
    assert level_labels(paths, 0) == ["E", "E", "E", None, "E"]
    assert level_labels(paths, 1) == ["A", "A", "B", None, None]
    assert level_labels(paths, 2) == ["x", None, "y", None, "z"]
    labels = ["A", "A", "B", None, "A"]
    assert assign_labels(labels, 2, "other") == ["A", "A", OTHER, OTHER, "A"]
    assert assign_labels(labels, 2, "drop") == ["A", "A", None, None, "A"]
    with pytest.raises(ValueError):
        assign_labels(labels, 2, "keep")


def _tree(groups: dict[str, dict[str, int]]) -> list[list[str]]:
    """Category paths: {parent: {leaf: nodes}} under the main category "E"."""
    return [
        ["E", top, leaf]
        for top, leaves in groups.items()
        for leaf, n in leaves.items()
        for _ in range(n)
    ]


def test_select_level_rewards_diversity_and_balance() -> None:
    """The issue's case: 3 equal classes (balance 1.000) against 10 classes (balance ~0.91).
    Normalised entropy alone took the 3; entropy in bits takes the 10."""
    paths = _tree(
        {
            "P1": {"a": 50, "b": 6, "c": 5, "d": 5},
            "P2": {"e": 22, "f": 22, "g": 22},
            "P3": {"h": 22, "i": 22, "j": 22},
        }
    )
    level, evals = select_level(paths, min_classes=3, min_items_per_class=5)
    assert level == 2
    one, two = evals[1], evals[2]
    assert (one["classes"], one["balance"]) == (3, 1.0)
    assert two["classes"] == 10 and 0.90 < two["balance"] < 0.92
    assert one["balance"] > two["balance"]  # what the old rule went by
    assert one["entropy_bits"] == pytest.approx(math.log2(3), abs=1e-6)
    assert two["entropy_bits"] > 3.0 and two["effective_classes"] > 8
    assert two["eligible"] and two["why_not"] is None
    assert one["why_not"].startswith("lower entropy")
    assert evals[0]["why_not"] == "fewer than 3 classes"
    # The class-count range: with at most 5 classes the 10-class level is out.
    level, evals = select_level(paths, min_classes=3, max_classes=5, min_items_per_class=5)
    assert level == 1 and evals[2]["why_not"] == "more than 5 classes"
    with pytest.raises(UserError, match="no category level has 4 to 5 classes"):
        select_level(paths, min_classes=4, max_classes=5, min_items_per_class=5)


def test_select_level_balance_still_counts() -> None:
    """A finer level never has less entropy than the level above it (a refinement), unless
    nodes leave it: with rare="drop", level 2 keeps three classes of 100, 5 and 5 nodes
    (0.5 bits) against level 1's three equal ones (1.58 bits)."""
    rare_b = {f"b{i}": 4 for i in range(24)}
    rare_c = {f"c{i}": 4 for i in range(24)}
    paths = _tree({"A": {"a": 96}, "B": {"b": 5, **rare_b}, "C": {"c": 5, **rare_c}})
    level, evals = select_level(paths, min_classes=3, min_items_per_class=5, rare="drop")
    assert level == 1
    assert evals[2]["classes"] == 3 and evals[2]["dropped_items"] == 192
    assert evals[2]["entropy_bits"] < 1.0 < evals[1]["entropy_bits"]


def test_select_level_tie_goes_to_more_classes() -> None:
    paths = [["E", f"c{i % 2}", f"d{i % 4}"] for i in range(40)]
    level, _ = select_level(paths, min_classes=2, min_items_per_class=5)
    assert level == 2


def test_same_named_children_of_different_parents_stay_apart() -> None:
    paths = _tree(
        {"Cameras": {"Accessories": 6, "Lenses": 6}, "Audio": {"Accessories": 6, "Speakers": 6}}
    )
    names = level_labels(paths, 2)
    assert set(names) == {"Cameras > Accessories", "Lenses", "Audio > Accessories", "Speakers"}
    e = evaluate_level(paths, 2, min_classes=2, min_items_per_class=5)
    assert e["classes"] == 4  # not 3: the two "Accessories" are two classes
    # Deeper: the parent names repeat too, so the grandparent tells them apart.
    deep = [
        ["E", "Home", "Kitchen", "Tools"],
        ["E", "Garden", "Kitchen", "Tools"],
        ["E", "Garden", "Patio", "Tools"],
        ["E", "Garden", "Patio", "Lights"],
    ]
    assert level_labels(deep, 3) == [
        "Home > Kitchen > Tools",
        "Garden > Kitchen > Tools",
        "Patio > Tools",
        "Lights",
    ]
    assert path_names({("E", "X")}) == {("E", "X"): "X"}


def test_evaluate_level_counts_other_and_dropped() -> None:
    paths = [["E", "A"]] * 6 + [["E", "B"]] * 2 + [["E"]] * 3
    e = evaluate_level(paths, 1, min_classes=1, min_items_per_class=5, rare="other")
    assert (e["classes"], e["other_items"], e["dropped_items"]) == (1, 5, 0)
    e = evaluate_level(paths, 1, min_classes=1, min_items_per_class=5, rare="drop")
    assert (e["classes"], e["other_items"], e["dropped_items"]) == (1, 0, 5)


def test_class_index_sorted_other_last() -> None:
    assert class_index(["b", OTHER, "a", "b"]) == {"a": 0, "b": 1, OTHER: 2}
    assert class_index(["z", "y"]) == {"y": 0, "z": 1}


def test_choose_classes_writes_work_files(tmp_path: Path) -> None:
    make_work(tmp_path, n=60)
    params = ClassesParams(min_classes=2, max_classes=5, min_items_per_class=5)
    res, _ = run_stage(CLASSES, tmp_path, params)
    assert res["level"] == 1 and res["automatic"]
    assert res["reason"].startswith("level 1 has the highest class entropy among the levels")
    assert [lv["why_not"] for lv in res["levels"]] == [
        "fewer than 2 classes",
        None,
        "more than 5 classes",
    ]
    assert res["num_classes"] == 4 and res["nodes"] == 60
    classes = pl.read_parquet(tmp_path / "classes.parquet")
    assert classes.columns == ["asin", "class", "class_name"]
    assert classes["asin"].to_list() == sorted(classes["asin"].to_list())
    mapping = json.loads((tmp_path / "node_categories.json").read_text())
    assert mapping == {"0": "Audio", "1": "Cables", "2": "Cameras", "3": "Storage"}
    for c, name in classes.select("class", "class_name").iter_rows():
        assert mapping[str(c)] == name
    stats = merged(tmp_path)
    assert stats["classes"] == res  # the stage's record
    assert stats["reviews_read"] > 0  # beside the other stages' counters


def test_choose_classes_fixed_level_merges_rare_into_other(tmp_path: Path) -> None:
    make_work(tmp_path, n=60)
    res = choose_classes(
        tmp_path, ClassesParams(taxonomy_level=2, min_classes=2, min_items_per_class=5)
    )
    assert res["level"] == 2 and not res["automatic"]
    mapping = json.loads((tmp_path / "node_categories.json").read_text())
    assert mapping[str(len(mapping) - 1)] == OTHER
    assert res["other_items"] > 0
    assert sum(res["class_sizes"].values()) == 60
    with pytest.raises(UserError, match="out of range"):
        choose_classes(tmp_path, ClassesParams(taxonomy_level=3))


def _add_satellites(work: Path, asins: list[str]) -> None:
    """Two extra final nodes: R (a category of its own) joined to ring nodes 0..5, and S (a
    common category) joined to R and ring nodes 10..13, so S has degree exactly 5."""
    ring = sorted(asins)
    r, s = "R000000001", "S000000001"
    new_edges = [(r, ring[i]) for i in range(6)] + [(r, s)] + [(s, ring[i]) for i in range(10, 14)]
    final = work / "final"
    edges = pl.read_parquet(final / "edges.parquet")
    extra = pl.DataFrame(
        {
            "src_asin": [min(a, b) for a, b in new_edges],
            "dst_asin": [max(a, b) for a, b in new_edges],
            "weight": [5] * len(new_edges),
        },
        schema=edges.schema,
    )
    edges = pl.concat([edges, extra]).sort("src_asin", "dst_asin")
    edges.write_parquet(final / "edges.parquet")
    ends = pl.concat([edges["src_asin"], edges["dst_asin"]]).value_counts()
    ends.rename({"src_asin": "asin", "count": "degree"}).cast({"degree": pl.Int64}).sort(
        "asin"
    ).write_parquet(final / "nodes.parquet")
    items = pl.read_parquet(work / "items_clean.parquet")
    more = items.head(2).with_columns(
        pl.Series("asin", [r, s]),
        pl.Series("categories", [["Electronics", "Rare", "x"], ["Electronics", "Audio", "y"]]),
    )
    pl.concat([items, more]).write_parquet(work / "items_clean.parquet")


def test_choose_classes_drop_recomputes_the_k_core(tmp_path: Path) -> None:
    info = make_work(tmp_path, n=60)
    _add_satellites(tmp_path, info["asins"])
    # With "other", R goes to Other and both satellites stay.
    res = choose_classes(
        tmp_path, ClassesParams(taxonomy_level=1, min_classes=2, min_items_per_class=5)
    )
    assert res["nodes"] == 62 and res["other_items"] == 1
    # With "drop", R is dropped and S falls out of the recomputed 5-core (degree 4).
    res, _ = run_stage(
        CLASSES,
        tmp_path,
        ClassesParams(taxonomy_level=1, min_classes=2, min_items_per_class=5, rare="drop", k=5),
    )
    assert (res["dropped_items"], res["dropped_by_kcore"], res["nodes"]) == (1, 1, 60)
    classes = pl.read_parquet(tmp_path / "classes.parquet")
    assert sorted(classes["asin"].to_list()) == sorted(info["asins"])
    assert OTHER not in classes["class_name"].to_list()
    # The assemble step publishes exactly those nodes, with min degree >= 5.
    from pipeline.publish.assemble import assemble_category

    out = assemble_category(tmp_path, tmp_path / "pub", AssembleParams(category="Electronics"))
    edges = pl.read_parquet(out / "edges.parquet")
    deg = pl.concat([edges["src"], edges["dst"]]).value_counts()
    assert deg.height == 60 and deg["count"].min() >= 5
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["counts"]["nodes"] == 60
    assert manifest["stats"]["publish"]["nodes_without_class"] == 2


def test_choose_classes_rejects_bad_input(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="no graph nodes"):
        choose_classes(tmp_path)
    make_work(tmp_path, n=60)
    with pytest.raises(UserError, match="rare must be"):
        choose_classes(tmp_path, ClassesParams(rare="keep"))
    with pytest.raises(UserError, match="no category level"):
        choose_classes(tmp_path, ClassesParams(min_classes=20, min_items_per_class=5))
