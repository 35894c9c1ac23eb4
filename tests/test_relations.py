"""Tests of the RCML relation stage (pipeline.relations) on generated work directories."""

from __future__ import annotations

import argparse
import itertools
import json
import logging
import re
from collections import Counter
from pathlib import Path

import duckdb
import numpy as np
import polars as pl
import pytest
from sklearn.metrics import adjusted_rand_score

from pipeline import workdir
from pipeline.classes import ClassesParams, choose_classes
from pipeline.cli import main
from pipeline.cli import relations as cli_relations
from pipeline.errors import UserError
from pipeline.io import read_json, sha256_file
from pipeline.relations import (
    INTRA_TEXT,
    TIERS,
    RelationsParams,
    build_relations,
    relation_inputs,
    relation_text,
    relation_tiers,
)
from pipeline.relations.clusters import centroids, describe
from pipeline.relations.vectors import sample_rows, user_vectors
from pipeline.relations.vocabulary import build_vocabulary
from pipeline.relations.votes import edge_votes
from tests.relations_oracle import dense_user_matrix, dense_vectors, join_votes

CLASS_NAMES = [
    "Computers & Accessories",
    "Camera & Photo",
    "Headphones, Earbuds & Accessories",
    "Car & Vehicle Electronics",
    "Home Audio",
    "Wearable Technology",
]
# Words the templates may use besides class names; anything else in a text is a bug.
TEMPLATE_WORDS = set(
    "co-purchased by people who primarily buy overwhelmingly show a striking preference for "
    "heavily favor followed with moderate interest in while showing lower engagement minimal "
    "and other category categories the or smaller similar shares of".split()
)


def write_work(
    work: Path,
    purchases: list[tuple[str, str]],
    edges: list[tuple[str, str]],
    item_class: dict[str, int],
    class_names: list[str],
    final: bool = True,
    more_reviews: list[tuple[str, str]] = (),
    paths: dict[str, list[str]] | None = None,
) -> None:
    """Write the inputs of the relations stage: bipartite, (final) graph, reviews (the
    purchases plus ``more_reviews``) and items, whose category path is ["Electronics",
    <class name>, "Leaf"] (or ``paths[asin]``)."""
    work.mkdir(parents=True, exist_ok=True)
    pl.DataFrame(purchases, schema=["user_id", "asin"], orient="row").write_parquet(
        work / workdir.BIPARTITE
    )
    pl.DataFrame(
        list(purchases) + list(more_reviews), schema=["user_id", "asin"], orient="row"
    ).write_parquet(work / workdir.REVIEWS)
    e = pl.DataFrame(
        [(min(a, b), max(a, b), 3) for a, b in edges],
        schema={"src_asin": pl.Utf8, "dst_asin": pl.Utf8, "weight": pl.Int64},
        orient="row",
    )
    nodes = sorted({a for pair in edges for a in pair})
    deg = Counter(a for pair in edges for a in pair)
    n = pl.DataFrame({"asin": nodes, "degree": [deg[a] for a in nodes]})
    folder = work / workdir.FINAL_DIR if final else work
    folder.mkdir(exist_ok=True)
    e.write_parquet(folder / workdir.EDGES)
    n.write_parquet(folder / workdir.NODES)
    paths = {a: ["Electronics", class_names[c], "Leaf"] for a, c in item_class.items()} | (
        paths or {}
    )
    asins = sorted(paths)
    pl.DataFrame(
        {"asin": asins, "categories": [paths[a] for a in asins]},
        schema={"asin": pl.String, "categories": pl.List(pl.String)},
    ).write_parquet(work / workdir.ITEMS)


def planted(seed: int = 0, n_groups: int = 4, users_per_group: int = 150, min_co: int = 2):
    """Users in planted groups, each buying mostly from its own class."""
    rng = np.random.default_rng(seed)
    n_classes = len(CLASS_NAMES)
    items = {c: [f"I{c}{i:03d}" for i in range(15)] for c in range(n_classes)}
    item_class = {a: c for c, lst in items.items() for a in lst}
    purchases, group = [], {}
    for g in range(n_groups):
        prob = np.full(n_classes, 0.3 / (n_classes - 1))
        prob[g] = 0.7
        for u in range(users_per_group):
            uid = f"U{g}_{u:04d}"
            group[uid] = g
            bought: set[str] = set()
            for _ in range(int(rng.integers(4, 11))):
                c = int(rng.choice(n_classes, p=prob))
                bought.add(items[c][int(rng.integers(0, len(items[c])))])
            purchases += [(uid, a) for a in sorted(bought)]
    by_user: dict[str, list[str]] = {}
    for u, a in purchases:
        by_user.setdefault(u, []).append(a)
    co = Counter(p for lst in by_user.values() for p in itertools.combinations(sorted(lst), 2))
    edges = sorted(p for p, n in co.items() if n >= min_co)
    return purchases, edges, item_class, group


