"""``acmmg eval search``: nDCG with ESCI gains on a hand-computed case, the vectorised metrics
against a plain loop, and the report of a folder against an independent computation."""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np
import pytest

from pipeline.cli.search import add_search_args, run_search
from pipeline.clip import encode_texts
from pipeline.errors import UserError
from pipeline.search_eval import SearchParams, evaluate_search, ndcg, per_query
from pipeline.sources.esci import GAINS
from tests.sqid_fixtures import make_examples, make_folder, selected_judgements, tiny_model

EXAMPLES = "shopping_queries_dataset_examples.parquet"


def test_ndcg_hand_computed():
    # Ranked S, E, I, C. DCG = 0.1/log2(2) + 1/log2(3) + 0/log2(4) + 0.01/log2(5)
    #   = 0.1 + 0.6309298 + 0 + 0.0043068 = 0.7352366
    # ideal E, S, C, I: 1/1 + 0.1/log2(3) + 0.01/log2(4) + 0 = 1 + 0.0630930 + 0.005 = 1.0680930
    # nDCG = 0.7352366 / 1.0680930 = 0.688364
    assert ndcg([0.1, 1.0, 0.0, 0.01]) == pytest.approx(0.688364, abs=1e-6)
    assert ndcg([1.0, 0.1, 0.01, 0.0]) == pytest.approx(1.0)
    assert ndcg([0.0, 0.0]) is None  # all irrelevant: undefined, left out of the mean
    assert ndcg([0.0, 1.0]) == pytest.approx(1 / math.log2(3))


def test_vectorised_metrics_match_a_loop():
    rng = np.random.default_rng(0)
    n_groups = 40
    group = np.sort(rng.integers(0, n_groups, 600))
    gain = rng.choice(list(GAINS.values()), size=600)
    score = np.round(rng.random(600), 1)  # many ties: broken by the node id
    node = rng.permutation(600)
    nd, rec = per_query(group, gain, score, node, n_groups, k=3)
    for g in range(n_groups):
        rows = sorted(np.flatnonzero(group == g), key=lambda i: (-score[i], node[i]))
        want = ndcg(gain[rows]) if rows else None
        assert (np.isnan(nd[g]) and want is None) or nd[g] == pytest.approx(want)
        exact = [i for i in rows if gain[i] == 1.0]
        if exact:
            assert rec[g] == pytest.approx(
                len([i for i in rows[:3] if gain[i] == 1.0]) / len(exact)
            )
        else:
            assert np.isnan(rec[g])


def test_recall_hand_computed():
    # one query, ranked E, I, E, S, E: Recall@2 = 1/3, Recall@3 = 2/3
    group = np.zeros(5, dtype=np.int64)
    gain = np.array([1.0, 0.0, 1.0, 0.1, 1.0])
    score = np.array([0.9, 0.8, 0.7, 0.6, 0.5])
    node = np.arange(5)
    assert per_query(group, gain, score, node, 1, k=2)[1][0] == pytest.approx(1 / 3)
    assert per_query(group, gain, score, node, 1, k=3)[1][0] == pytest.approx(2 / 3)


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("search")
    made = make_folder(tmp / "fixture")
    examples = make_examples(tmp / EXAMPLES, made["asins"])
    return tmp, made, examples


def expected_report(made, examples, k=10, min_judged=2) -> dict:
    """The benchmark computed with plain loops from the fixture's own arrays."""
    sel = selected_judgements(examples, made["asins"])
    model = tiny_model()
    unit = lambda x: x / np.linalg.norm(x)  # noqa: E731
    out = {name: {"ndcg": [], "recall": []} for name in ("image", "title", "fused")}
    n_queries = n_judged = 0
    for _, rows in sel.sort("query_id").group_by("query_id", maintain_order=True):
        if rows.height < min_judged:
            continue
        n_queries += 1
        n_judged += rows.height
        q = unit(encode_texts(model, [rows["query"][0]])[0].astype(np.float64))
        nodes = rows["node_id"].to_list()
        gains = [GAINS[lbl] for lbl in rows["esci_label"]]
        for name in out:
            vec = {
                "image": lambda i: unit(made["image"][i].astype(np.float64)),
                "title": lambda i: unit(made["title"][i].astype(np.float64)),
                "fused": lambda i: unit(
                    unit(made["image"][i].astype(np.float64))
                    + unit(made["title"][i].astype(np.float64))
                ),
            }[name]
            scores = [float(q @ vec(i)) for i in nodes]
            order = sorted(range(len(nodes)), key=lambda j: (-scores[j], nodes[j]))
            ranked = [gains[j] for j in order]
            v = ndcg(ranked)
            if v is not None:
                out[name]["ndcg"].append(v)
            if 1.0 in gains:
                out[name]["recall"].append(ranked[:k].count(1.0) / gains.count(1.0))
    return {
        "queries": n_queries,
        "judgements": n_judged,
        "scorers": {
            name: {"ndcg": np.mean(m["ndcg"]), f"recall@{k}": np.mean(m["recall"])}
            for name, m in out.items()
        },
    }


