"""Class labels: one level of the category taxonomy, chosen per category for balance.

A node's category path (``items.categories``, top level first) gives one candidate label per
level. Level 0 is usually the main category itself (one class), deeper levels split it
finer. For a level, labels with fewer than ``min_items_per_class`` nodes are rare; nodes with
a rare label or a path too short for the level are merged into "Other" (``rare="other"``,
the default) or dropped (``rare="drop"``). The automatic choice takes, among the levels that
keep at least ``min_classes`` real classes, the one whose class distribution has the highest
normalised entropy (1.0 = all classes equally large); ties go to more classes, then to the
shallower level.

``rare="drop"`` removes nodes from the graph, so the k-core is recomputed here
(``pipeline.graph.k_core``): ``classes.parquet`` then lists only the surviving nodes and the
assemble step keeps exactly those (the k-core is an induced subgraph, so their edges are the
final edges between them).

Class indices are deterministic: real classes sorted by name, then "Other" last.
"""

from __future__ import annotations

import json
import logging
import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import polars as pl

from pipeline import workdir
from pipeline.errors import UserError
from pipeline.io import atomic_path
from pipeline.params import param
from pipeline.resources import Resources

log = logging.getLogger(__name__)

OTHER = "Other"
DEFAULT_MIN_CLASSES = 3
DEFAULT_MIN_ITEMS_PER_CLASS = 10
RARE_MODES = ("other", "drop")


@dataclass(frozen=True)
class ClassesParams:
    taxonomy_level: int | Literal["auto"] = param(
        "auto",
        "class level of the category path (0 = the main category itself, 1 = the first "
        "level under it), or auto for the most balanced level",
        flag="--level",
    )
    min_classes: int = param(DEFAULT_MIN_CLASSES, "a level needs at least this many classes")
    min_items_per_class: int = param(
        DEFAULT_MIN_ITEMS_PER_CLASS, "labels with fewer nodes are rare"
    )
    rare: str = param(
        "other", "rare labels: merged into Other, or their nodes dropped", choices=RARE_MODES
    )
    k: int = param(5, "k of the k-core (recomputed when rare=drop removes nodes)")

    def __post_init__(self) -> None:
        if self.rare not in RARE_MODES:
            raise UserError(f"rare must be one of {RARE_MODES}, got {self.rare!r}")


def normalized_entropy(counts: Iterable[int]) -> float:
    """Shannon entropy of the class sizes divided by log(#classes): 1.0 = perfectly balanced.

    Empty classes are ignored; fewer than two classes give 0.0 (no balance to speak of).
    """
    sizes = [int(c) for c in counts if c > 0]
    if len(sizes) < 2:
        return 0.0
    total = float(sum(sizes))
    h = -sum((c / total) * math.log(c / total) for c in sizes)
    return h / math.log(len(sizes))


def _clean(name: object) -> str | None:
    if name is None:
        return None
    s = str(name).strip()
    return s or None


def level_labels(paths: Sequence[Sequence[str] | None], level: int) -> list[str | None]:
    """The label at ``level`` (0 = top) of every category path; None when the path is shorter."""
    out: list[str | None] = []
    for p in paths:
        out.append(_clean(p[level]) if p is not None and len(p) > level else None)
    return out


def assign_labels(
    labels: Sequence[str | None], min_items_per_class: int, rare: str = "other"
) -> list[str | None]:
    """Final class name per node: rare or missing labels become "Other", or None to drop."""
    if rare not in RARE_MODES:
        raise ValueError(f"rare must be one of {RARE_MODES}, got {rare!r}")
    counts = Counter(lab for lab in labels if lab is not None and lab != OTHER)
    kept = {lab for lab, c in counts.items() if c >= min_items_per_class}
    fallback = OTHER if rare == "other" else None
    return [lab if lab in kept else fallback for lab in labels]


def evaluate_level(
    paths: Sequence[Sequence[str] | None],
    level: int,
    min_classes: int,
    min_items_per_class: int,
    rare: str = "other",
) -> dict:
    """Class statistics of one level: real classes kept, balance, nodes merged or dropped."""
    assigned = assign_labels(level_labels(paths, level), min_items_per_class, rare)
    sizes = Counter(a for a in assigned if a is not None)
    real = sorted(name for name in sizes if name != OTHER)
    return {
        "level": level,
        "classes": len(real),
        "balance": round(normalized_entropy(sizes.values()), 6),
        "other_items": sizes.get(OTHER, 0),
        "dropped_items": sum(1 for a in assigned if a is None),
        "eligible": len(real) >= min_classes,
    }


def select_level(
    paths: Sequence[Sequence[str] | None],
    min_classes: int = DEFAULT_MIN_CLASSES,
    min_items_per_class: int = DEFAULT_MIN_ITEMS_PER_CLASS,
    rare: str = "other",
) -> tuple[int, list[dict]]:
    """The most balanced eligible level and the evaluation of every level.

    Raises UserError when no level has ``min_classes`` classes of ``min_items_per_class``.
    """
    depth = max((len(p) for p in paths if p is not None), default=0)
    evals = [
        evaluate_level(paths, lv, min_classes, min_items_per_class, rare) for lv in range(depth)
    ]
    eligible = [e for e in evals if e["eligible"]]
    if not eligible:
        summary = ", ".join(f"level {e['level']}: {e['classes']} classes" for e in evals) or "none"
        raise UserError(
            f"no category level has at least {min_classes} classes of at least "
            f"{min_items_per_class} nodes ({summary}); lower min_classes / "
            "min_items_per_class or set the level explicitly"
        )
    best = max(eligible, key=lambda e: (e["balance"], e["classes"], -e["level"]))
    return best["level"], evals