@pytest.fixture(scope="module")
def planted_work(tmp_path_factory):
    work = tmp_path_factory.mktemp("planted")
    purchases, edges, item_class, group = planted()
    write_work(work, purchases, edges, item_class, CLASS_NAMES)
    stats = build_relations(work, RelationsParams(relations_k=4, seed=0))
    return work, stats, group, purchases


def names_in(text: str, class_names: list[str]) -> list[str]:
    """Class names in order of appearance (longest match first), and the text left over."""
    found = []
    for name in sorted(class_names, key=len, reverse=True):
        for m in re.finditer(re.escape(name), text):
            found.append((m.start(), name))
        text = text.replace(name, " ")
    return [n for _, n in sorted(found)], text


def test_planted_clusters_are_recovered(planted_work):
    work, stats, group, _ = planted_work
    uc = pl.read_parquet(work / workdir.RELATIONS_DIR / "user_clusters.parquet")
    assert uc.columns == ["user_id", "cluster"]
    assert uc["user_id"].to_list() == sorted(uc["user_id"].to_list())
    truth = [group[u] for u in uc["user_id"]]
    assert adjusted_rand_score(truth, uc["cluster"].to_list()) > 0.8
    assert stats["k"] == 4 and stats["users_clustered"] == len(group)
    assert sum(stats["cluster_sizes"]) == len(group)
    assert stats["silhouette"] is not None and stats["silhouette"] > 0.2

    rel = read_json(work / workdir.RELATIONS_DIR / "relations.json")
    assert rel["intra_text"] == INTRA_TEXT
    texts = [r["text"] for r in rel["relations"]]
    assert len(set(texts)) == len(texts)
    # Each planted group's own class is the dominant class of exactly one cluster, named first.
    firsts = []
    for r in rel["relations"]:
        shares = r["shares"]
        assert set(shares) == set(CLASS_NAMES)
        assert sum(shares.values()) == pytest.approx(1, abs=1e-5)
        top = max(shares, key=lambda n: (shares[n], -CLASS_NAMES.index(n)))
        found, rest = names_in(r["text"], CLASS_NAMES)
        assert found[0] == top
        assert sorted(found) == sorted(CLASS_NAMES)  # every class named once
        assert set(re.findall(r"[A-Za-z-]+", rest.lower())) <= TEMPLATE_WORDS
        firsts.append(top)
    assert sorted(firsts) == sorted(CLASS_NAMES[:4])
    assert [r["id"] for r in rel["relations"]] == list(range(4))
    assert [r["users"] for r in rel["relations"]] == stats["cluster_sizes"]
    sizes = stats["cluster_sizes"]
    assert sizes == sorted(sizes, reverse=True)  # id 0 = largest cluster


def test_edge_relations_match_brute_force(planted_work):
    work, stats, _, purchases = planted_work
    er = pl.read_parquet(work / workdir.RELATIONS_DIR / "edge_relations.parquet")
    edges = pl.read_parquet(work / workdir.FINAL_DIR / workdir.EDGES)
    assert er.columns == [
        "src_asin",
        "dst_asin",
        "relation_id",
        "relation_users",
        "relation_ids",
        "relation_shares",
    ]
    assert er.schema["relation_id"] == pl.Int64 and er.schema["relation_users"] == pl.Int64
    assert er.schema["relation_ids"] == pl.List(pl.Int64)
    assert er.schema["relation_shares"] == pl.List(pl.Float64)
    assert er.height == edges.height
    assert er.select("src_asin", "dst_asin").equals(
        edges.select("src_asin", "dst_asin").sort("src_asin", "dst_asin")
    )
    cluster = dict(
        pl.read_parquet(work / workdir.RELATIONS_DIR / "user_clusters.parquet").iter_rows()
    )
    expected = brute_force(purchases, cluster, er)
    got = {(s, d): (r, n) for s, d, r, n, _, _ in er.iter_rows()}
    assert got == expected
    # The distribution: every cluster of the co-buyers with its share, top first (= the
    # majority), ties by id; the shares sum to 1.
    dist = brute_force_distribution(purchases, cluster, er)
    for s, d, r, n, ids, shares in er.iter_rows():
        want_ids, want_counts = dist[(s, d)]
        assert ids == want_ids and ids[0] == r
        assert shares == pytest.approx([c / n for c in want_counts], abs=1e-15)
        assert sum(shares) == pytest.approx(1.0, abs=1e-12)
        assert shares == sorted(shares, reverse=True)
    assert stats["edges_multi_relation"] == sum(1 for ids in er["relation_ids"] if len(ids) > 1)
    assert stats["edges_multi_relation"] > er.height / 2  # planted groups overlap
    rel = read_json(work / workdir.RELATIONS_DIR / "relations.json")
    counts = Counter(er["relation_id"].to_list())
    assert [r["edges"] for r in rel["relations"]] == [counts[i] for i in range(stats["k"])]
    assert sum(stats["edge_shares"]) == pytest.approx(1, abs=1e-5)
    assert stats["edges_fallback"] == 0
    assert stats == rel["stats"]


