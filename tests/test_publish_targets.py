"""``publish_folder`` / ``acmmg publish``: local directories and a real S3 server (moto)."""

from __future__ import annotations

import json
import threading
import uuid
from pathlib import Path

import pytest

from pipeline.cli import main as cli_main
from pipeline.download import download_category
from pipeline.errors import UserError
from pipeline.publish.targets import (
    LATEST,
    PublishError,
    check_relpath,
    derive_version,
    hf_repo,
    publish_folder,
)
from tests.publish_fixtures import build_category_folder, write_manifest

SLUG = "demo"


@pytest.fixture
def folder(tmp_path):
    f = tmp_path / "work" / "publish" / SLUG
    built = build_category_folder(f, n=30, seed=11)
    return f, built["manifest"]


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    return {
        p.relative_to(root).as_posix(): (p.stat().st_ino, p.stat().st_mtime_ns)
        for p in root.rglob("*")
        if p.is_file()
    }


def test_local_publish_layout_and_idempotence(folder, tmp_path):
    src, manifest = folder
    target = tmp_path / "target"
    version = publish_folder(src, SLUG, str(target))
    assert version == manifest["version"] == derive_version(manifest["files"])
    vdir = target / SLUG / "versions" / version
    assert (target / SLUG / LATEST).read_text() == f"{version}\n"
    for rel in [*manifest["files"], "manifest.json"]:
        assert (vdir / rel).read_bytes() == (src / rel).read_bytes()
    assert not [p for p in target.rglob("*") if p.name.endswith(".tmp")]

    before = snapshot(target)
    assert publish_folder(src, SLUG, str(target)) == version  # again: a no-op
    assert snapshot(target) == before


def test_same_version_with_other_content_is_refused(folder, tmp_path):
    src, manifest = folder
    target = tmp_path / "target"
    publish_folder(src, SLUG, str(target))
    # A version names its content: a manifest claiming the old version for new files is refused.
    (src / "node_categories.json").write_text('{"0": "changed"}\n')
    write_manifest(src, {"category": SLUG}, version=manifest["version"])
    with pytest.raises(UserError, match="does not match its version"):
        publish_folder(src, SLUG, str(target))
    # A target whose copy of the version differs (tampered) is not overwritten either.
    fresh = write_manifest(src, {"category": SLUG})
    v2 = publish_folder(src, SLUG, str(target))
    remote = target / SLUG / "versions" / v2 / "manifest.json"
    remote.write_text(json.dumps(fresh) + "\n")  # same content, other bytes
    with pytest.raises(PublishError, match="immutable"):
        publish_folder(src, SLUG, str(target))


def test_folder_that_disagrees_with_its_manifest_is_not_published(folder, tmp_path):
    src, _ = folder
    (src / "edges.parquet").write_bytes(b"not what the manifest says")
    target = tmp_path / "target"
    with pytest.raises(PublishError, match="edges.parquet"):
        publish_folder(src, SLUG, str(target))
    assert not target.exists() or not any(target.rglob("*"))
    with pytest.raises(PublishError, match="has no manifest.json"):
        publish_folder(src.parent / "missing", SLUG, str(target))


def test_interrupted_publish_is_invisible_then_resumed(folder, tmp_path):
    src, manifest = folder
    target = tmp_path / "target"
    v1 = publish_folder(src, SLUG, str(target))
    # Version 2, whose upload fails part-way: a directory squats on one destination.
    (src / "README.md").write_text("# v2\n")
    v2 = write_manifest(src, {"category": SLUG})["version"]
    blocker = target / SLUG / "versions" / v2 / "splits.parquet"
    blocker.mkdir(parents=True)
    (blocker / "x").write_text("squat")
    with pytest.raises(PublishError, match="cannot publish demo .*: Is a directory$"):
        publish_folder(src, SLUG, str(target), workers=1)
    assert not (target / SLUG / "versions" / v2 / "manifest.json").exists()
    assert (target / SLUG / LATEST).read_text() == f"{v1}\n"  # readers still get v1
    dl = download_category(SLUG, str(target), tmp_path / "dl")
    assert json.loads((dl / "manifest.json").read_text())["version"] == v1

    done = snapshot(target / SLUG / "versions" / v2)
    (blocker / "x").unlink()
    blocker.rmdir()
    assert publish_folder(src, SLUG, str(target)) == v2
    after = snapshot(target / SLUG / "versions" / v2)
    uploaded_before = {k for k in done if not k.startswith("splits.parquet")}
    assert uploaded_before and all(after[k] == done[k] for k in uploaded_before)  # not redone
    assert (target / SLUG / LATEST).read_text() == f"{v2}\n"


def test_readers_never_see_a_half_written_version(folder, tmp_path):
    src, _ = folder
    target = tmp_path / "target"
    publish_folder(src, SLUG, str(target))
    stop = threading.Event()
    problems: list[str] = []
    seen: set[str] = set()

    def reader() -> None:
        while not stop.is_set():
            version = (target / SLUG / LATEST).read_text().strip()
            seen.add(version)
            vdir = target / SLUG / "versions" / version
            m = json.loads((vdir / "manifest.json").read_text())
            for rel, meta in m["files"].items():
                p = vdir / rel
                if not p.is_file() or p.stat().st_size != meta["size"]:
                    problems.append(f"{version}/{rel}")

    t = threading.Thread(target=reader)
    t.start()
    try:
        for i in range(4):
            (src / "README.md").write_text(f"# round {i}\n" * (i + 1) * 1000)
            write_manifest(src, {"category": SLUG})
            publish_folder(src, SLUG, str(target))
    finally:
        stop.set()
        t.join()
    assert problems == []
    assert len(seen) >= 2


