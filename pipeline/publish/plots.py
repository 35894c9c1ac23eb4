"""The dataset card's plots, written beside README.md as PNG.

Pure functions of their inputs: no clock, no randomness without the given seed, matplotlib's
rc parameters reset to the defaults and its version stamp left out of the PNG, so the bytes
are the same in every build.
"""

from __future__ import annotations

import math
import random
import textwrap
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from pipeline.publish.card_data import fmt_score, mean_std

if TYPE_CHECKING:
    from pipeline.publish.card_data import CardData

PLOTS = {
    "degree": "degree_distribution.png",
    "weight": "edge_weight_distribution.png",
    "clip": "clip_t_scores.png",
    "classes": "class_sizes.png",
    "subgraph": "sample_subgraph.png",
}
SAMPLE_NODES = 10


def _figure(w: float = 6.4, h: float = 4.0) -> Any:
    from matplotlib.figure import Figure

    return Figure(figsize=(w, h), dpi=100, layout="tight")


def _save(fig: Any, path: Path) -> None:
    # No "Software" stamp: the bytes must not depend on the matplotlib version string.
    fig.savefig(path, format="png", dpi=100, metadata={"Software": None})


def degree_ccdf(degrees: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(d, share of nodes with degree >= d) at every degree that occurs."""
    counts = np.bincount(np.asarray(degrees, dtype=np.int64))
    x = np.nonzero(counts)[0]
    at_least = np.cumsum(counts[::-1])[::-1][x]  # nodes with degree >= x
    return x, at_least / max(int(counts.sum()), 1)


def plot_degrees(degrees: np.ndarray, path: Path) -> None:
    """The degree CCDF on log-log axes: a straight tail is a power law, and unlike raw count
    dots the curve is not dominated by the noise of rare degrees."""
    fig = _figure()
    ax = fig.add_subplot()
    x, share = degree_ccdf(degrees)
    if x.size:
        ax.step(x, share, where="post", linewidth=1.5)
        ax.scatter(x, share, s=6)
        ax.set_xscale("log")
        ax.set_yscale("log")
    ax.set_xlabel("degree d (co-purchase neighbours)")
    ax.set_ylabel("share of nodes with degree >= d")
    ax.set_title("Degree distribution (CCDF)")
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
    bars = ax.barh(y, sizes)
    total = max(sum(sizes), 1)
    labels = [f"{s:,} ({100 * s / total:.1f}%)" for s in sizes]
    ax.bar_label(bars, labels=labels, padding=3, fontsize=7)
    ax.set_xlim(0, max(sizes, default=1) * 1.25)  # room for the labels
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
    classes: np.ndarray | None = None,
) -> tuple[list[int], list[tuple[int, int, int]]]:
    """A connected sample of ``size`` nodes grown from a seeded start node: each step adds
    the neighbour of the sample joined to it by the heaviest edge (then the lowest id),
    except that while the sample spans fewer than half of ``size`` classes (when ``classes``
    is given) a neighbour of a class not in it yet comes first: the sample spans several
    classes and still shows same-class neighbours. Returns the nodes and the induced edges
    (u, v, weight)."""
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

    def cls(u: int) -> int:
        return int(classes[u]) if classes is not None else 0

    start = random.Random(seed).randrange(n)
    picked = [start]
    seen = {start}
    seen_classes = {cls(start)}
    frontier: dict[int, int] = {}  # candidate -> heaviest edge weight into the sample
    for v, wt in neighbours(start):
        frontier[v] = max(frontier.get(v, 0), wt)
    wanted = max(2, (size + 1) // 2)  # classes to span before weight alone decides
    while frontier and len(picked) < size:
        diverse = len(seen_classes) < wanted
        best = min(frontier, key=lambda v: (diverse and cls(v) in seen_classes, -frontier[v], v))
        del frontier[best]
        picked.append(best)
        seen.add(best)
        seen_classes.add(cls(best))
        for v, wt in neighbours(best):
            if v not in seen:
                frontier[v] = max(frontier.get(v, 0), wt)
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
    spanned = len({int(node_classes[u]) for u in nodes}) if node_classes is not None else 1
    ax.set_title(
        f"A {len(nodes)}-node co-purchase subgraph over {spanned} class"
        f"{'es' if spanned != 1 else ''} (edge width ~ log weight)"
    )
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
            len(data.titles),
            data.src,
            data.dst,
            data.weights,
            seed=data.seed,
            classes=data.node_classes,
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