def brute_force(purchases, cluster, er, ties: list | None = None) -> dict:
    """Majority cluster of each edge's co-buyers, lowest id on ties (pure Python)."""
    buyers: dict[str, set[str]] = {}
    for u, a in purchases:
        buyers.setdefault(a, set()).add(u)
    out = {}
    for s, d in er.select("src_asin", "dst_asin").iter_rows():
        co = buyers.get(s, set()) & buyers.get(d, set())
        votes = Counter(cluster[u] for u in co if u in cluster)
        if votes:
            best = max(votes.values())
            winners = [c for c, n in votes.items() if n == best]
            out[(s, d)] = (min(winners), sum(votes.values()))
            if ties is not None and len(winners) > 1:
                ties.append((s, d))
    return out


def brute_force_distribution(purchases, cluster, er) -> dict:
    """Every edge's co-buyer clusters, most co-buyers first (ties by id), with the counts."""
    buyers: dict[str, set[str]] = {}
    for u, a in purchases:
        buyers.setdefault(a, set()).add(u)
    out = {}
    for s, d in er.select("src_asin", "dst_asin").iter_rows():
        co = buyers.get(s, set()) & buyers.get(d, set())
        votes = Counter(cluster[u] for u in co if u in cluster)
        ranked = sorted(votes.items(), key=lambda kv: (-kv[1], kv[0]))
        out[(s, d)] = ([c for c, _ in ranked], [n for _, n in ranked])
    return out


def test_small_inputs_ties_single_buyers_and_orphan_edge(tmp_path):
    """Random small graphs: SQL majority equals a Python vote, with ties to the lowest id."""
    rng = np.random.default_rng(3)
    names = ["Feeding", "Nursery", "Diapering", "Safety"]
    ties: list = []
    for trial in range(3):
        work = tmp_path / f"w{trial}"
        items = [f"A{i:02d}" for i in range(12)]
        item_class = {a: i % 4 for i, a in enumerate(items)}
        purchases = []
        for u in range(40):
            for a in rng.choice(items[:11], size=int(rng.integers(2, 6)), replace=False):
                purchases.append((f"u{u:02d}", str(a)))
        # Single-purchase users and purchases of non-graph items: never clustered.
        purchases += [("single1", "A00"), ("single2", "A05"), ("single2", "ZZ_not_a_node")]
        edges = [(a, b) for a, b in itertools.combinations(items[:11], 2)]
        edges.append(("A00", "A11"))  # A11 is bought by nobody: an orphan edge
        write_work(work, purchases, edges, item_class, names)
        stats = build_relations(work, RelationsParams(relations_k=3, seed=trial))
        uc = dict(pl.read_parquet(work / "relations" / "user_clusters.parquet").iter_rows())
        assert "single1" not in uc and "single2" not in uc
        assert stats["users_single_purchase"] == 2
        er = pl.read_parquet(work / "relations" / "edge_relations.parquet")
        expected = brute_force(purchases, uc, er, ties)
        got = {(s, d): (r, n) for s, d, r, n, _, _ in er.iter_rows()}
        for key, val in expected.items():
            assert got[key] == val
        # Edges without a clustered co-buyer: nearest centroid to the edge's class mix.
        orphans = [key for key in got if key not in expected]
        assert ("A00", "A11") in orphans
        assert stats["edges_fallback"] == len(orphans)
        rel = read_json(work / "relations" / "relations.json")
        cents = np.array([[r["shares"][n] for n in names] for r in rel["relations"]])
        for s, d in orphans:
            vec = np.zeros(4)
            vec[item_class[s]] += 0.5
            vec[item_class[d]] += 0.5
            nearest = int(np.argmin(((cents - vec) ** 2).sum(axis=1)))
            assert got[(s, d)] == (nearest, 0)
            row = er.filter((pl.col("src_asin") == s) & (pl.col("dst_asin") == d))
            assert row.select("relation_ids", "relation_shares").row(0) == ([nearest], [1.0])
    assert len(ties) >= 5  # the tie rule was exercised


