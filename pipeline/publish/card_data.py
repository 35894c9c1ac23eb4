"""What the dataset card shows: ``CardData`` (the build's numbers and arrays) and
``card_context``, which turns it into the ready-formatted values the template
(``templates/card.md.j2``) lays out. All formatting lives here, the wording in the template.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
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
    modalities: list[str] = field(default_factory=lambda: ["image", "text"])
    without: dict[str, str] = field(default_factory=dict)  # what the folder lacks, and why
    reference: dict | None = None  # SLIP Table 1 beside this build (compare_reference)
    tasks: dict | None = None  # edge split counts and the baselines (pipeline.tasks)
    clip: dict | None = None  # the CLIP model of the embeddings (clip/meta.json "model")
    edge_columns: tuple[str, ...] = ("src", "dst", "weight")  # of edges.parquet
    explorer: str | None = None  # the explorer's screenshot file, when one was taken


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


def _sig(x: float) -> float:
    return float(f"{x:.4g}")  # four significant digits: a ratio of 0.0006 keeps its value


def compare_reference(
    reference: dict | None,
    nodes: int,
    edges: int,
    clip_t_title: np.ndarray,
    clip_t_desc: np.ndarray,
) -> dict | None:
    """The category's SLIP Table 1 row with this build's numbers in the same units (nodes and
    edges in thousands, CLIP-T [mean, std]) and the ratios build / Table 1 (CLIP-T: of the
    means); None without a reference."""
    if not reference:
        return None
    build: dict[str, Any] = {"nodes_k": round(nodes / 1000, 3), "edges_k": round(edges / 1000, 3)}
    ratio = {
        "nodes": _sig(nodes / (1000 * reference["nodes_k"])),
        "edges": _sig(edges / (1000 * reference["edges_k"])),
    }
    for key, values in (("clip_t_title", clip_t_title), ("clip_t_desc", clip_t_desc)):
        ms = mean_std(values)
        build[key] = [round(ms[0], 2), round(ms[1], 2)] if ms else None
        ratio[key] = _sig(ms[0] / reference[key][0]) if ms and reference[key][0] else None
    return {**reference, "build": build, "ratio": ratio}


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


def _statistics(data: CardData) -> dict[str, Any]:
    """The SLIP Table 1 style rows: this build, and its reference row and the ratio when
    the category is in Table 1."""
    c = data.counts
    rows = [
        (
            data.category,
            f"{c['nodes']:,}",
            f"{c['edges']:,}",
            fmt_score(mean_std(data.clip_t_title)),
            fmt_score(mean_std(data.clip_t_desc)),
        )
    ]
    ref = data.reference
    if ref:
        rows.append(
            (
                ref["source"],
                f"{ref['nodes_k']:,}k",
                f"{ref['edges_k']:,}k",
                fmt_score(tuple(ref["clip_t_title"])),
                fmt_score(tuple(ref["clip_t_desc"])),
            )
        )
        r = ref["ratio"]
        rows.append(
            (
                "ratio (this build / Table 1)",
                *(
                    "n/a" if r[k] is None else f"{r[k]:.3g}"
                    for k in ("nodes", "edges", "clip_t_title", "clip_t_desc")
                ),
            )
        )
    return {"rows": rows, "reference": ref, "model": model_name(data)}


def model_name(data: CardData) -> str:
    """The CLIP model of the embeddings and where its weights came from, in words."""
    model = data.clip or {}
    name = model.get("model") or data.params.get("model")
    weights = model.get("pretrained") or data.params.get("pretrained") or None
    if model.get("checkpoint_sha256"):
        weights = f"checkpoint sha256 {model['checkpoint_sha256'][:12]}"
    elif not weights:
        weights = f"random weights, seed {model.get('random_weights_seed', 0)}"
    return f"{name} ({weights})"


def clip_t_cut(data: CardData) -> dict[str, Any] | None:
    """The CLIP-T filter as this build applied it (the filter stage's record)."""
    f = data.build_stats.get("filter") or {}
    fp = f.get("params") or {}
    if not fp:
        return None
    parts = []
    if fp.get("min_clip_t") is not None:
        parts.append(f"the floor `min_clip_t` = {fp['min_clip_t']:g}")
    if fp.get("clip_t_percentile") is not None:
        parts.append(
            f"percentile {fp['clip_t_percentile']:g} of the candidates' scores "
            "(`clip_t_percentile`)"
        )
    fields = {
        "both": "the title or the description",
        "title": "the title",
        "desc": "the description",
        "either": "both the title and the description",
    }.get(fp.get("clip_t_fields", "both"), fp.get("clip_t_fields"))
    th = f.get("thresholds") or {}
    from pipeline.filter import FilterParams
    from pipeline.params import defaults

    d = defaults(FilterParams)
    return {
        "default": (
            f"a floor of {d['min_clip_t']:g} and percentile {d['clip_t_percentile']:g}, "
            f"`clip_t_fields` = {d['clip_t_fields']}"
        ),
        "rule": " and ".join(parts) if parts else None,
        "fields": fields,
        "field_setting": fp.get("clip_t_fields", "both"),
        "thresholds": ", ".join(
            f"{name} {th[key]:.2f}"
            for name, key in (("title", "clip_t_title"), ("description", "clip_t_desc"))
            if th.get(key) is not None
        ),
        "removed": fmt_int(f.get("removed_by_clip_t", 0)),
    }


def _tasks(data: CardData) -> dict[str, Any] | None:
    """The standard tasks: link-prediction split counts and settings, the baselines."""
    if not data.tasks:
        return None
    from pipeline.tasks.baselines import baselines_markdown

    es = data.tasks["edge_splits"]
    ratios = data.params.get("edge_ratios", [0.8, 0.1, 0.1])
    return {
        "edge_ratios": "/".join(str(round(100 * r)) for r in ratios),
        "negatives": es["negatives_per_positive"],
        "negatives_asked": data.params.get("negatives", es["negatives_per_positive"]),
        "hard_fraction": f"{100 * data.params.get('hard_fraction', 0.5):g}%",
        "hard_share": f"{100 * es['hard_share']:.1f}%",
        "counts": [
            ("train", fmt_int(es["train_edges"]), "0"),
            ("val", fmt_int(es["val_edges"]), fmt_int(es["negatives_per_positive"])),
            ("test", fmt_int(es["test_edges"]), fmt_int(es["negatives_per_positive"])),
        ],
        "baselines": baselines_markdown(data.tasks["baselines"]).rstrip("\n"),
        "retrieval_text": data.params.get("retrieval_text", "title"),
    }


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
        how = (
            "chosen automatically (highest class entropy in bits within the class-count range)"
            if ci.get("automatic")
            else "pinned in the registry"
        )
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
    candidates = ci.get("levels") or []
    # The classes stage's score and why each loser lost, where it records them.
    scored = any("entropy_bits" in lv for lv in candidates)
    header = ["Level", "Classes", "Balance", "Other", "Dropped", "Eligible"]
    if scored:
        header[3:3] = ["Entropy (bits)"]
        header.append("Why not")
    levels = []
    for lv in candidates:
        row = [
            str(lv["level"]),
            str(lv["classes"]),
            f"{lv['balance']:.3f}",
            f"{lv['other_items']:,}",
            f"{lv['dropped_items']:,}",
            "yes" if lv["eligible"] else "no",
        ]
        if scored:
            row[3:3] = [f"{lv.get('entropy_bits', 0):.3f}"]
            row.append(
                "chosen" if lv["level"] == ci.get("level") else cell(lv.get("why_not") or "")
            )
        levels.append(row)
    return {
        "intro": intro,
        "reason": ci.get("reason"),
        "balance": f"{normalized_entropy(sizes):.3f}",
        "rows": rows,
        "levels": levels,
        "levels_header": "| " + " | ".join(header) + " |",
        "levels_rule": "|"
        + "".join("---|" if h in ("Eligible", "Why not") else "---:|" for h in header),
    }


def vocabulary_text(rel: dict | None) -> str | None:
    """What users are described over, from relations.json's ``vocabulary`` (the relations
    stage records the taxonomy level and its subcategory names)."""
    vocab = (rel or {}).get("vocabulary")
    if not isinstance(vocab, dict) or not vocab.get("names"):
        return None
    names = vocab["names"]
    shown = ", ".join(names[:12]) + (f" and {len(names) - 12} more" if len(names) > 12 else "")
    text = f"the {len(names)} subcategories of taxonomy level {vocab.get('level')} ({shown})"
    if vocab.get("outside"):
        text += ", plus a share for purchases outside them"
    return text


def _relations(rel: dict | None, edge_columns: tuple[str, ...]) -> dict[str, Any] | None:
    """RCML relations: the quality numbers (cluster sizes, silhouette, edge shares) and texts."""
    if not rel:
        return None
    stats = rel.get("stats", {})
    rows = rel.get("relations", [])
    if isinstance(rows, dict):  # the plain {"id": "text"} form
        rows = [{"id": k, "text": v} for k, v in rows.items()]
    total = sum(int(r.get("edges", 0)) for r in rows) or 1
    return {
        "vocabulary": vocabulary_text(rel),
        "algorithm": stats.get("algorithm", "kmeans"),
        "k": stats.get("k", len(rows)),
        "silhouette_sample": fmt_int(stats.get("silhouette_sample", 0)),
        "silhouette": f"{stats['silhouette']:.3f}" if "silhouette" in stats else None,
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
        "distribution": "relation_ids" in edge_columns,
        "top_share": (
            f"{stats['majority_share_mean']:.0%}" if "majority_share_mean" in stats else None
        ),
    }


def _files(data: CardData) -> list[tuple[str, str]]:
    c = data.counts
    files = [
        (
            "node_attributes/node_attributes_<k>.parquet",
            "asin, title, desc (list of strings), class (int), reviews (list of strings), node_id "
            "(the ACMMG columns), then image_url (the item's image URL, the source of its "
            f"image); {c['node_attribute_shards']} shard(s), in node order",
        ),
        (
            "dgl_graph.dgl",
            "DGL graph: both directions (edge i + E is the reverse of edge i), "
            "edata `weight` (float32), ndata `label`, `train_mask`, `val_mask`, `test_mask`",
        ),
        (
            "edges.parquet",
            "src, dst (node ids, src < dst, one row per undirected edge), weight"
            + "".join(f", {col}" for col in data.edge_columns[3:])
            + (
                " (relation_ids / relation_shares: the edge's relation distribution, top first)"
                if "relation_ids" in data.edge_columns
                else ""
            ),
        ),
        ("splits.parquet", "node_id, asin, split (train / val / test)"),
        (
            "edge_splits.parquet",
            "src, dst, split, label, query, hard: the link-prediction splits with fixed "
            "negatives (Standard tasks, above)",
        ),
        ("node_categories.json", "class index -> class name"),
        *([("images.tar", images_text(data.images))] if "image" in data.modalities else []),
        (
            "embeddings/*_embeds.pt",
            (
                "CLIP image / title / description / combined embeddings, "
                if "image" in data.modalities
                else "CLIP title / description / combined embeddings (no "
                "image: a text-only folder), "
            )  # fmt: skip
            + "float32 [num_nodes, d], row i = node i; `torch.load(path, weights_only=True)`",
        ),
        ("embeddings/*_embeds.npy", "the same arrays for `numpy.load(path, mmap_mode='r')`"),
    ]
    if c.get("sessions") is not None:
        files.append(
            (
                "sessions.parquet",
                "Amazon-M2 shopping sessions on the node ids: session_id, locale, items (node "
                "ids in order, null where an item is not a node), next_item (node id or null)",
            )
        )
    if "relations" in c:
        files.append(
            ("relations.json", "RCML relation texts by relation_id, with cluster statistics")
        )
    files.append(
        (
            "explorer.html, explorer/",
            "a static page to browse the products, their images and co-purchase neighbours "
            "(open it in a browser after `tar xf images.tar`; no server needed)",
        )
    )
    files.append(("README.md, *.png", "this card and its plots"))
    files.append(
        (
            "manifest.json",
            "size and sha256 of every file, counts, parameters, provenance, the CLIP model, "
            "the stored image sizes, the SLIP Table 1 comparison and the baselines",
        )
    )
    return files


def hub_header(data: CardData) -> str:
    """The card's YAML header as the Hugging Face Hub reads it (pipeline.publish.hub): the
    configs, the class names as features, the source datasets and the dumps' hashes."""
    import yaml

    from pipeline.publish.hub import hub_yaml

    info = {
        "category": data.category,
        "counts": data.counts,
        "params": {**data.params, "license": data.license},
        "sources": data.sources,
    }
    header = hub_yaml(info, data.class_names, viewer=False)
    return yaml.safe_dump(header, sort_keys=False, allow_unicode=True, width=100)


def card_context(data: CardData) -> dict[str, Any]:
    """The template's variables: every number already formatted."""
    from pipeline.publish.paper_rules import paper_rules
    from pipeline.publish.plots import PLOTS, SAMPLE_NODES

    ratios = data.params.get("split_ratios", [0.6, 0.1, 0.3])
    return {
        "category": data.category,
        "license": data.license,
        "explorer": data.explorer,
        "yaml_header": hub_header(data),
        "max_reviews": data.params.get("max_reviews", 25),
        "statistics": _statistics(data),
        "clip_t_cut": clip_t_cut(data),
        "quantities": _quantities(data),
        "plots": PLOTS,
        "sample_nodes": SAMPLE_NODES,
        "classes": _classes(data),
        "relations": _relations(data.relations, data.edge_columns),
        "tasks": _tasks(data),
        "paper_rules": paper_rules(data),
        "split_ratios": "/".join(str(round(100 * r)) for r in ratios),
        "stat_rows": [tuple(map(cell, row)) for row in flatten_stats(data.build_stats)],
        "param_rows": [(cell(k), cell(data.params[k])) for k in sorted(data.params)],
        "sources_json": (
            json.dumps(data.sources, indent=2, sort_keys=True, ensure_ascii=False)
            if data.sources
            else None
        ),
        "files": _files(data),
        "without": data.without,
        "text_only": "image" not in data.modalities,
        "bibtex": {"slip": SLIP_BIBTEX, "hou": HOU_BIBTEX},
    }
