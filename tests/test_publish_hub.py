"""Publishing to a Hugging Face dataset repo in the Hub layout, and reading it back, against a
local stand-in of the Hub's HTTP API (tests/hubserver.py) driven by the real ``HfApi``."""

from __future__ import annotations

import io
import json

import pyarrow.parquet as pq
import pytest
import yaml

import acmmg
from pipeline.cli import main as cli_main
from pipeline.download import download_category
from pipeline.publish.hub import INDEX, HubPublishError, hub_yaml
from pipeline.publish.targets import publish_folder
from tests.hubserver import HubServer
from tests.publish_fixtures import build_category_folder, write_manifest

SLUG = "demo"
REPO = "me/acmmg"
TARGET = f"hf://datasets/{REPO}"


@pytest.fixture
def hub(monkeypatch):
    with HubServer() as server:
        monkeypatch.setenv("HF_ENDPOINT", server.url)
        monkeypatch.setenv("HF_TOKEN", "hf_test")
        monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
        yield server


@pytest.fixture
def folder(tmp_path):
    f = tmp_path / "build" / SLUG
    built = build_category_folder(f, n=30, seed=21, shards=2)
    return f, built


def card_yaml(readme: bytes) -> dict:
    text = readme.decode()
    assert text.startswith("---\n")
    return yaml.safe_load(text.split("---\n")[1])


def test_first_publish_is_one_commit_at_the_root_layout_with_a_tag(hub, folder):
    src, built = folder
    manifest = built["manifest"]
    version = publish_folder(src, SLUG, TARGET)
    assert version == manifest["version"]
    tree = hub.tree(REPO, "main")
    want = {f"{SLUG}/{rel}" for rel in manifest["files"]} | {f"{SLUG}/manifest.json"}
    viewer = {f"{SLUG}/viewer/{s}.parquet" for s in ("train", "validation", "test")}
    assert set(tree) == want | viewer | {"README.md", INDEX, ".gitattributes"}
    assert not [p for p in tree if "/versions/" in p or p.endswith("LATEST")]
    for rel in manifest["files"]:
        assert tree[f"{SLUG}/{rel}"] == (src / rel).read_bytes()
    # Exactly one commit with every file added, then the version's tag on it.
    (commit,) = [c for c in hub.commits if c["message"].startswith("Publish")]
    assert sorted(p for op, p in commit["ops"]) == sorted(want | viewer | {"README.md", INDEX})
    assert all(op == "add" for op, _ in commit["ops"])
    assert hub.repos[REPO].tags == {version: commit["sha"]}

    meta = card_yaml(tree["README.md"])
    assert meta["arxiv"] == "2511.03019"
    (nodes, edges) = meta["configs"]
    assert nodes == {
        "config_name": SLUG,
        "data_files": [
            {"split": s, "path": f"{SLUG}/viewer/{s}.parquet"}
            for s in ("train", "validation", "test")
        ],
        "default": True,
    }
    assert edges == {"config_name": f"{SLUG}-edges", "data_files": f"{SLUG}/edges.parquet"}
    (info,) = meta["dataset_info"]
    cls = next(f for f in info["features"] if f["name"] == "class")
    assert cls["dtype"]["class_label"]["names"] == {
        "0": "Speakers",
        "1": "Headphones",
        "2": "Cables",
    }
    assert info["splits"] == [
        {"name": "train", "num_examples": 10},
        {"name": "validation", "num_examples": 10},
        {"name": "test", "num_examples": 10},
    ]
    assert meta["acmmg"][SLUG]["version"] == version
    for split, name in (("train", "train"), ("validation", "val"), ("test", "test")):
        table = pq.read_table(io.BytesIO(tree[f"{SLUG}/viewer/{split}.parquet"]))
        assert table["asin"].to_pylist() == [
            a for a, s in zip(built["asins"], built["split"], strict=True) if s == name
        ]
    # The Hub's own card parser reads the YAML.
    from huggingface_hub import DatasetCard

    assert DatasetCard(tree["README.md"].decode()).data.to_dict()["configs"][0]["default"] is True