def test_fewer_classes_than_k(tmp_path, caplog):
    purchases, edges, item_class, _ = planted(n_groups=3, users_per_group=40)
    keep = {a for a, c in item_class.items() if c < 3}
    purchases = [(u, a) for u, a in purchases if a in keep]
    edges = [e for e in edges if e[0] in keep and e[1] in keep]
    item_class = {a: c for a, c in item_class.items() if a in keep}
    write_work(tmp_path, purchases, edges, item_class, CLASS_NAMES[:3])
    with caplog.at_level(logging.INFO, logger="pipeline.relations"):
        stats = build_relations(tmp_path, RelationsParams(relations_k=10))
    assert stats["k_requested"] == 10 and stats["k"] == 3
    assert "k reduced from 10 to 3" in caplog.text
    rel = read_json(tmp_path / "relations" / "relations.json")
    assert len({r["text"] for r in rel["relations"]}) == 3


def test_identical_vectors_give_one_cluster_and_fallback_to_unfiltered_graph(tmp_path):
    """All users share one class mix: k shrinks to 1; work/edges.parquet used without final/."""
    purchases = [(f"u{i}", a) for i in range(5) for a in ("A", "B")]
    write_work(tmp_path, purchases, [("A", "B")], {"A": 0, "B": 1}, ["Dogs", "Cats"], final=False)
    stats = build_relations(tmp_path, RelationsParams(relations_k=10))
    assert stats["k"] == 1 and stats["silhouette"] is None
    er = pl.read_parquet(tmp_path / "relations" / "edge_relations.parquet")
    assert er.rows() == [("A", "B", 0, 5, [0], [1.0])]


def test_byte_identical_reruns(tmp_path):
    purchases, edges, item_class, _ = planted(seed=5, users_per_group=60)
    digests = []
    for run in ("a", "b"):
        work = tmp_path / run
        write_work(work, purchases, edges, item_class, CLASS_NAMES)
        build_relations(work, RelationsParams(relations_k=5, seed=1))
        digests.append(
            [
                sha256_file(work / "relations" / name)
                for name in ("relations.json", "edge_relations.parquet", "user_clusters.parquet")
            ]
        )
    assert digests[0] == digests[1]


def test_minibatch_path(tmp_path):
    purchases, edges, item_class, group = planted(seed=2, users_per_group=80)
    write_work(tmp_path, purchases, edges, item_class, CLASS_NAMES)
    stats = build_relations(
        tmp_path, RelationsParams(relations_k=4, minibatch_threshold=10, sample_silhouette=50)
    )
    assert stats["algorithm"] == "minibatch_kmeans" and stats["silhouette_sample"] == 50
    uc = pl.read_parquet(tmp_path / "relations" / "user_clusters.parquet")
    assert adjusted_rand_score([group[u] for u in uc["user_id"]], uc["cluster"]) > 0.7


def test_bad_inputs(tmp_path):
    with pytest.raises(UserError, match="missing input"):
        build_relations(tmp_path)
    purchases = [("u1", "A"), ("u1", "B"), ("u2", "A"), ("u2", "B")]
    write_work(tmp_path, purchases, [("A", "B")], {"A": 0, "B": 1}, ["Dogs", "Cats"])
    with pytest.raises(UserError, match="no purchase has a subcategory at taxonomy level 3"):
        build_relations(tmp_path, RelationsParams(relation_level=3))
    write_work(tmp_path, [("u1", "A"), ("u2", "B")], [("A", "B")], {"A": 0, "B": 1}, ["X", "Y"])
    with pytest.raises(UserError, match="no user bought two"):
        build_relations(tmp_path)
    with pytest.raises(UserError, match="k must be"):
        build_relations(tmp_path, RelationsParams(relations_k=0))
    with pytest.raises(UserError, match="relation_level must be"):
        RelationsParams(relation_level=-1)


