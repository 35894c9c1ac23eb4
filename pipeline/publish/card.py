"""The dataset card (README.md, Hugging Face format) and its plots, beside it as PNG.

Everything here is a pure function of ``CardData``: no clock, no randomness without the
given seed, so the README and the PNGs are byte-identical across builds (matplotlib's PNG
writer is told to leave out its version stamp, rc parameters are reset to the defaults).
The build time lives only in manifest.json.
"""

from __future__ import annotations

import json
import math
import random
import textwrap
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

PLOTS = {
    "degree": "degree_distribution.png",
    "weight": "edge_weight_distribution.png",
    "clip": "clip_t_scores.png",
    "classes": "class_sizes.png",
    "subgraph": "sample_subgraph.png",
}
SAMPLE_NODES = 10

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


def _int(n: Any) -> str:
    return f"{n:,}" if isinstance(n, int) and not isinstance(n, bool) else str(n)


def _cell(v: Any) -> str:
    if isinstance(v, float):
        text = f"{v:.6g}"
    elif isinstance(v, (dict, list)):
        text = json.dumps(v, sort_keys=True, ensure_ascii=False)
    else:
        text = _int(v)
    return text.replace("|", "\\|").replace("\n", " ")


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


# ----------------------------------------------------------------------------- plots


def _figure(w: float = 6.4, h: float = 4.0) -> Any:
    from matplotlib.figure import Figure

    return Figure(figsize=(w, h), dpi=100, layout="tight")


def _save(fig: Any, path: Path) -> None:
    # No "Software" stamp: the bytes must not depend on the matplotlib version string.
    fig.savefig(path, format="png", dpi=100, metadata={"Software": None})


def plot_degrees(degrees: np.ndarray, path: Path) -> None:
    fig = _figure()
    ax = fig.add_subplot()
    counts = np.bincount(np.asarray(degrees, dtype=np.int64))
    x = np.nonzero(counts)[0]
    ax.scatter(x, counts[x], s=10)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("degree (co-purchase neighbours)")
    ax.set_ylabel("nodes")
    ax.set_title("Degree distribution")
    ax.grid(True, which="major", alpha=0.3)
    _save(fig, path)


def plot_weights(weights: np.ndarray, path: Path) -> None:
    fig = _figure()
    ax = fig.add_subplot()
    counts = np.bincount(np.asarray(weights, dtype=np.int64))
    x = np.nonzero(counts)[0]
    ax.bar(x, counts[x], width=0.8)
    ax.set_yscale("log")
    ax.set_xlabel("edge weight (distinct co-purchasing users)")
    ax.set_ylabel("edges")
    ax.set_title("Edge weight distribution")
    _save(fig, path)


def plot_clip_scores(title: np.ndarray, desc: np.ndarray, path: Path) -> None:
    fig = _figure()
    ax = fig.add_subplot()
    both = np.concatenate([np.asarray(title, float), np.asarray(desc, float)])
    if both.size:
        bins = np.linspace(both.min(), both.max() + 1e-9, 41)
        for values, label in ((title, "title"), (desc, "description")):
            if len(values):
                ms = mean_std(values)
                ax.hist(values, bins=bins, alpha=0.55, label=f"{label} ({fmt_score(ms)})")
        ax.legend()
    ax.set_xlabel("CLIP-T score (image vs text)")
    ax.set_ylabel("nodes")
    ax.set_title("CLIP-T scores")
    _save(fig, path)


