"""Published-folder loading, the images.tar reader, the subgraph batch sampler and SLIP's
positive mask (against networkx shortest paths)."""

from __future__ import annotations

import shutil

import networkx as nx
import numpy as np
import polars as pl
import pytest
import torch

from pipeline.errors import UserError
from pipeline.training.data import (
    SubgraphBatchSampler,
    TarImages,
    adjacency,
    batch_adjacency,
    batch_relations,
    load_category,
    load_embeddings,
    negative_mask,
    positive_mask,
)
from tests.training_fixtures import make_category_folder


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return make_category_folder(tmp_path_factory.mktemp("training_data") / "Demo")


def test_load_category(folder):
    d = load_category(folder)
    assert d.num_nodes == 40 and d.num_classes == 4
    assert d.asins[3] == "B000000003" and d.titles[3].startswith("yellow")
    assert d.descriptions[0] == "A red product. Model 0."
    assert d.texts("combined")[0] == f"{d.titles[0]} {d.descriptions[0]}"
    assert d.labels.tolist() == [i % 4 for i in range(40)]
    edges = pl.read_parquet(folder / "edges.parquet")
    assert len(d.src) == edges.height and (d.src < d.dst).all()
    assert sorted(d.relation_texts) == [0, 1, 2, 3, 4]
    assert d.intra_text.startswith("These two items represent the same product")
    assert d.class_names == {0: "Red", 1: "Green", 2: "Blue", 3: "Yellow"}
    assert d.split_source == "splits.parquet"
    sizes = {s: len(d.nodes(s)) for s in ("train", "val", "test")}
    assert sizes == {"train": 24, "val": 4, "test": 12}
    a = d.adjacency()
    assert (a != a.T).nnz == 0 and a.diagonal().sum() == 0 and a.nnz == 2 * len(d.src)
    rel = d.relation_matrix()
    assert rel[d.src[0], d.dst[0]] == d.relation_id[0] + 1 == rel[d.dst[0], d.src[0]]


def test_split_fallback_matches_published(folder, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(folder, copy)
    (copy / "splits.parquet").unlink()
    published = load_category(folder)
    derived = load_category(copy)
    assert derived.split_source.startswith("make_splits")
    assert derived.split.tolist() == published.split.tolist()


def test_bad_folders(folder, tmp_path):
    with pytest.raises(UserError, match="node_attributes"):
        load_category(tmp_path)
    copy = tmp_path / "dup"
    shutil.copytree(folder, copy)
    edges = pl.read_parquet(copy / "edges.parquet")
    pl.concat([edges, edges.head(1)]).write_parquet(copy / "edges.parquet")
    with pytest.raises(UserError, match="more than once"):
        load_category(copy)
    # relation ids without a text: the edges stay, without relation (SLIP still trains)
    edges.with_columns(pl.lit(99).alias("relation_id")).write_parquet(copy / "edges.parquet")
    d = load_category(copy)
    assert len(d.src) == edges.height and (d.relation_id == -1).all()
    assert d.relation_matrix().nnz == 0


def test_embeddings_pt_npy_safetensors(folder, tmp_path):
    from safetensors.torch import save_file

    ref = load_embeddings(folder, "image")
    assert ref.shape == (40, 512) and ref.dtype == torch.float32
    for ext in ("npy", "safetensors"):
        d = tmp_path / ext
        (d / "embeddings").mkdir(parents=True)
        if ext == "npy":
            np.save(d / "embeddings" / "image_embeds.npy", ref.numpy())
        else:
            save_file({"embeddings": ref}, str(d / "embeddings" / "image_embeds.safetensors"))
        assert torch.equal(load_embeddings(d, "image"), ref)
    with pytest.raises(UserError):
        load_embeddings(tmp_path, "title")


def test_tar_images(folder):
    d = load_category(folder)
    tar = TarImages(folder / "images.tar")
    tar.check(d.asins)
    im = tar.image(d.asins[0])  # class 0 is red
    assert im.size == (64, 64) and im.mode == "RGB"
    r, g, b = (np.asarray(im).reshape(-1, 3).mean(0)).tolist()
    assert r > 150 and g < 100 and b < 100
    with pytest.raises(UserError, match="no image"):
        tar.check(["NOPE"])


def test_sampler_covers_each_node_once_in_connected_batches(folder):
    d = load_category(folder)
    train = d.nodes("train")
    adj = d.adjacency()
    s = SubgraphBatchSampler(adj, train, batch_size=8, seed=3)
    batches = list(s)
    assert len(batches) == len(s) == 3
    flat = [n for b in batches for n in b]
    assert sorted(flat) == sorted(train.tolist())  # every train node exactly once
    assert all(len(b) == 8 for b in batches)
    # neighbourhood batches carry edges: far more than 8 random nodes out of 40 would
    random_edges = []
    rng = np.random.default_rng(0)
    for _ in range(50):
        r = rng.choice(train, 8, replace=False)
        random_edges.append(int(batch_adjacency(adj, r).sum()) // 2)
    batch_edges = [int(batch_adjacency(adj, b).sum()) // 2 for b in batches]
    assert min(batch_edges) > 0 and np.mean(batch_edges) > np.mean(random_edges)
    # the order depends on (seed, epoch) only
    assert list(SubgraphBatchSampler(adj, train, 8, seed=3)) == batches
    s.set_epoch(1)
    assert list(s) != batches
    # a last batch of one node is dropped (no contrastive pair)
    assert [len(b) for b in SubgraphBatchSampler(adj, train[:17], 8)] == [8, 8]


def test_batch_relations(folder):
    d = load_category(folder)
    nodes = list(range(10))
    rel = batch_relations(d.relation_matrix(), nodes)
    adj = batch_adjacency(d.adjacency(), nodes)
    assert torch.equal(rel > 0, adj)  # every fixture edge has a relation
    for e in d.edges_within(np.array(nodes)):
        assert rel[d.src[e], d.dst[e]] == d.relation_id[e] + 1


@pytest.mark.parametrize("hops", [0, 1, 2, 3])
def test_positive_mask_matches_networkx(hops):
    rng = np.random.default_rng(hops)
    n = 14
    # two components plus an isolated node, so that unreachable pairs exist
    edges = [(int(u), int(v)) for u, v in rng.integers(0, 8, (10, 2)) if u != v]
    edges += [(8, 9), (9, 10), (10, 11), (11, 12)]
    src, dst = np.array(edges).T
    adj_b = batch_adjacency(adjacency(n, src, dst), list(range(n)))
    got = positive_mask(adj_b, hops)
    g = nx.Graph()
    g.add_nodes_from(range(n))
    g.add_edges_from(edges)
    dist = dict(nx.all_pairs_shortest_path_length(g))
    want = torch.zeros(n, n, dtype=torch.bool)
    for i in range(n):
        for j, dd in dist[i].items():
            want[i, j] = i != j and dd <= hops
    assert torch.equal(got, want)
    neg = negative_mask(got)
    assert torch.equal(neg, ~want & ~torch.eye(n, dtype=torch.bool))
    assert not (got & neg).any() and not got.diagonal().any()


def test_positive_mask_is_on_the_batch_subgraph(folder):
    """dist is measured inside the batch subgraph G_b, not the full graph."""
    # path 0-1-2: in a batch without node 1, nodes 0 and 2 are not within 2 hops
    a = adjacency(3, np.array([0, 1]), np.array([1, 2]))
    assert positive_mask(batch_adjacency(a, [0, 1, 2]), 2)[0, 2]
    assert not positive_mask(batch_adjacency(a, [0, 2]), 2)[0, 1]