def test_vocabulary_is_the_first_level_over_all_purchases(tmp_path):
    """Users are described by level 1 of the category path (not the class level) over all
    their reviews in the category: graph nodes or not; purchases of items without a
    subcategory there (a short path, no metadata) share the outside column, which the text
    never names as a category."""
    paths = {
        "A": ["Electronics", "Audio", "Headphones"],
        "B": ["Electronics", "Audio", "Speakers"],
        "C": ["Electronics", "Cameras", "Lenses"],  # bought, not a graph node
        "E": ["Electronics"],  # no subcategory
        "P": ["Cell Phones", "Audio", "Cables"],  # same name under another parent
        "O": ["Electronics", " other ", "Misc"],  # "Other" is no category to name
    }
    users = [f"u{i}" for i in range(4)]
    purchases = [(u, a) for u in users for a in ("A", "B")]
    more = [(u, a) for u in users for a in ("C", "E", "Z")]  # Z: no metadata at all
    more += [(u, "O") for u in users]
    more += [("w", "P"), ("w", "A")]  # w bought one graph node: not clustered
    write_work(tmp_path, purchases, [("A", "B")], {}, [], more_reviews=more, paths=paths)
    stats = build_relations(tmp_path, RelationsParams(relations_k=3))
    rel = read_json(tmp_path / workdir.RELATIONS_JSON)
    # P was bought by no clustered user, so its "Audio" is not in the vocabulary; with it
    # the two would be told apart by their parents.
    assert rel["vocabulary"] == {"level": 1, "names": ["Audio", "Cameras"], "outside": True}
    assert stats["k"] == 1 and stats["classes"] == 2
    assert (stats["purchases_counted"], stats["purchases_outside"]) == (24, 12)
    (r,) = rel["relations"]
    assert r["shares"] == {"Audio": 0.333333, "Cameras": 0.166667}
    assert r["outside_share"] == 0.5
    assert r["text"] == (
        "Co-purchased by people who primarily buy Audio, followed by Cameras. "
        "Most of their purchases are outside these categories."
    ), r["text"]
    assert "Other" not in r["text"]
    # Once a clustered user bought P, the two "Audio" are named by their parents; level 2
    # gives the leaves.
    more.append(("u0", "P"))
    write_work(tmp_path, purchases, [("A", "B")], {}, [], more_reviews=more, paths=paths)
    build_relations(tmp_path, RelationsParams(relations_k=3, relation_level=1))
    names = read_json(tmp_path / workdir.RELATIONS_JSON)["vocabulary"]["names"]
    assert names == ["Cameras", "Cell Phones > Audio", "Electronics > Audio"]
    build_relations(tmp_path, RelationsParams(relations_k=3, relation_level=2))
    names = read_json(tmp_path / workdir.RELATIONS_JSON)["vocabulary"]["names"]
    assert names == ["Cables", "Headphones", "Lenses", "Misc", "Speakers"]


def test_relation_text_tiers_and_style():
    names = [
        "Nursery",
        "Feeding",
        "Diapering",
        "Baby Care",
        "Safety",
        "Strollers & Accessories",
        "Car Seats & Accessories",
        "Gifts",
    ]
    mean = np.full(8, 1 / 8)
    c = np.array([0.05, 0.2, 0.08, 0.015, 0.004, 0.001, 0.55, 0.1])
    c = c / c.sum()
    text = relation_text(c, mean, names)
    assert text == relation_text(c, mean, names)  # pure
    assert text.startswith("Co-purchased by people who ")
    assert text.endswith(".")
    found, rest = names_in(text, names)
    assert found[0] == "Car Seats & Accessories"
    assert sorted(found) == sorted(names)
    assert set(re.findall(r"[A-Za-z-]+", rest.lower())) <= TEMPLATE_WORDS
    tiers = relation_tiers(c, mean)
    assert tiers[6] == 0 and tiers[1] == 1  # Feeding: 0.36 of the top share
    assert tiers[5] == 4  # Strollers: a trace
    assert "followed by Feeding" in text and "minimal interest in" in text, (
        text
    )  # phrased as in the paper
    # Population adjustment: the same share reads stronger when the population rarely buys it.
    rare = mean.copy()
    rare[7] = 0.02
    assert relation_tiers(c, rare)[7] < tiers[7]
    common = mean.copy()
    common[1] = 0.8
    assert relation_tiers(c, common)[1] > tiers[1]
    # Dominant pair and listing cap.
    two = np.array([0.4, 0.38, 0.1, 0.05, 0.03, 0.02, 0.01, 0.01])
    t2 = relation_text(two, mean, names, max_names=3)
    assert t2.startswith("Co-purchased by people who primarily buy Nursery and Feeding")
    found2, _ = names_in(t2, names)
    assert found2 == ["Nursery", "Feeding", "Diapering"]
    assert t2.endswith("while showing lower or minimal interest in the other 5 categories."), t2
    counted = sum(int(n) for n in re.findall(r"other (\d+) categor", t2))
    assert len(found2) + counted == len(names)  # the rest are counted, never dropped
    assert [TIERS[t] for t in relation_tiers(two, mean)][:2] == ["dominant", "dominant"]
    # Many classes: at most 12 named, whole tiers, the rest counted, dominant still first.
    many = [f"Class {i} & Co" for i in range(30)]
    shares = np.random.default_rng(0).dirichlet(np.ones(30))
    t30 = relation_text(shares, np.full(30, 1 / 30), many)
    found30, _ = names_in(t30, many)
    assert found30[0] == many[int(np.argmax(shares))] and len(found30) <= 12
    counted = sum(int(n) for n in re.findall(r"other (\d+) categor", t30))
    assert len(found30) + counted == 30
    with pytest.raises(ValueError):
        relation_text(c, mean, names[:3])