def plot_class_sizes(names: list[str], sizes: list[int], path: Path) -> None:
    k = len(names)
    fig = _figure(6.4, max(2.5, 0.28 * k + 1.2))
    ax = fig.add_subplot()
    y = np.arange(k)
    ax.barh(y, sizes)
    ax.set_yticks(y, [textwrap.shorten(n, 40, placeholder="...") for n in names], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("nodes")
    ax.set_title("Class sizes")
    _save(fig, path)


def sample_subgraph(
    n: int,
    src: np.ndarray,
    dst: np.ndarray,
    weights: np.ndarray,
    seed: int = 0,
    size: int = SAMPLE_NODES,
) -> tuple[list[int], list[tuple[int, int, int]]]:
    """A connected sample of ``size`` nodes: breadth-first from a seeded start node,
    heaviest edges first. Returns the nodes and the induced edges (u, v, weight)."""
    if n == 0:
        return [], []
    src = np.asarray(src, dtype=np.int64)
    dst = np.asarray(dst, dtype=np.int64)
    w = np.asarray(weights, dtype=np.int64)
    # Both directions in CSR order: by node, then heaviest edge first, then neighbour id.
    u_all = np.concatenate([src, dst])
    v_all = np.concatenate([dst, src])
    w_all = np.concatenate([w, w])
    order = np.lexsort((v_all, -w_all, u_all))
    u_all, v_all, w_all = u_all[order], v_all[order], w_all[order]
    indptr = np.searchsorted(u_all, np.arange(n + 1))

    def neighbours(u: int) -> list[tuple[int, int]]:
        lo, hi = indptr[u], indptr[u + 1]
        return list(zip(v_all[lo:hi].tolist(), w_all[lo:hi].tolist(), strict=True))

    start = random.Random(seed).randrange(n)
    seen = {start}
    picked = [start]
    queue = deque([start])
    while queue and len(picked) < size:
        for v, _ in neighbours(queue.popleft()):
            if v not in seen and len(picked) < size:
                seen.add(v)
                picked.append(v)
                queue.append(v)
    edges = sorted((u, v, wt) for u in picked for v, wt in neighbours(u) if v in seen and u < v)
    return picked, edges


def plot_subgraph(
    nodes: list[int],
    edges: list[tuple[int, int, int]],
    titles: list[str],
    path: Path,
    seed: int = 0,
    node_classes: np.ndarray | None = None,
    class_names: list[str] | None = None,
) -> None:
    import networkx as nx

    g = nx.Graph()
    g.add_nodes_from(nodes)
    g.add_weighted_edges_from(edges)
    pos = nx.spring_layout(g, seed=seed, k=1.6 / math.sqrt(max(len(nodes), 1)))
    fig = _figure(9, 7)
    ax = fig.add_subplot()
    widths = [0.8 + math.log(w) for _, _, w in edges] if edges else []
    nx.draw_networkx_edges(g, pos, ax=ax, width=widths, alpha=0.5, edge_color="#555555")
    if node_classes is not None and class_names:
        from matplotlib import colormaps

        cmap = colormaps["tab10"]
        present = sorted({int(node_classes[u]) for u in nodes})
        for c in present:
            members = [u for u in nodes if int(node_classes[u]) == c]
            nx.draw_networkx_nodes(
                g,
                pos,
                nodelist=members,
                ax=ax,
                node_size=140,
                node_color=[cmap(c % 10)],
                label=textwrap.shorten(class_names[c], 30, placeholder="..."),
            )
        ax.legend(loc="lower left", fontsize=7, title="class", title_fontsize=7)
    else:
        nx.draw_networkx_nodes(g, pos, ax=ax, node_size=140, node_color="#1f77b4")
    labels = {
        u: "\n".join(textwrap.wrap(textwrap.shorten(titles[u] or "", 60, placeholder="..."), 22))
        for u in nodes
    }
    nx.draw_networkx_labels(g, pos, labels=labels, ax=ax, font_size=7, verticalalignment="bottom")
    ax.set_title(f"A {len(nodes)}-node co-purchase subgraph (edge width ~ log weight)")
    ax.margins(0.2)
    ax.set_axis_off()
    _save(fig, path)


def write_plots(folder: Path, data: CardData) -> dict[str, str]:
    """All plots into ``folder``; returns {kind: file name}."""
    import matplotlib
    import matplotlib.style

    # Defaults only: a user's matplotlibrc must not change the published bytes.
    with matplotlib.rc_context(), matplotlib.style.context("default"):
        plot_degrees(data.degrees, folder / PLOTS["degree"])
        plot_weights(data.weights, folder / PLOTS["weight"])
        plot_clip_scores(data.clip_t_title, data.clip_t_desc, folder / PLOTS["clip"])
        plot_class_sizes(data.class_names, data.class_sizes, folder / PLOTS["classes"])
        nodes, edges = sample_subgraph(
            len(data.titles), data.src, data.dst, data.weights, seed=data.seed
        )
        plot_subgraph(
            nodes,
            edges,
            data.titles,
            folder / PLOTS["subgraph"],
            seed=data.seed,
            node_classes=data.node_classes,
            class_names=data.class_names,
        )
    return dict(PLOTS)


# ----------------------------------------------------------------------------- README


def _yaml_str(s: str) -> str:
    return json.dumps(s, ensure_ascii=False)  # a JSON string is a valid YAML scalar


def render_card(data: CardData) -> str:
    c = data.counts
    n, e = c["nodes"], c["edges"]
    title_ms, desc_ms = mean_std(data.clip_t_title), mean_std(data.clip_t_desc)
    deg = np.asarray(data.degrees)
    w = np.asarray(data.weights)
    lines: list[str] = []
    add = lines.append

    add("---")
    add(f"license: {data.license}")
    add(f"pretty_name: {_yaml_str(f'ACMMG {data.category}: Amazon co-purchase multimodal graph')}")
    add("language:\n- en")
    add("task_categories:\n- graph-ml\n- image-classification\n- text-classification")
    add("tags:\n- graph\n- multimodal\n- co-purchase\n- amazon\n- clip\n- dgl")
    add(f"size_categories:\n- {size_category(n)}")
    add("configs:\n- config_name: nodes\n  data_files: node_attributes/*.parquet")
    add("- config_name: edges\n  data_files: edges.parquet")
    add("---")
    add("")
    add(f"# ACMMG {data.category}: Amazon co-purchase multimodal graph")
    add("")
    add(
        f"A multimodal product co-purchase graph of the Amazon **{data.category}** category in "
        "the layout of the ACMMG dataset (SLIP, arXiv:2511.03019): every node is a product with "
        "its title, description, up to "
        f"{data.params.get('max_reviews', 25)} reviews, image, class label and precomputed CLIP "
        "embeddings; every edge joins two products bought by the same customers, weighted by "
        "the number of distinct co-purchasing users."
    )
    add("")

    add("## Statistics")
    add("")
    add("| Main Category | Nodes | Edges | CLIP-T Title | CLIP-T Description |")
    add("|---|---:|---:|---:|---:|")
    add(f"| {data.category} | {n:,} | {e:,} | {fmt_score(title_ms)} | {fmt_score(desc_ms)} |")
    add("")
    add(
        "Edges are undirected co-purchase pairs (stored in both directions in `dgl_graph.dgl`). "
        "CLIP-T: similarity of each product's image to its title and to its description "
        "(mean ± std over the nodes), as in SLIP Table 1."
    )
    add("")
    add("| Quantity | Value |")
    add("|---|---:|")
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
        ("nodes with reviews", c["nodes_with_reviews"]),
        ("reviews", c["reviews"]),
        ("train / val / test nodes", f"{c['train']:,} / {c['val']:,} / {c['test']:,}"),
    ]
    if "relations" in c:
        rows.append(("relations (RCML)", c["relations"]))
    for k, v in rows:
        add(f"| {k} | {_int(v)} |")
    add("")
    add(f"![Degree distribution]({PLOTS['degree']})")
    add(f"![Edge weight distribution]({PLOTS['weight']})")
    add(f"![CLIP-T scores]({PLOTS['clip']})")
    add("")

    add("## Classes")
    add("")
    ci = data.class_info or {}
    if "level" in ci:
        how = "chosen automatically for balance" if ci.get("automatic") else "configured"
        rare = 'merged into "Other"' if ci.get("rare") == "other" else "dropped"
        add(
            f"The class of a node is level {ci['level']} of its category path (0 = top level), "
            f"{how}. Classes with fewer than {ci.get('min_items_per_class')} nodes are {rare}."
        )
        add("")
    sizes = data.class_sizes
    total = max(sum(sizes), 1)
    from pipeline.classes import normalized_entropy

    add(
        f"Balance (normalised entropy of the class sizes, 1 = equal): "
        f"{normalized_entropy(sizes):.3f}."
    )
    add("")
    add("| Class | Name | Nodes | Share |")
    add("|---:|---|---:|---:|")
    for i, (name, size) in enumerate(zip(data.class_names, sizes, strict=True)):
        add(f"| {i} | {_cell(name)} | {size:,} | {100 * size / total:.1f}% |")
    add("")
    if ci.get("levels"):
        add("Candidate levels:")
        add("")
        add("| Level | Classes | Balance | Other | Dropped | Eligible |")
        add("|---:|---:|---:|---:|---:|---|")
        for lv in ci["levels"]:
            add(
                f"| {lv['level']} | {lv['classes']} | {lv['balance']:.3f} | {lv['other_items']:,} "
                f"| {lv['dropped_items']:,} | {'yes' if lv['eligible'] else 'no'} |"
            )
        add("")
    add(f"![Class sizes]({PLOTS['classes']})")
    add("")

    if data.relations:
        _relations_section(add, data.relations)

    add("## How it was built")
    add("")
    add(
        "1. **Ingest** the raw review and item-metadata dumps into canonical tables (DuckDB).\n"
        "2. **Clean** items: keep those with a usable title, description and image URL.\n"
        "3. **Co-purchase graph**: distinct (user, item) purchases; two items are linked when "
        "at least the configured number of distinct users bought both (edge weight = that "
        "number).\n"
        "4. **k-core**: repeatedly remove items with fewer than k neighbours.\n"
        "5. **Images**: fetch, verify and normalise to RGB JPEG; drop placeholders.\n"
        "6. **CLIP**: image, title, description and combined embeddings; CLIP-T scores.\n"
        "7. **Filter** low CLIP-T items, then the k-core again, until nothing changes.\n"
        "8. **Classes**: one level of the category taxonomy (above).\n"
        "9. **Relations** (RCML): users clustered by the categories they buy; each edge gets "
        "the relation of the users who co-purchased it (when enabled).\n"
        "10. **Splits**: seeded "
        f"{'/'.join(str(round(100 * r)) for r in data.params.get('split_ratios', [0.6, 0.1, 0.3]))}"
        " train/val/test node masks (hash of seed and asin, stable across rebuilds)."
    )
    add("")
    add("### Filters and counts at every stage")
    add("")
    stat_rows = flatten_stats(data.build_stats)
    if stat_rows:
        add("| Stage | Counter | Value |")
        add("|---|---|---:|")
        for stage, key, v in stat_rows:
            add(f"| {_cell(stage)} | {_cell(key)} | {_cell(v)} |")
    else:
        add("No stage counters were recorded.")
    add("")
    add("### Parameters")
    add("")
    add("| Parameter | Value |")
    add("|---|---|")
    for k in sorted(data.params):
        add(f"| {_cell(k)} | {_cell(data.params[k])} |")
    add("")
    if data.sources:
        add("### Source files")
        add("")
        add("```json")
        add(json.dumps(data.sources, indent=2, sort_keys=True, ensure_ascii=False))
        add("```")
        add("")

    add("## Files")
    add("")
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
        ("images.tar", "images/{asin}.jpg for every node"),
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
    for name, what in files:
        add(f"- `{name}`: {what}")
    add("")
    add("Node `i` is the same product in every file (node ids follow the sorted asins).")
    add("")

    add("## How to load")
    add("")
    add("### DGL")
    add("")
    add(
        "The ACMMG card's loading snippet runs unchanged on this folder. Reading every "
        "node-attribute shard (shard files sort as text, so sort the rows by `node_id`):"
    )
    add("")
    add(
        "```python\nimport dgl, json, tarfile, os\nimport pandas as pd\nimport torch\nfrom PIL import Image\n\n"
        'category_path = "path/to/category"\n'
        'if not os.path.exists(f"{category_path}/images"):\n'
        '    with tarfile.open(f"{category_path}/images.tar", "r") as tar:\n'
        "        tar.extractall(category_path)\n"
        'node_attributes = pd.read_parquet(f"{category_path}/node_attributes")\n'
        'node_attributes = node_attributes.sort_values("node_id", ignore_index=True)\n'
        'graph = dgl.load_graphs(f"{category_path}/dgl_graph.dgl")[0][0]\n'
        'image_embeds = torch.load(f"{category_path}/embeddings/image_embeds.pt", weights_only=True)\n'
        'with open(f"{category_path}/node_categories.json") as f:\n'
        "    categories = json.load(f)\n"
        "image = Image.open(f\"{category_path}/images/{node_attributes.iloc[0]['asin']}.jpg\")\n"
        'train_idx = graph.ndata["train_mask"].bool().nonzero().squeeze()\n```'
    )
    add("")
    add("### PyTorch Geometric")
    add("")
    add(
        "```python\nimport polars as pl, torch\nfrom torch_geometric.data import Data\nfrom torch_geometric.utils import to_undirected\n\n"
        'p = "path/to/category"\n'
        'nodes = pl.read_parquet(f"{p}/node_attributes/*.parquet").sort("node_id")\n'
        'edges = pl.read_parquet(f"{p}/edges.parquet")\n'
        'splits = pl.read_parquet(f"{p}/splits.parquet").sort("node_id")\n'
        "edge_index, weight = to_undirected(\n"
        '    torch.tensor(edges.select("src", "dst").to_numpy().T),\n'
        '    torch.tensor(edges["weight"].to_numpy(), dtype=torch.float32))\n'
        "data = Data(\n"
        '    x=torch.load(f"{p}/embeddings/combined_embeds.pt", weights_only=True),\n'
        "    edge_index=edge_index, edge_weight=weight,\n"
        '    y=torch.tensor(nodes["class"].to_numpy()),\n'
        '    train_mask=torch.tensor((splits["split"] == "train").to_numpy()),\n'
        '    val_mask=torch.tensor((splits["split"] == "val").to_numpy()),\n'
        '    test_mask=torch.tensor((splits["split"] == "test").to_numpy()))\n```'
    )
    add("")
    add("### polars / numpy")
    add("")
    add(
        "```python\nimport numpy as np, polars as pl\n\n"
        'p = "path/to/category"\n'
        'nodes = pl.read_parquet(f"{p}/node_attributes/*.parquet").sort("node_id")\n'
        'edges = pl.read_parquet(f"{p}/edges.parquet")\n'
        'title_embeds = np.load(f"{p}/embeddings/title_embeds.npy", mmap_mode="r")\n```'
    )
    add("")

    add("## Sample subgraph")
    add("")
    add(
        f"![A {SAMPLE_NODES}-node sample of the co-purchase graph with product titles]"
        f"({PLOTS['subgraph']})"
    )
    add("")

    add("## License")
    add("")
    add(
        f"Released under {data.license}. Built from the Amazon Reviews data of Hou et al. (2024) "
        "(McAuley Lab), intended for research use; product texts and images remain subject to "
        "their original terms."
    )
    add("")
    add("## Citation")
    add("")
    add("```bibtex")
    add(SLIP_BIBTEX)
    add("")
    add(HOU_BIBTEX)
    add("```")
    add("")
    return "\n".join(lines)