def test_report_matches_an_independent_computation(bench):
    tmp, made, examples = bench
    report = evaluate_search(tmp / "fixture", tmp / EXAMPLES)
    want = expected_report(made, examples)
    assert report["queries"] == want["queries"] == 9  # 8 queries + the all-irrelevant one
    assert report["judgements"] == want["judgements"]
    assert report["queries_skipped_min_judged"] == 1  # "only one"
    assert report["queries_in_ndcg"] == 8  # the all-I query has no ideal DCG
    for name, m in want["scorers"].items():
        assert report["scorers"][name]["ndcg"] == pytest.approx(m["ndcg"], abs=2e-6), name
        assert report["scorers"][name]["recall@10"] == pytest.approx(m["recall@10"], abs=2e-6)
    assert 0 < report["random"]["ndcg"] < 1
    # Recall@K with a small K, and every list (min_judged 1).
    small = evaluate_search(tmp / "fixture", tmp / EXAMPLES, params=SearchParams(k=2, min_judged=1))
    want2 = expected_report(made, examples, k=2, min_judged=1)
    assert small["queries"] == want2["queries"] == 10
    assert small["scorers"]["fused"]["recall@2"] == pytest.approx(
        want2["scorers"]["fused"]["recall@2"], abs=2e-6
    )


def test_text_only_folder_has_only_the_title_scorer(tmp_path):
    made = make_folder(tmp_path / "f", images=False, image_urls=False)
    make_examples(tmp_path / EXAMPLES, made["asins"])
    report = evaluate_search(tmp_path / "f", tmp_path / EXAMPLES)
    assert list(report["scorers"]) == ["title"]


def test_cli_writes_the_report(bench, tmp_path, capsys):
    tmp, _, _ = bench
    parser = argparse.ArgumentParser()
    add_search_args(parser)
    out = tmp_path / "REPORT.json"
    args = parser.parse_args(
        ["--from", str(tmp / "fixture"), "--queries", str(tmp / EXAMPLES), "--out", str(out)]
    )
    assert run_search(args) == 0
    report = json.loads(out.read_text())
    assert set(report["scorers"]) == {"image", "title", "fused"}
    for m in report["scorers"].values():
        assert set(m) == {"ndcg", "recall@10"}
    assert report["queries"] == 9 and report["judgements"] > 0
    table = capsys.readouterr().out
    assert "fused" in table and "Recall@10" in table and "9 queries" in table


def test_flags_join_a_parser_that_has_some_already(bench, tmp_path):
    # The eval parser of pipeline/cli/train.py has --data, --out, --checkpoint and --device.
    tmp, _, _ = bench
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", type=Path)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--checkpoint", type=Path, default=None)
    parser.add_argument("--device", default=None)
    add_search_args(parser)
    out = tmp_path / "r.json"
    args = parser.parse_args(
        ["--data", str(tmp / "fixture"), "--queries", str(tmp / EXAMPLES), "--out", str(out)]
    )
    assert run_search(args) == 0 and out.exists()
    with pytest.raises(UserError, match="needs --from"):
        run_search(parser.parse_args(["--out", str(out)]))


def test_acmmg_eval_search_command(bench, tmp_path, capsys):
    from pipeline.cli import main

    tmp, _, _ = bench
    out = tmp_path / "r.json"
    rc = main(
        ["eval", "search", "--from", str(tmp / "fixture"), "--queries", str(tmp / EXAMPLES),
         "--out", str(out), "--k", "5", "--esci-split", "all"]
    )  # fmt: skip
    assert rc == 0 and "ndcg" in capsys.readouterr().out.lower()
    assert set(json.loads(out.read_text())["scorers"]["title"]) == {"ndcg", "recall@5"}


def test_no_usable_query_is_a_clear_error(bench):
    tmp, _, _ = bench
    with pytest.raises(UserError, match="no ESCI query has 50 or more"):
        evaluate_search(tmp / "fixture", tmp / EXAMPLES, params=SearchParams(min_judged=50))