def test_wording_with_30_flat_classes_reads_as_one_sentence():
    """30 flat classes: whole tiers are named while 12 names last, then one count for the
    rest; every class is either named once or counted."""
    many = [f"Class {i}" for i in range(30)]
    for seed in range(20):
        shares = np.random.default_rng(seed).dirichlet(np.full(30, 0.3))
        text = relation_text(shares, np.full(30, 1 / 30), many)
        found, rest = names_in(text, many)
        assert len(found) == len(set(found)) <= 12
        counted = [int(n) for n in re.findall(r"the other (\d+) categor", text)]
        assert len(counted) <= 1 and len(found) + sum(counted) == 30
        assert found[0] == many[int(np.argmax(shares))]
        assert text.count(".") == 1 and "Other" not in text
        assert set(re.findall(r"[A-Za-z-]+", rest.lower())) <= TEMPLATE_WORDS | {"class"}
    shares = np.random.default_rng(1).dirichlet(np.full(30, 0.3))
    assert relation_text(shares, np.full(30, 1 / 30), many) == (
        "Co-purchased by people who show a striking preference for Class 11, followed by "
        "Class 1 and Class 16, with moderate interest in Class 27, Class 19, Class 23, and "
        "Class 25, while showing lower engagement in Class 6, Class 24, Class 15, Class 22, "
        "and Class 12, and minimal interest in the other 18 categories."
    )


def test_wording_never_names_the_outside_column():
    names = ["Audio", "Cameras", "Computers", "Phones", "(outside these categories)"]
    mean = np.array([0.25, 0.2, 0.2, 0.25, 0.1])
    some = np.array([0.5, 0.1, 0.05, 0.05, 0.3])
    assert relation_text(some, mean, names, outside=4) == (
        "Co-purchased by people who heavily favor Audio, while showing lower engagement in "
        "Cameras, and minimal interest in Computers and Phones. Many of their purchases are "
        "outside these categories."
    )
    most = np.array([0.1, 0.1, 0.05, 0.05, 0.7])
    assert relation_text(most, mean, names, outside=4).endswith(
        "Most of their purchases are outside these categories."
    )
    assert relation_text(most, mean, names, outside=4, detail=True).endswith(
        "Phones (5%). 70% of their purchases are outside these categories."
    )
    little = np.array([0.5, 0.3, 0.1, 0.08, 0.02])
    assert "outside" not in relation_text(little, mean, names, outside=4)
    assert relation_text(np.array([0, 0, 0, 0, 1.0]), mean, names, outside=4) == (
        "Co-purchased by people who buy almost only products outside these categories."
    )
    for c in (some, most, little):
        text = relation_text(c, mean, names, outside=4)
        found, _ = names_in(text, names)
        assert names[4] not in found and "Other" not in text


def test_texts_disambiguated_or_merged():
    names = ["Dogs", "Cats", "Birds"]
    # Two clusters with the same tier structure but different mixes: percentages added.
    points = np.array([[0.7, 0.3, 0.0], [0.6, 0.4, 0.0], [0.0, 0.1, 0.9]])
    weights = np.array([3.0, 2.0, 1.0])
    mean = (points * weights[:, None]).sum(0) / weights.sum()
    labels, cents, sizes, texts, merged = describe(
        points, weights, np.array([0, 1, 2]), mean, names
    )
    assert merged == 0 and len(set(texts)) == 3
    assert "(70%)" in texts[0] and "(60%)" in texts[1] and "%" not in texts[2]
    # Identical mixes cannot be told apart in words: merged into one relation.
    points = np.array([[0.7, 0.3, 0.0], [0.7001, 0.2999, 0.0], [0.0, 0.1, 0.9]])
    labels, cents, sizes, texts, merged = describe(
        points, weights, np.array([0, 1, 2]), mean, names
    )
    assert merged == 1 and len(texts) == 2 and sizes.tolist() == [5, 1]
    assert labels.tolist() == [0, 0, 1]