def test_cli_publish_from_workdir_or_folder(folder, tmp_path, capsys):
    src, manifest = folder
    work = src.parent.parent
    target = tmp_path / "target"
    assert cli_main(["publish", "--category", SLUG, "--from", str(work), "--to", str(target)]) == 0
    assert capsys.readouterr().out.strip() == manifest["version"]
    assert cli_main(["publish", "--category", SLUG, "--from", str(src), "--to", str(target)]) == 0
    rc = cli_main(["publish", "--category", "../x", "--from", str(src), "--to", str(target)])
    assert rc == 2 and "invalid category slug" in capsys.readouterr().err
    rc = cli_main(
        ["publish", "--category", SLUG, "--from", str(src), "--to", str(target), "--version", "v9"]
    )
    assert rc == 2 and "differs from the manifest's version" in capsys.readouterr().err


def test_target_and_manifest_parsing():
    assert hf_repo("hf://datasets/me/acmmg") == ("me/acmmg", "")
    assert hf_repo("hf://datasets/me/acmmg/sub/dir") == ("me/acmmg", "sub/dir")
    assert hf_repo("hf:me/acmmg") == ("me/acmmg", "")
    assert hf_repo("s3://bucket/x") is None and hf_repo("/tmp/x") is None
    with pytest.raises(UserError):
        hf_repo("hf://models/me/x")
    for bad in ("../x", "/abs", "a/../b", "a//b", "C:/x", "a\\b", ""):
        with pytest.raises(UserError):
            check_relpath(bad)
    assert check_relpath("images/a.jpg") == "images/a.jpg"


# ----------------------------------------------------------------------------- S3 (moto)


@pytest.fixture(scope="module")
def s3_server():
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def s3_options(s3_server, monkeypatch):
    import boto3
    import s3fs

    # Only the local server is ever contacted; the credentials are moto's dummies.
    for var in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_CONFIG_FILE"):
        monkeypatch.delenv(var, raising=False)
    opts = {
        "endpoint_url": s3_server,
        "key": "testing",
        "secret": "testing",
        "client_kwargs": {"region_name": "us-east-1"},
    }
    bucket = f"acmmg-{uuid.uuid4().hex[:12]}"
    boto3.client(
        "s3",
        endpoint_url=s3_server,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        region_name="us-east-1",
    ).create_bucket(Bucket=bucket)
    return opts, bucket, s3fs.S3FileSystem(skip_instance_cache=True, **opts)


def test_s3_publish_and_download_back(folder, tmp_path, s3_options):
    src, manifest = folder
    opts, bucket, fs = s3_options
    target = f"s3://{bucket}/datasets"
    version = publish_folder(src, SLUG, target, storage_options=opts)
    assert fs.cat_file(f"{bucket}/datasets/{SLUG}/LATEST") == f"{version}\n".encode()
    keys = set(fs.find(f"{bucket}/datasets/{SLUG}/versions/{version}"))
    prefix = f"{bucket}/datasets/{SLUG}/versions/{version}/"
    assert keys == {prefix + rel for rel in [*manifest["files"], "manifest.json"]}

    # Again: nothing uploaded (object timestamps unchanged).
    stamp = {k: fs.info(k)["LastModified"] for k in keys}
    fs.invalidate_cache()
    assert publish_folder(src, SLUG, target, storage_options=opts) == version
    fs.invalidate_cache()
    assert {k: fs.info(k)["LastModified"] for k in keys} == stamp

    out = download_category(SLUG, target, tmp_path / "dl", storage_options=opts, workers=4)
    for rel in manifest["files"]:
        assert (out / rel).read_bytes() == (src / rel).read_bytes()
    assert (out / "images").is_dir()


def test_s3_via_cli_and_env_storage_options(folder, tmp_path, s3_options, monkeypatch, capsys):
    src, manifest = folder
    opts, bucket, _ = s3_options
    target = f"s3://{bucket}"
    rc = cli_main(
        ["publish", "--category", SLUG, "--from", str(src), "--to", target,
         "--storage-options", json.dumps(opts)]
    )  # fmt: skip
    assert rc == 0 and capsys.readouterr().out.strip() == manifest["version"]
    monkeypatch.setenv("ACMMG_STORAGE_OPTIONS", json.dumps(opts))
    rc = cli_main(["download", SLUG, "--from", target, "--to", str(tmp_path / "dl")])
    assert rc == 0
    assert (tmp_path / "dl" / SLUG / "dgl_graph.dgl").read_bytes() == (
        src / "dgl_graph.dgl"
    ).read_bytes()


def test_cli_publish_assembles_a_workdir_first(tmp_path, capsys):
    from pipeline.classes import ClassesParams, choose_classes
    from tests.assemble_fixtures import make_work

    work = tmp_path / "work"
    make_work(work, n=30, seed=5, relations=False)
    choose_classes(work, ClassesParams(min_classes=2, min_items_per_class=5))
    target = tmp_path / "target"
    rc = cli_main(
        ["publish", "--category", "Electronics", "--from", str(work), "--to", str(target)]
    )
    assert rc == 0
    version = capsys.readouterr().out.strip()
    manifest = json.loads((work / "publish" / "Electronics" / "manifest.json").read_text())
    assert manifest["version"] == version
    assert (target / "Electronics" / LATEST).read_text() == f"{version}\n"
    assert (target / "Electronics" / "versions" / version / "dgl_graph.dgl").is_file()
