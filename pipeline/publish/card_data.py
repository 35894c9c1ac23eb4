"""What the dataset card shows: ``CardData`` (the build's numbers and arrays) and
``card_context``, which turns it into the ready-formatted values the template
(``templates/card.md.j2``) lays out. All formatting lives here, the wording in the template.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import numpy as np

SLIP_BIBTEX = """@misc{lu2025slipstructuralawarelanguageimagepretraining,
  title={SLIP: Structural-aware Language-Image Pretraining for Vision-Language Alignment},
  author={Wenbo Lu},
  year={2025},
  url={https://arxiv.org/abs/2511.03019},
}"""
HOU_BIBTEX = """@article{hou2024bridging,
  title={Bridging Language and Items for Retrieval and Recommendation},
  author={Hou, Yupeng and Li, Jiacheng and He, Zhankui and Yan, An and Chen, Xiusi and McAuley, Julian},
  journal={arXiv preprint arXiv:2403.03952},
  year={2024},
}"""

STAGE_ORDER = (
    "build",
    "ingest",
    "clean",
    "graph",
    "images",
    "clip",
    "filter",
    "classes",
    "relations",
    "publish",
)


@dataclass
class CardData:
    """What the card shows. Arrays are in node order (``titles``, ``degrees``) or edge order."""

    category: str
    license: str
    counts: dict
    params: dict
    build_stats: dict
    sources: Any
    class_names: list[str]
    class_sizes: list[int]
    class_info: dict
    degrees: np.ndarray
    weights: np.ndarray
    clip_t_title: np.ndarray
    clip_t_desc: np.ndarray
    titles: list[str]
    src: np.ndarray
    dst: np.ndarray
    split_sizes: tuple[int, int, int]
    node_classes: np.ndarray | None = None
    seed: int = 0
    relations: dict | None = None  # the published relations.json, when relations exist
    images: dict | None = None  # what images.tar holds (writers.images.stored_sizes)


# ----------------------------------------------------------------------------- numbers


def mean_std(values: np.ndarray) -> tuple[float, float] | None:
    """Mean and population std, None when there are no values."""
    v = np.asarray(values, dtype=np.float64)
    if v.size == 0:
        return None
    return float(v.mean()), float(v.std())


def fmt_score(ms: tuple[float, float] | None) -> str:
    """ "31.4 ± 3.7" like SLIP Table 1; scores on a 0..1 cosine scale keep three decimals."""
    if ms is None:
        return "n/a"
    digits = 3 if abs(ms[0]) < 2 and ms[1] < 2 else 1
    return f"{ms[0]:.{digits}f} ± {ms[1]:.{digits}f}"


def size_category(n: int) -> str:
    """Hugging Face ``size_categories`` bucket of ``n`` rows."""
    for limit, name in (
        (1_000, "n<1K"),
        (10_000, "1K<n<10K"),
        (100_000, "10K<n<100K"),
        (1_000_000, "100K<n<1M"),
        (10_000_000, "1M<n<10M"),
    ):
        if n < limit:
            return name
    return "10M<n<100M"


def fmt_int(n: Any) -> str:
    """Integers with thousands separators; anything else as str."""
    return f"{n:,}" if isinstance(n, int) and not isinstance(n, bool) else str(n)


def cell(v: Any) -> str:
    """A value as one markdown table cell."""
    if isinstance(v, float):
        text = f"{v:.6g}"
    elif isinstance(v, (dict, list)):
        text = json.dumps(v, sort_keys=True, ensure_ascii=False)
    else:
        text = fmt_int(v)
    return text.replace("|", "\\|").replace("\n", " ")


def yaml_str(s: str) -> str:
    return json.dumps(s, ensure_ascii=False)  # a JSON string is a valid YAML scalar


def flatten_stats(
    stats: dict, skip: tuple[str, ...] = ("classes", "sources")
) -> list[tuple[str, str, Any]]:
    """(stage, counter, value) rows in pipeline order: nested dicts become dotted counters,
    lists are skipped. Top-level scalars (the graph stage's flat counters) form stage "build";
    ``skip`` leaves out stages shown elsewhere on the card."""
    rows: list[tuple[str, str, Any]] = []

    def walk(stage: str, prefix: str, obj: dict) -> None:
        for key in obj:
            v = obj[key]
            name = f"{prefix}{key}"
            if isinstance(v, dict):
                walk(stage, f"{name}.", v)
            elif not isinstance(v, list):
                rows.append((stage, name, v))

    walk("build", "", {k: v for k, v in stats.items() if not isinstance(v, (dict, list))})
    stages = [k for k, v in stats.items() if isinstance(v, dict) and k not in skip]
    rank = {name: i for i, name in enumerate(STAGE_ORDER)}
    for stage in sorted(stages, key=lambda k: (rank.get(k, len(rank)), k)):
        walk(stage, "", stats[stage])
    return rows


# ----------------------------------------------------------------------------- sections


def _quantities(data: CardData) -> list[tuple[str, str]]:
    c = data.counts
    deg = np.asarray(data.degrees)
    w = np.asarray(data.weights)
    rows = [
        ("classes", c["classes"]),
        ("images", c["images"]),
        ("embedding dimension", ", ".join(f"{k} {v}" for k, v in c["embedding_dims"].items())),
        (
            "degree min / median / mean / max",
            f"{int(deg.min()) if deg.size else 0} / {float(np.median(deg)) if deg.size else 0:g} / "
            f"{float(deg.mean()) if deg.size else 0:.2f} / {int(deg.max()) if deg.size else 0}",
        ),
        (
            "edge weight min / mean / max",
            f"{int(w.min()) if w.size else 0} / {float(w.mean()) if w.size else 0:.2f} / "
            f"{int(w.max()) if w.size else 0}",
        ),
        *_image_rows(data.images),
        ("nodes with reviews", c["nodes_with_reviews"]),
        ("reviews", c["reviews"]),
        ("train / val / test nodes", f"{c['train']:,} / {c['val']:,} / {c['test']:,}"),
    ]
    if "relations" in c:
        rows.append(("relations (RCML)", c["relations"]))
    return [(k, fmt_int(v)) for k, v in rows]


def _px(spread: dict) -> str:
    return f"{spread['min']:,} / {spread['median']:,g} / {spread['max']:,} px"


def _image_rows(info: dict | None) -> list[tuple[str, str]]:
    if not info:
        return []
    rows = [("stored image long side min / median / max", _px(info["long_side"]))]
    if "source_long_side" in info:
        rows.append(("source image long side min / median / max", _px(info["source_long_side"])))
    return rows


def images_text(info: dict | None) -> str:
    """What images.tar holds, in words."""
    if not info:
        return "images/{asin}.jpg for every node"
    quality = f", quality {info['jpeg_quality']}" if info.get("jpeg_quality") else ""
    text = f"images/{{asin}}.jpg for every node: {info['format']}{quality}, "
    if info.get("max_side"):
        text += (
            f"at the source resolution, downscaled only where the long side exceeded "
            f"{info['max_side']:,} px (setting `max_side`)"
        )
    else:
        text += "as stored by the images stage"
    if "downscaled" in info:
        n = info["downscaled"] + info["at_source_resolution"]
        text += f"; {info['downscaled']:,} of {n:,} images were downscaled"
    return text


def _classes(data: CardData) -> dict[str, Any]:
    from pipeline.classes import normalized_entropy

    ci = data.class_info or {}
    intro = None
    if "level" in ci:
        how = "chosen automatically for balance" if ci.get("automatic") else "configured"
        rare = 'merged into "Other"' if ci.get("rare") == "other" else "dropped"
        intro = (
            f"The class of a node is level {ci['level']} of its category path (0 = top level), "
            f"{how}. Classes with fewer than {ci.get('min_items_per_class')} nodes are {rare}."
        )
    sizes = data.class_sizes
    total = max(sum(sizes), 1)
    rows = [
        (i, cell(name), f"{size:,}", f"{100 * size / total:.1f}%")
        for i, (name, size) in enumerate(zip(data.class_names, sizes, strict=True))
    ]
    levels = [
        (
            lv["level"],
            lv["classes"],
            f"{lv['balance']:.3f}",
            f"{lv['other_items']:,}",
            f"{lv['dropped_items']:,}",
            "yes" if lv["eligible"] else "no",
        )
        for lv in ci.get("levels") or []
    ]
    return {
        "intro": intro,
        "balance": f"{normalized_entropy(sizes):.3f}",
        "rows": rows,
        "levels": levels,
    }


def _relations(rel: dict | None) -> dict[str, Any] | None:
    """RCML relations: the quality numbers (cluster sizes, silhouette, edge shares) and texts."""
    if not rel:
        return None
    stats = rel.get("stats", {})
    rows = rel.get("relations", [])
    if isinstance(rows, dict):  # the plain {"id": "text"} form
        rows = [{"id": k, "text": v} for k, v in rows.items()]
    total = sum(int(r.get("edges", 0)) for r in rows) or 1
    return {
        "algorithm": stats.get("algorithm", "kmeans"),
        "k": stats.get("k", len(rows)),
        "silhouette_sample": fmt_int(stats.get("silhouette_sample", 0)),
        "silhouette": f"{stats.get('silhouette', float('nan')):.3f}",
        "rows": [
            (
                r["id"],
                fmt_int(r.get("users", 0)),
                fmt_int(r.get("edges", 0)),
                f"{int(r.get('edges', 0)) / total:.1%}",
                str(r.get("text", "")).replace("|", "\\|"),
            )
            for r in rows
        ],
        "intra_text": rel.get("intra_text"),
    }


def _files(data: CardData) -> list[tuple[str, str]]:
    c = data.counts
    files = [
        (
            "node_attributes/node_attributes_<k>.parquet",
            "asin, title, desc (list of strings), class (int), reviews (list of strings), node_id; "
            f"{c['node_attribute_shards']} shard(s), in node order",
        ),
        (
            "dgl_graph.dgl",
            "DGL graph: both directions (edge i + E is the reverse of edge i), "
            "edata `weight` (float32), ndata `label`, `train_mask`, `val_mask`, `test_mask`",
        ),
        (
            "edges.parquet",
            "src, dst (node ids, src < dst, one row per undirected edge), weight"
            + (", relation_id, relation_users" if "relations" in c else ""),
        ),
        ("splits.parquet", "node_id, asin, split (train / val / test)"),
        ("node_categories.json", "class index -> class name"),
        ("images.tar", images_text(data.images)),
        (
            "embeddings/*_embeds.pt",
            "CLIP image / title / description / combined embeddings, "
            "float32 [num_nodes, d], row i = node i; `torch.load(path, weights_only=True)`",
        ),
        ("embeddings/*_embeds.npy", "the same arrays for `numpy.load(path, mmap_mode='r')`"),
    ]
    if "relations" in c:
        files.append(
            ("relations.json", "RCML relation texts by relation_id, with cluster statistics")
        )
    files.append(("manifest.json", "size and sha256 of every file, counts, parameters, provenance"))
    return files


def card_context(data: CardData) -> dict[str, Any]:
    """The template's variables: every number already formatted."""
    from pipeline.publish.plots import PLOTS, SAMPLE_NODES

    c = data.counts
    ratios = data.params.get("split_ratios", [0.6, 0.1, 0.3])
    return {
        "category": data.category,
        "license": data.license,
        "pretty_name": yaml_str(f"ACMMG {data.category}: Amazon co-purchase multimodal graph"),
        "size_category": size_category(c["nodes"]),
        "max_reviews": data.params.get("max_reviews", 25),
        "nodes": f"{c['nodes']:,}",
        "edges": f"{c['edges']:,}",
        "clip_t_title": fmt_score(mean_std(data.clip_t_title)),
        "clip_t_desc": fmt_score(mean_std(data.clip_t_desc)),
        "quantities": _quantities(data),
        "plots": PLOTS,
        "sample_nodes": SAMPLE_NODES,
        "classes": _classes(data),
        "relations": _relations(data.relations),
        "split_ratios": "/".join(str(round(100 * r)) for r in ratios),
        "stat_rows": [tuple(map(cell, row)) for row in flatten_stats(data.build_stats)],
        "param_rows": [(cell(k), cell(data.params[k])) for k in sorted(data.params)],
        "sources_json": (
            json.dumps(data.sources, indent=2, sort_keys=True, ensure_ascii=False)
            if data.sources
            else None
        ),
        "files": _files(data),
        "bibtex": {"slip": SLIP_BIBTEX, "hou": HOU_BIBTEX},
    }