def test_intra_text_is_the_papers():
    assert INTRA_TEXT == (
        "These two items represent the same product. Align their features accordingly."
    )


def test_cli(tmp_path, capsys):
    purchases, edges, item_class, _ = planted(seed=1, users_per_group=30)
    write_work(tmp_path, purchases, edges, item_class, CLASS_NAMES)
    parser = argparse.ArgumentParser(prog="acmmg")
    sub = parser.add_subparsers(dest="command", required=True)
    cli_relations.register(sub)
    args = parser.parse_args(["relations", "--work", str(tmp_path), "--k", "3"])
    assert args.func(args) == 0
    assert "in 3 clusters" in capsys.readouterr().out
    rel = json.loads((tmp_path / "relations" / "relations.json").read_text())
    assert rel["stats"]["k_requested"] == 3


# --------------------------------------------------------------------------- oracles


def _vote_db(purchases, edges, clusters) -> duckdb.DuckDBPyConnection:
    """DuckDB with the views the vote reads: bipartite, edges, user_clusters."""
    con = duckdb.connect()
    con.register("bipartite_df", pl.DataFrame(purchases, schema=["user_id", "asin"], orient="row"))
    con.register("edges_df", pl.DataFrame(edges, schema=["src_asin", "dst_asin"], orient="row"))
    con.register(
        "clusters_df",
        pl.DataFrame(
            list(clusters.items()),
            schema={"user_id": pl.String, "cluster": pl.Int64},
            orient="row",
        ),
    )
    con.execute("CREATE VIEW bipartite AS SELECT * FROM bipartite_df")
    con.execute("CREATE VIEW edges AS SELECT * FROM edges_df")
    con.execute("CREATE TABLE user_clusters AS SELECT * FROM clusters_df")
    return con