def test_sources_with_hashes_in_the_yaml():
    manifest = {
        "category": "Electronics",
        "version": "0123456789abcdef",
        "counts": {"nodes": 98_000, "train": 1, "val": 1, "test": 1},
        "params": {
            "license": "cc-by-4.0",
            "sources": {
                "reviews": ["https://x/amazon-reviews-2023/Electronics.jsonl.gz"],
                "meta": ["https://x/amazon-reviews-2023/meta_Electronics.jsonl.gz"],
            },
        },
        "sources": [
            {"uri": "https://x/amazon-reviews-2023/Electronics.jsonl.gz", "sha256": "a" * 64, "size": 1},
            {"uri": "https://x/amazon-reviews-2023/meta_Electronics.jsonl.gz", "sha256": "b" * 64, "size": 2},
        ],
    }  # fmt: skip
    y = hub_yaml(manifest, ["A", "B"], base="Electronics/")
    assert y["source_datasets"] == ["McAuley-Lab/Amazon-Reviews-2023"]
    assert [(s["kind"], s["sha256"]) for s in y["acmmg"]["Electronics"]["sources"]] == [
        ("reviews", "a" * 64),
        ("meta", "b" * 64),
    ]
    assert y["size_categories"] == ["10K<n<100K"]
    local = hub_yaml(manifest, ["A", "B"], viewer=False)  # for the folder's own card
    assert local["configs"][0]["data_files"] == "node_attributes/*.parquet"


def test_republish_is_a_no_op_a_new_version_commits_only_the_changes(hub, folder, tmp_path):
    src, built = folder
    v1 = publish_folder(src, SLUG, TARGET)
    n_commits = len(hub.commits)
    assert publish_folder(src, SLUG, TARGET) == v1
    assert len(hub.commits) == n_commits  # nothing uploaded

    # v2: one node shard instead of two (the old shard file must go), a new card
    (src / "node_attributes" / "node_attributes_1.parquet").unlink()
    pq.write_table(_all_nodes(built), src / "node_attributes" / "node_attributes_0.parquet")
    (src / "README.md").write_text("# demo v2\n")
    v2 = write_manifest(src, {"category": SLUG, "counts": built["manifest"]["counts"]})["version"]
    assert publish_folder(src, SLUG, TARGET) == v2
    last = hub.commits[-1]
    deleted = [p for op, p in last["ops"] if op == "delete"]
    assert deleted == [f"{SLUG}/node_attributes/node_attributes_1.parquet"]
    added = {p for op, p in last["ops"] if op == "add"}
    assert f"{SLUG}/README.md" in added and f"{SLUG}/dgl_graph.dgl" not in added  # unchanged
    tags = hub.repos[REPO].tags
    assert set(tags) == {v1, v2} and tags[v2] == last["sha"]
    assert f"{SLUG}/node_attributes/node_attributes_1.parquet" in hub.tree(REPO, v1)

    # Readers: main is v2, a version is its tag.
    out = download_category(SLUG, TARGET, tmp_path / "dl")
    assert json.loads((out / "manifest.json").read_text())["version"] == v2
    assert not (out / "node_attributes" / "node_attributes_1.parquet").exists()
    old = acmmg.load_category(f"{TARGET}/{SLUG}", version=v1, cache_dir=tmp_path / "c")
    assert old.version == v1 and old.num_nodes == 30
    assert (old.root / "node_attributes" / "node_attributes_1.parquet").exists()
    assert not (old.root / "viewer").exists()  # Hub-only files are not downloaded


def _all_nodes(built: dict):
    import numpy as np
    import pyarrow as pa

    n = built["num_nodes"]
    return pa.table(
        {
            "asin": built["asins"],
            "title": [f"Product {i}" for i in range(n)],
            "desc": [[f"desc {i}", "more"] for i in range(n)],
            "class": built["classes"],
            "reviews": [[f"review of {i}"] * (i % 4) for i in range(n)],
            "node_id": np.arange(n, dtype=np.int64),
        }
    )


