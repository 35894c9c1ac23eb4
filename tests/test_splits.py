"""Seeded train/val/test node splits."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.splits import make_splits, split_labels, split_sizes


@pytest.mark.parametrize("n", [0, 1, 2, 7, 10, 59, 1000])
def test_masks_partition_the_nodes_with_the_ratio_sizes(n: int) -> None:
    train, val, test = make_splits(n, seed=0)
    assert train.dtype == val.dtype == test.dtype == np.bool_
    assert len(train) == len(val) == len(test) == n
    # Exactly one split per node.
    assert np.all(train.astype(int) + val.astype(int) + test.astype(int) == 1)
    assert (int(train.sum()), int(val.sum()), int(test.sum())) == split_sizes(n)


def test_split_sizes_follow_60_10_30() -> None:
    assert split_sizes(1000) == (600, 100, 300)
    assert split_sizes(60) == (36, 6, 18)
    assert split_sizes(10, (1, 1, 0)) == (5, 5, 0)
    with pytest.raises(ValueError):
        split_sizes(10, (0.5, 0.5))
    with pytest.raises(ValueError):
        split_sizes(10, (0, 0, 0))


def test_deterministic_and_seed_dependent() -> None:
    asins = [f"B{i:09d}" for i in range(500)]
    a = make_splits(asins, seed=3)
    b = make_splits(list(asins), seed=3)
    c = make_splits(asins, seed=4)
    for x, y in zip(a, b, strict=True):
        assert np.array_equal(x, y)
    assert not np.array_equal(a[0], c[0])


def test_split_depends_on_keys_not_positions() -> None:
    asins = [f"B{i:09d}" for i in range(300)]
    train, val, test = make_splits(asins, seed=0)
    rev_train, rev_val, rev_test = make_splits(asins[::-1], seed=0)
    assert np.array_equal(train, rev_train[::-1])
    assert np.array_equal(test, rev_test[::-1])
    # Roughly balanced over the node order (not the first 60% of nodes).
    assert 0.45 < train[:150].mean() < 0.75


def test_int_input_equals_string_ids_and_duplicates_fail() -> None:
    a = make_splits(50, seed=1)
    b = make_splits([str(i) for i in range(50)], seed=1)
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    with pytest.raises(ValueError):
        make_splits(["a", "a", "b"])


def test_split_labels() -> None:
    train, val, test = make_splits(20, seed=0)
    labels = split_labels(train, val, test)
    assert labels.count("train") == train.sum()
    assert all(lab == "val" for lab, v in zip(labels, val, strict=True) if v)