def test_vote_matches_the_join_oracle_on_random_data():
    """Pair instances from baskets give exactly the old join's votes: ties, duplicate
    purchase rows, unclustered users, edges nobody bought, single-purchase users."""
    rng = np.random.default_rng(11)
    for trial in range(6):
        items = [f"A{i:03d}" for i in range(int(rng.integers(5, 40)))]
        purchases = []
        for u in range(int(rng.integers(20, 300))):
            size = int(rng.integers(1, min(10, len(items)) + 1))
            for a in rng.choice(items, size=size, replace=False):
                purchases.append((f"u{u:03d}", str(a)))
                if rng.random() < 0.05:
                    purchases.append((f"u{u:03d}", str(a)))  # a duplicate row
        pairs = list(itertools.combinations(items, 2))
        pick = rng.choice(len(pairs), size=max(1, len(pairs) // 3), replace=False)
        edges = [pairs[i] for i in sorted(pick)]
        users = sorted({u for u, _ in purchases})
        clusters = {u: int(rng.integers(0, 2 + trial)) for u in users if rng.random() < 0.85}
        con = _vote_db(purchases, edges, clusters)
        got, formed = edge_votes(con)
        want = join_votes(con)
        assert got.select(want.columns).equals(want), trial
        # The distributions, ties by id, against a Python count.
        dist = brute_force_distribution(purchases, clusters, got)
        for s, d, ids, shares, users in got.select(
            "src_asin", "dst_asin", "relation_ids", "relation_shares", "relation_users"
        ).iter_rows():
            want_ids, counts = dist[(s, d)]
            assert (ids or []) == want_ids
            assert (shares or []) == [c / users for c in counts]
        assert got["relation_id"].null_count() < got.height
        # Work: the instances of the clustered users' baskets, C(d, 2) each.
        baskets = Counter()
        graph = {a for e in edges for a in e}
        for u, a in set(purchases):
            if u in clusters and a in graph:
                baskets[u] += 1
        assert formed == sum(d * (d - 1) // 2 for d in baskets.values())


def _counted_db(rows) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    con.register("counted_df", pl.DataFrame(rows, schema=["user_id", "col"], orient="row"))
    con.execute("CREATE VIEW counted AS SELECT * FROM counted_df")
    return con


def _assert_vectors_match_dense(con, columns):
    counts = con.sql(
        "SELECT user_id, col AS class, count(*) AS n FROM counted GROUP BY ALL "
        "ORDER BY user_id, class"
    ).pl()
    users, x = dense_user_matrix(counts, list(range(columns)))
    points, inverse, weights, mean = dense_vectors(x)
    v = user_vectors(con, columns)
    assert np.array_equal(v.points, points) and np.array_equal(v.weights, weights)
    assert v.users == len(users)
    np.testing.assert_allclose(v.population_mean, mean, rtol=1e-12)
    per_user = con.sql("SELECT vid FROM user_vid ORDER BY user_id").fetchnumpy()["vid"]
    assert np.array_equal(v.vid_point[per_user.astype(np.int64)], inverse)
    return v, inverse


def test_user_vectors_match_the_dense_oracle_on_random_data():
    """Distinct vectors from DuckDB = np.unique over the dense users x classes matrix; the
    silhouette sample picks the same users."""
    rng = np.random.default_rng(5)
    for trial in range(4):
        columns = int(rng.integers(1, 12))
        rows = []
        for u in range(int(rng.integers(10, 400))):
            # Small baskets and proportional ones (1:2 and 2:4) must give the same vector.
            for _ in range(int(rng.integers(1, 9))):
                rows.append((f"u{u:04d}", int(rng.integers(0, columns))))
        con = _counted_db(rows)
        v, inverse = _assert_vectors_match_dense(con, columns)
        size = min(v.users, 50)
        idx = np.sort(np.random.default_rng(trial).choice(v.users, size=size, replace=False))
        assert np.array_equal(sample_rows(con, v, size, trial), inverse[idx])


@pytest.fixture(scope="module")
def sample_work(sample_dir, tmp_path_factory):
    """The generated sample category through ingest, clean, graph, classes and relations."""
    work = tmp_path_factory.mktemp("sample_work")
    meta = sample_dir / "meta_Demo.jsonl.gz"
    rc = main(
        ["graph", "--reviews", str(sample_dir / "Demo.jsonl.gz"), "--meta", str(meta)]
        + ["--out", str(work)]
    )
    assert rc == 0
    choose_classes(work, ClassesParams(taxonomy_level=2))
    stats = build_relations(work, RelationsParams())
    return work, stats


def test_sample_category_matches_the_previous_implementation(sample_work):
    """On a demo-shaped category: the vote equals the old join given the written clusters,
    the user vectors equal the old dense matrix, and the texts read the same with the old
    population mean."""
    work, stats = sample_work
    con = duckdb.connect()
    for view, path in {
        **relation_inputs(work),
        "user_clusters": work / workdir.USER_CLUSTERS,
    }.items():
        con.execute(f"CREATE VIEW {view} AS SELECT * FROM read_parquet('{path}')")
    want = join_votes(con)
    assert want["relation_id"].null_count() == 0
    er = pl.read_parquet(work / workdir.EDGE_RELATIONS)
    assert er.select(want.columns[:4]).equals(want.select(want.columns[:4]))
    assert stats["edges"] == er.height > 100
    assert [ids[0] for ids in er["relation_ids"]] == er["relation_id"].to_list()
    assert np.allclose([sum(x) for x in er["relation_shares"]], 1.0, rtol=0, atol=1e-12)
    assert stats["edges_multi_relation"] > 0

    vocab = build_vocabulary(con, 1)
    rel = read_json(work / workdir.RELATIONS_JSON)
    assert rel["vocabulary"]["names"] == ["Audio", "Cameras", "Computers", "Phones"]
    assert vocab.names[:4] == rel["vocabulary"]["names"]
    v, _ = _assert_vectors_match_dense(con, vocab.columns)
    cents, sizes = centroids(v.points, v.weights, *_labels_from(con, v, len(rel["relations"])))
    assert sizes.tolist() == stats["cluster_sizes"]
    counts = con.sql(
        "SELECT user_id, col AS class, count(*) AS n FROM counted GROUP BY ALL "
        "ORDER BY user_id, class"
    ).pl()
    old_mean = dense_user_matrix(counts, list(range(vocab.columns)))[1].mean(axis=0)
    texts = [r["text"] for r in rel["relations"]]
    assert (
        texts
        == describe(
            v.points, v.weights, _labels_from(con, v, 0)[0], old_mean, vocab.names, vocab.outside
        )[3]
    )


def _labels_from(con, v, k):
    """Cluster of every distinct vector, read back from user_clusters."""
    rows = con.sql(
        "SELECT DISTINCT u.vid, c.cluster FROM user_vid AS u JOIN user_clusters AS c "
        "USING (user_id)"
    ).fetchnumpy()
    labels = np.full(len(v.points), -1)
    labels[v.vid_point[rows["vid"].astype(np.int64)]] = rows["cluster"]
    assert (labels >= 0).all()
    return labels, k