def test_a_tag_left_out_by_a_killed_publish_is_added_and_tags_are_immutable(hub, folder):
    src, _ = folder
    version = publish_folder(src, SLUG, TARGET)
    sha = hub.repos[REPO].tags.pop(version)  # killed between the commit and the tag
    n_commits = len(hub.commits)
    assert publish_folder(src, SLUG, TARGET) == version
    assert hub.repos[REPO].tags[version] == sha and len(hub.commits) == n_commits

    first = next(c["sha"] for c in hub.commits if c["parent"] is None)
    hub.repos[REPO].tags[version] = first  # the version's tag now names other content
    hub.repos[REPO].branches["main"] = first
    with pytest.raises(HubPublishError, match="immutable"):
        publish_folder(src, SLUG, TARGET)


def test_cli_download_from_the_hub_partial_and_by_version(hub, folder, tmp_path, capsys):
    src, built = folder
    version = publish_folder(src, SLUG, TARGET)
    dest = tmp_path / "dl"
    args = ["download", SLUG, "--from", TARGET, "--to", str(dest), "--no-progress"]
    assert cli_main([*args, "--include", "embeddings/*.npy", "--include", "*.json"]) == 0
    assert sorted(p.name for p in (dest / SLUG / "embeddings").iterdir()) == sorted(
        f"{k}_embeds.npy" for k in ("combined", "description", "image", "title")
    )
    assert cli_main([*args, "--version", version]) == 0
    assert json.loads((dest / SLUG / "manifest.json").read_text())["version"] == version
    capsys.readouterr()
    assert cli_main([*args, "--version", "ffffffffffffffff"]) == 2
    assert "not (completely) published" in capsys.readouterr().err


def test_two_categories_share_the_root_card_and_a_prefix_works(hub, tmp_path):
    for slug, seed in (("beauty", 1), ("electronics", 2)):
        f = tmp_path / slug
        build_category_folder(f, n=12, seed=seed)
        write_manifest(f, {"category": slug})
        publish_folder(f, slug, TARGET)
    meta = card_yaml(hub.tree(REPO)["README.md"])
    names = [(c["config_name"], c.get("default", False)) for c in meta["configs"]]
    assert names == [
        ("beauty", True),
        ("beauty-edges", False),
        ("electronics", False),
        ("electronics-edges", False),
    ]
    assert [i["config_name"] for i in meta["dataset_info"]] == ["beauty", "electronics"]

    f = tmp_path / "sub-demo"
    build_category_folder(f, n=12, seed=3)
    publish_folder(f, SLUG, f"{TARGET}/mirror")
    assert f"mirror/{SLUG}/manifest.json" in hub.tree(REPO)
    cat = acmmg.load_category(f"{TARGET}/mirror/{SLUG}", cache_dir=tmp_path / "c")
    assert cat.num_nodes == 12


def test_the_older_versions_layout_on_the_hub_is_still_read(hub, folder, tmp_path):
    src, built = folder
    from huggingface_hub import CommitOperationAdd, HfApi

    api = HfApi(endpoint=hub.url, token="hf_test")
    api.create_repo(REPO, repo_type="dataset")
    version = built["manifest"]["version"]
    vdir = f"{SLUG}/versions/{version}"
    ops = [
        CommitOperationAdd(f"{vdir}/{rel}", str(src / rel)) for rel in built["manifest"]["files"]
    ]
    ops += [CommitOperationAdd(f"{vdir}/manifest.json", str(src / "manifest.json")),
            CommitOperationAdd(f"{SLUG}/LATEST", f"{version}\n".encode())]  # fmt: skip
    api.create_commit(REPO, operations=ops, repo_type="dataset", commit_message="old layout")
    out = download_category(SLUG, TARGET, tmp_path / "dl")
    assert (out / "edges.parquet").read_bytes() == (src / "edges.parquet").read_bytes()
    out = download_category(SLUG, TARGET, tmp_path / "dl2", version=version)
    assert json.loads((out / "manifest.json").read_text())["version"] == version


def test_a_refused_commit_is_one_line_and_publishes_nothing(hub, folder, capsys):
    src, _ = folder
    hub.fail_commits = [412]  # as when another publish moved main meanwhile
    rc = cli_main(["publish", "--category", SLUG, "--from", str(src), "--to", TARGET])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "cannot publish demo to hf://datasets/me/acmmg" in err and "\n" not in err
    assert hub.repos[REPO].tags == {} and set(hub.tree(REPO)) == {".gitattributes"}
    assert publish_folder(src, SLUG, TARGET)  # and the next attempt goes through