def class_index(names: Iterable[str]) -> dict[str, int]:
    """Deterministic class indices: names sorted, "Other" last."""
    uniq = sorted(set(names) - {OTHER})
    if OTHER in set(names):
        uniq.append(OTHER)
    return {name: i for i, name in enumerate(uniq)}


def write_node_categories(path: Path, index: dict[str, int]) -> None:
    """node_categories.json: {"<class index>": "<name>"} in index order."""
    mapping = {str(i): name for name, i in sorted(index.items(), key=lambda kv: kv[1])}
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(mapping, indent=2, ensure_ascii=False) + "\n")


def choose_classes(
    work: Path, p: ClassesParams = ClassesParams(), res: Resources = Resources()
) -> dict:
    """Label every final node; write work/classes.parquet and work/node_categories.json.

    ``p.taxonomy_level`` fixes the taxonomy level (0 = top); "auto" chooses it. Returns the
    statistics.
    """
    work = Path(work)
    level = None if p.taxonomy_level == "auto" else int(p.taxonomy_level)
    min_classes, min_items_per_class, rare, k = p.min_classes, p.min_items_per_class, p.rare, p.k
    nodes_path, edges_path = workdir.final_graph(work)
    if not nodes_path.exists():
        raise UserError(f"{work}: no graph nodes ({nodes_path}); run the graph stage first")
    nodes = pl.read_parquet(nodes_path, columns=["asin"]).unique().sort("asin")
    items = pl.read_parquet(workdir.items(work), columns=["asin", "categories"]).unique(
        subset="asin", keep="first", maintain_order=True
    )
    table = nodes.join(items, on="asin", how="left").sort("asin")
    asins = table["asin"].to_list()
    paths = table["categories"].to_list()
    if not asins:
        raise UserError(f"{work}: the graph has no nodes")

    depth = max((len(p) for p in paths if p is not None), default=0)
    if level is None:
        chosen, evals = select_level(paths, min_classes, min_items_per_class, rare)
    else:
        if level < 0 or level >= depth:
            raise UserError(
                f"class level {level} is out of range: category paths have {depth} levels"
            )
        chosen = level
        evals = [
            evaluate_level(paths, lv, min_classes, min_items_per_class, rare) for lv in range(depth)
        ]
        if not evals[chosen]["eligible"]:
            log.warning(
                "level %d keeps only %d classes of >= %d nodes",
                chosen,
                evals[chosen]["classes"],
                min_items_per_class,
            )

    assigned = assign_labels(level_labels(paths, chosen), min_items_per_class, rare)
    labelled = pl.DataFrame(
        {"asin": asins, "class_name": assigned}, schema={"asin": pl.String, "class_name": pl.String}
    )
    dropped = labelled.filter(pl.col("class_name").is_null()).height
    labelled = labelled.filter(pl.col("class_name").is_not_null())
    removed_by_kcore = 0
    if dropped:
        # Dropping nodes can push neighbours below k: recompute the k-core on what is left.
        from pipeline.graph import k_core

        keep = labelled["asin"]
        edges = pl.read_parquet(edges_path, columns=["src_asin", "dst_asin", "weight"]).filter(
            pl.col("src_asin").is_in(keep.implode()) & pl.col("dst_asin").is_in(keep.implode())
        )
        core = k_core(edges, k)
        survivors = pl.concat([core["src_asin"], core["dst_asin"]]).unique()
        before = labelled.height
        labelled = labelled.filter(pl.col("asin").is_in(survivors.implode()))
        removed_by_kcore = before - labelled.height
        if labelled.is_empty():
            raise UserError(f"dropping rare classes left an empty {k}-core")

    index = class_index(labelled["class_name"].to_list())
    out = labelled.with_columns(
        pl.col("class_name").replace_strict(index, return_dtype=pl.Int64).alias("class")
    ).select("asin", "class", "class_name")
    with atomic_path(work / workdir.CLASSES) as tmp:
        out.write_parquet(tmp, compression="zstd", statistics=True)
    write_node_categories(work / workdir.NODE_CATEGORIES, index)

    sizes = Counter(out["class_name"].to_list())
    result = {
        "level": chosen,
        "automatic": level is None,
        "rare": rare,
        "min_classes": min_classes,
        "min_items_per_class": min_items_per_class,
        "k": k,
        "nodes_in": len(asins),
        "nodes": out.height,
        "num_classes": len(index),
        "balance": round(normalized_entropy(sizes.values()), 6),
        "other_items": sizes.get(OTHER, 0),
        "dropped_items": dropped,
        "dropped_by_kcore": removed_by_kcore,
        "class_sizes": {name: sizes[name] for name in index},
        "levels": evals,
    }
    log.info(
        "classes: level %d, %d classes, balance %.3f, %d other, %d dropped",
        chosen,
        len(index),
        result["balance"],
        result["other_items"],
        dropped + removed_by_kcore,
    )
    return result
