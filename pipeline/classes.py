"""Class labels: one level of the category taxonomy, chosen per category for diversity and
balance.

A node's category path (``items.categories``, top level first) gives one candidate label per
level. Level 0 is usually the main category itself (one class), deeper levels split it
finer. A label is the bare name at its level, or, where the same name sits under different
parents ("Accessories" under "Cameras" and under "Audio"), the shortest path suffix that tells
them apart ("Cameras > Accessories", "Audio > Accessories"): same-named children of different
parents never merge. For a level, labels with fewer than ``min_items_per_class`` nodes are
rare; nodes with a rare label or a path too short for the level are merged into "Other"
(``rare="other"``, the default) or dropped (``rare="drop"``).

The automatic choice takes, among the levels whose real classes number ``min_classes`` to
``max_classes``, the one whose class distribution has the highest entropy in bits ("Other"
counted as one class): 2^entropy is the effective number of equally large classes, so the
score rewards both diversity and balance (it equals balance x log2(#classes)), and a
3-class level of perfect balance (1.58 bits) loses to a 10-class level of balance 0.909
(3.02 bits). A finer level refines the one above it, so its entropy is never lower unless
nodes leave it (short paths merged into "Other", rare labels dropped): the class-count
range is what stops the choice from going ever deeper. Ties go to more classes, then to
the shallower level. A pinned level
(``taxonomy_level``, per category in the registry) wins over the automatic choice. The
stats record every candidate with its score and why it lost, and the reason the level won.

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
DEFAULT_MAX_CLASSES = 30
DEFAULT_MIN_ITEMS_PER_CLASS = 10
PATH_SEP = " > "
RARE_MODES = ("other", "drop")


@dataclass(frozen=True)
class ClassesParams:
    taxonomy_level: int | Literal["auto"] = param(
        "auto",
        "class level of the category path (0 = the main category itself, 1 = the first "
        "level under it), or auto for the level of highest class entropy",
        flag="--level",
    )
    min_classes: int = param(DEFAULT_MIN_CLASSES, "a level needs at least this many classes")
    max_classes: int = param(
        DEFAULT_MAX_CLASSES, "the automatic choice skips levels with more classes"
    )
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
        if not 1 <= self.min_classes <= self.max_classes:
            raise UserError(
                f"need 1 <= min_classes <= max_classes, got {self.min_classes} and "
                f"{self.max_classes}"
            )


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


def entropy_bits(counts: Iterable[int]) -> float:
    """Shannon entropy of the class sizes in bits: log2 of the effective number of classes.

    Empty classes are ignored; one class (or none) gives 0.0.
    """
    sizes = [int(c) for c in counts if c > 0]
    total = float(sum(sizes))
    return -sum((c / total) * math.log2(c / total) for c in sizes) if len(sizes) > 1 else 0.0


def _clean(name: object) -> str | None:
    if name is None:
        return None
    s = str(name).strip()
    return s or None


def level_labels(paths: Sequence[Sequence[str] | None], level: int) -> list[str | None]:
    """The class name at ``level`` (0 = top) of every category path; None when the path is
    shorter or the label empty. A bare name that sits under different parents is named by
    the shortest path suffix that is unique at this level ("Cameras > Accessories")."""
    keys: list[tuple[str, ...] | None] = []
    for p in paths:
        label = _clean(p[level]) if p is not None and len(p) > level else None
        keys.append(None if label is None else tuple(_clean(x) or "" for x in p[: level + 1]))
    names = path_names({k for k in keys if k is not None})
    return [None if k is None else names[k] for k in keys]


def path_names(keys: set[tuple[str, ...]]) -> dict[tuple[str, ...], str]:
    """Display name of every path prefix: the shortest suffix no other prefix shares."""
    depth = max((len(k) for k in keys), default=0)
    shared = [Counter(k[-n:] for k in keys) for n in range(depth + 1)]
    out = {}
    for key in keys:
        n = next(n for n in range(1, len(key) + 1) if shared[n][key[-n:]] == 1)
        out[key] = PATH_SEP.join(x for x in key[-n:] if x)
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
    max_classes: int = DEFAULT_MAX_CLASSES,
) -> dict:
    """Class statistics of one level: real classes kept, balance, entropy (the score), nodes
    merged or dropped, and whether the automatic choice may take it."""
    assigned = assign_labels(level_labels(paths, level), min_items_per_class, rare)
    sizes = Counter(a for a in assigned if a is not None)
    real = sorted(name for name in sizes if name != OTHER)
    bits = entropy_bits(sizes.values())
    if len(real) < min_classes:
        why = f"fewer than {min_classes} classes"
    elif len(real) > max_classes:
        why = f"more than {max_classes} classes"
    else:
        why = None
    return {
        "level": level,
        "classes": len(real),
        "balance": round(normalized_entropy(sizes.values()), 6),
        "entropy_bits": round(bits, 6),
        "effective_classes": round(2**bits, 3),
        "other_items": sizes.get(OTHER, 0),
        "dropped_items": sum(1 for a in assigned if a is None),
        "eligible": why is None,
        "why_not": why,
    }


def select_level(
    paths: Sequence[Sequence[str] | None],
    min_classes: int = DEFAULT_MIN_CLASSES,
    min_items_per_class: int = DEFAULT_MIN_ITEMS_PER_CLASS,
    rare: str = "other",
    max_classes: int = DEFAULT_MAX_CLASSES,
) -> tuple[int, list[dict]]:
    """The eligible level of highest entropy in bits and the evaluation of every level (the
    losers' ``why_not`` says why they lost).

    Raises UserError when no level has ``min_classes`` to ``max_classes`` classes of
    ``min_items_per_class`` nodes.
    """
    evals = evaluate_levels(paths, min_classes, min_items_per_class, rare, max_classes)
    eligible = [e for e in evals if e["eligible"]]
    if not eligible:
        summary = ", ".join(f"level {e['level']}: {e['classes']} classes" for e in evals) or "none"
        raise UserError(
            f"no category level has {min_classes} to {max_classes} classes of at least "
            f"{min_items_per_class} nodes ({summary}); change min_classes / max_classes / "
            "min_items_per_class or set the level explicitly"
        )
    best = max(eligible, key=lambda e: (e["entropy_bits"], e["classes"], -e["level"]))
    for e in eligible:
        if e is not best:
            e["why_not"] = (
                f"lower entropy ({e['entropy_bits']:.3f} bits against {best['entropy_bits']:.3f})"
                if e["entropy_bits"] < best["entropy_bits"]
                else "same entropy, fewer classes or deeper"
            )
    return best["level"], evals


def evaluate_levels(
    paths: Sequence[Sequence[str] | None],
    min_classes: int,
    min_items_per_class: int,
    rare: str,
    max_classes: int,
) -> list[dict]:
    depth = max((len(p) for p in paths if p is not None), default=0)
    return [
        evaluate_level(paths, lv, min_classes, min_items_per_class, rare, max_classes)
        for lv in range(depth)
    ]


def selection_reason(chosen: dict, automatic: bool, min_classes: int, max_classes: int) -> str:
    """One sentence on why ``chosen`` (its evaluation) is the class level."""
    what = (
        f"{chosen['classes']} classes, entropy {chosen['entropy_bits']:.2f} bits "
        f"({chosen['effective_classes']:.1f} effective classes), balance {chosen['balance']:.3f}"
    )
    if not automatic:
        return f"level {chosen['level']} is pinned (taxonomy_level = {chosen['level']}): {what}"
    return (
        f"level {chosen['level']} has the highest class entropy among the levels with "
        f"{min_classes} to {max_classes} classes: {what}"
    )


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


NO_TAXONOMY = (
    "no taxonomy: no node's metadata has a category path (Amazon-M2's products_train.csv has "
    "none; brand is not a class), so every node's class is -1; join Amazon 2023 metadata for "
    "classes"
)


def _no_taxonomy(work: Path, asins: list[str]) -> dict:
    """Every node unlabelled (class -1, no class name) and an empty node_categories.json."""
    out = pl.DataFrame(
        {"asin": asins, "class": [-1] * len(asins), "class_name": [None] * len(asins)},
        schema={"asin": pl.String, "class": pl.Int64, "class_name": pl.String},
    )
    with atomic_path(work / workdir.CLASSES) as tmp:
        out.write_parquet(tmp, compression="zstd", statistics=True)
    write_node_categories(work / workdir.NODE_CATEGORIES, {})
    log.info("classes: %s", NO_TAXONOMY)
    return {
        "level": None,
        "automatic": False,
        "nodes_in": len(asins),
        "nodes": len(asins),
        "num_classes": 0,
        "reason": NO_TAXONOMY,
        "no_taxonomy": True,
        "class_sizes": {},
        "levels": [],
    }


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
    max_classes = p.max_classes
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
    if depth == 0:
        return _no_taxonomy(work, asins)
    if level is None:
        chosen, evals = select_level(paths, min_classes, min_items_per_class, rare, max_classes)
    else:
        if level < 0 or level >= depth:
            raise UserError(
                f"class level {level} is out of range: category paths have {depth} levels"
            )
        chosen = level
        evals = evaluate_levels(paths, min_classes, min_items_per_class, rare, max_classes)
        for e in evals:
            if e["level"] != chosen:
                e["why_not"] = e["why_not"] or f"level {chosen} is pinned"
        if not evals[chosen]["eligible"]:
            log.warning("level %d is pinned, with %s", chosen, evals[chosen]["why_not"])

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
        "max_classes": max_classes,
        "min_items_per_class": min_items_per_class,
        "k": k,
        "nodes_in": len(asins),
        "nodes": out.height,
        "num_classes": len(index),
        "balance": round(normalized_entropy(sizes.values()), 6),
        "entropy_bits": round(entropy_bits(sizes.values()), 6),
        "reason": selection_reason(evals[chosen], level is None, min_classes, max_classes),
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