def _relations_section(add: Any, rel: dict) -> None:
    """RCML relations: the quality numbers (cluster sizes, silhouette, edge shares) and texts."""
    stats = rel.get("stats", {})
    rows = rel.get("relations", [])
    if isinstance(rows, dict):  # the plain {"id": "text"} form
        rows = [{"id": k, "text": v} for k, v in rows.items()]
    total = sum(int(r.get("edges", 0)) for r in rows) or 1
    add("## Relations (RCML)")
    add("")
    add(
        f"Users who bought at least two products of the graph are clustered "
        f"({stats.get('algorithm', 'kmeans')}, k = {stats.get('k', len(rows))}) on the share of "
        f"their purchases in each class; every edge gets the relation of the cluster holding most "
        f"of its co-buyers. Silhouette on a sample of {_int(stats.get('silhouette_sample', 0))} "
        f"users: {stats.get('silhouette', float('nan')):.3f}."
    )
    add("")
    add("| id | users | edges | share of edges | relation text |")
    add("|---:|---:|---:|---:|---|")
    for r in rows:
        text = str(r.get("text", "")).replace("|", "\\|")
        add(
            f"| {r['id']} | {_int(r.get('users', 0))} | {_int(r.get('edges', 0))} "
            f"| {int(r.get('edges', 0)) / total:.1%} | {text} |"
        )
    add("")
    if rel.get("intra_text"):
        add(f"Intra-sample relation text: *{rel['intra_text']}*")
        add("")


def write_card(folder: Path, data: CardData) -> list[str]:
    """README.md and the plots into ``folder``; returns the file names written."""
    folder = Path(folder)
    plots = write_plots(folder, data)
    (folder / "README.md").write_text(render_card(data), encoding="utf-8")
    return ["README.md", *plots.values()]
