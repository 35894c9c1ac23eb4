"""``acmmg export sqid``: the SQID files of a published folder (schemas, row i = node i,
image URLs from the folder or the work dir, query features from the folder's own model)."""

from __future__ import annotations

import csv
import json

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipeline.cli import main
from pipeline.clip import encode_texts
from pipeline.errors import UserError
from pipeline.export.sqid import export_sqid
from pipeline.published import FolderModelParams, model_spec
from pipeline.sources.esci import EsciSelection
from tests.sqid_fixtures import make_examples, make_folder, selected_judgements, tiny_model

EXAMPLES = "shopping_queries_dataset_examples.parquet"


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("pub") / "fixture"
    return root, make_folder(root)


def test_product_features_row_i_is_node_i(folder, tmp_path):
    root, made = folder
    summary = export_sqid(root, tmp_path / "out")
    table = pq.read_table(tmp_path / "out" / "product_features.parquet")
    d = made["title"].shape[1]
    assert table.schema.names == ["product_id", "clip_image_features", "clip_text_features"]
    for name in ("clip_image_features", "clip_text_features"):
        assert table.schema.field(name).type == pa.list_(pa.float32(), d)  # fixed size
    assert table["product_id"].to_pylist() == made["asins"]
    image = np.asarray(table["clip_image_features"].to_pylist(), dtype=np.float32)
    text = np.asarray(table["clip_text_features"].to_pylist(), dtype=np.float32)
    np.testing.assert_array_equal(image, made["image"])
    np.testing.assert_array_equal(text, made["title"])  # SQID's text features: the title
    assert summary["text_features"] == "title" and summary["nodes"] == len(made["asins"])
    assert not (tmp_path / "out" / "query_features.parquet").exists()


def test_image_urls_from_the_node_attributes(folder, tmp_path):
    root, made = folder
    export_sqid(root, tmp_path / "out")
    with open(tmp_path / "out" / "product_image_urls.csv", newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["product_id", "image_url"]
    want = [[a, f"https://m.media-amazon.com/images/I/{i}.jpg"]
            for i, a in enumerate(made["asins"]) if i % 5 != 4]  # fmt: skip
    assert rows[1:] == want  # node order; nodes without a URL left out


def test_image_urls_from_the_work_dir(tmp_path):
    root = tmp_path / "pub"
    made = make_folder(root, n=10, image_urls=False)
    with pytest.raises(UserError, match="no image URLs.*--work"):
        export_sqid(root, tmp_path / "out")
    work = tmp_path / "work"
    work.mkdir()
    urls = [f"http://img/{a}.jpg" for a in made["asins"]]
    pl.DataFrame({"asin": made["asins"][::-1], "url": urls[::-1], "status": "ok"}).write_parquet(
        work / "images.parquet"
    )
    export_sqid(root, tmp_path / "out", model=FolderModelParams(work=work))
    got = pl.read_csv(tmp_path / "out" / "product_image_urls.csv")
    assert got["product_id"].to_list() == made["asins"] and got["image_url"].to_list() == urls


def test_text_only_folder(tmp_path):
    root = tmp_path / "pub"
    made = make_folder(root, n=8, image_urls=False, images=False)
    summary = export_sqid(root, tmp_path / "out")
    table = pq.read_table(tmp_path / "out" / "product_features.parquet")
    assert table.schema.names == ["product_id", "clip_text_features"]
    assert summary["image_urls"] is None
    assert not (tmp_path / "out" / "product_image_urls.csv").exists()
    assert table.num_rows == len(made["asins"])


def test_query_features_use_the_folders_model(folder, tmp_path):
    root, made = folder
    examples = make_examples(tmp_path / EXAMPLES, made["asins"])
    summary = export_sqid(root, tmp_path / "out", queries=tmp_path / EXAMPLES)
    want = selected_judgements(examples, made["asins"])
    qs = want.select("query_id", "query").unique("query_id").sort("query_id")
    got = pl.read_parquet(tmp_path / "out" / "query_features.parquet")
    assert got.columns == ["query_id", "query", "clip_text_features"]
    assert got["query_id"].to_list() == qs["query_id"].to_list()
    assert got["query"].to_list() == qs["query"].to_list()
    emb = np.asarray(got["clip_text_features"].to_list(), dtype=np.float32)
    ref = encode_texts(tiny_model(), qs["query"].to_list())
    np.testing.assert_allclose(emb, ref, atol=1e-6)
    esci = summary["esci"]
    assert esci["judgements_in_folder"] == want.height
    assert esci["rejected_by_reason"] == {"bad_label": 1, "duplicate_judgement": 1}
    # From the manifest alone: the embed stage's seed (0), not the build's split seed (7).
    assert summary["model"]["source"] == "manifest params" and summary["model"]["seed"] == 0
    assert summary["model"]["verify_min_cosine"] >= 0.99
    # Another locale: none of the folder's judged queries is Spanish except one.
    es = export_sqid(root, tmp_path / "es", queries=tmp_path / EXAMPLES,
                     selection=EsciSelection(esci_locale="es"))  # fmt: skip
    assert es["queries"] == 1


def test_a_model_that_does_not_reproduce_the_folder_is_refused(tmp_path):
    root = tmp_path / "pub"
    clip_meta = {"model": "acmmg-tiny", "pretrained": None, "random_weights_seed": 1}
    made = make_folder(root, n=12, manifest_extra={"clip": clip_meta})
    assert model_spec(root)["seed"] == 1 and model_spec(root)["source"] == "manifest clip"
    make_examples(tmp_path / EXAMPLES, made["asins"])
    with pytest.raises(UserError, match="does not reproduce"):
        export_sqid(root, tmp_path / "out", queries=tmp_path / EXAMPLES)


def test_export_is_deterministic_and_the_cli_runs(folder, tmp_path, capsys):
    root, made = folder
    make_examples(tmp_path / EXAMPLES, made["asins"])
    args = ["export", "sqid", "--from", str(root), "--queries", str(tmp_path / EXAMPLES)]
    assert main([*args, "--out", str(tmp_path / "a")]) == 0
    assert main([*args, "--out", str(tmp_path / "b"), "--device", "cpu"]) == 0
    for name in ("product_features.parquet", "query_features.parquet", "product_image_urls.csv"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    summary = json.loads((tmp_path / "a" / "export.json").read_text())
    assert summary["files"] == [
        "product_image_urls.csv",
        "product_features.parquet",
        "query_features.parquet",
    ]
    capsys.readouterr()
    assert main(["export", "sqid", "--from", str(tmp_path), "--out", str(tmp_path / "c")]) == 2
    assert "not a published category folder" in capsys.readouterr().err
    bad = tmp_path / "bad.parquet"
    pl.DataFrame({"query": ["x"]}).write_parquet(bad)
    assert main([*args[:4], "--out", str(tmp_path / "c"), "--queries", str(bad)]) == 2
    assert "not an ESCI file" in capsys.readouterr().err


def test_esci_products_coverage(folder, tmp_path):
    root, made = folder
    products = tmp_path / "shopping_queries_dataset_products.parquet"
    pl.DataFrame(
        {
            "product_id": [*made["asins"][:5], "B0NOTHERE1", made["asins"][6]],
            "product_title": "t",
            "product_locale": ["us"] * 6 + ["jp"],
        }
    ).write_parquet(products)
    summary = export_sqid(root, tmp_path / "out", products=products)
    assert summary["esci_products"] == {"locale": "us", "esci_products": 6, "in_folder": 5}
