"""Hostile and broken sources against ``acmmg download`` (issue 11, items 3, 5, 10, authenticity,
transport errors): each case reproduces what a probe found and checks the promise kept."""

from __future__ import annotations

import io
import json
import lzma
import os
import shutil
import subprocess
import sys
import tarfile
import threading
from pathlib import Path

import pytest

from acmmg.download import check_tar_members
from acmmg.errors import DownloadError, ManifestError, UnsafeArchiveError
from pipeline.cli import main as cli_main
from pipeline.download import download_category
from pipeline.publish.targets import publish_folder
from tests.httpserver import FaultyServer
from tests.image_server import closed_port
from tests.publish_fixtures import build_category_folder, write_manifest

SLUG = "demo"
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def published(tmp_path):
    folder = tmp_path / "build" / SLUG
    built = build_category_folder(folder, n=24, seed=3)
    target = tmp_path / "target"
    version = publish_folder(folder, SLUG, str(target))
    vdir = target / SLUG / "versions" / version
    with FaultyServer(target) as server:
        yield {"folder": folder, "target": target, "vdir": vdir, "server": server, **built}


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert err and "\n" not in err and "Traceback" not in err, err
    return err


# ----------------------------------------------------------------------------- 3: bounded bytes


def test_a_mirror_sending_far_more_than_declared_is_cut_at_the_declared_size(published, tmp_path):
    served = published["vdir"] / "node_categories.json"
    declared = served.stat().st_size
    served.write_bytes(b"x" * (32 << 20))  # 32 MB for a small JSON file
    with pytest.raises(DownloadError) as e:
        download_category(SLUG, published["server"].url, tmp_path / "dl")
    # Refused on the sha256 of exactly the declared bytes: nothing past them was written.
    assert "node_categories.json: sha256 mismatch" in str(e.value)
    assert f"size {32 << 20}" not in str(e.value) and declared < 1000
    out = tmp_path / "dl" / SLUG
    assert not [p for p in out.rglob("*.part")] and not (out / "manifest.json").exists()


def _republish_tar(published: dict, data: bytes) -> None:
    folder = published["folder"]
    (folder / "images.tar").write_bytes(data)
    write_manifest(folder, {"category": SLUG})
    publish_folder(folder, SLUG, str(published["target"]))


def test_compressed_images_tar_is_refused_not_expanded(published, tmp_path):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo("images/bomb.jpg")
        info.size = 64 << 20
        tar.addfile(info, io.BytesIO(bytes(info.size)))
    bomb = lzma.compress(buf.getvalue())
    assert len(bomb) < 100_000  # a small file that mode "r" would expand to 64 MB
    _republish_tar(published, bomb)
    with pytest.raises(UnsafeArchiveError, match="xz-compressed"):
        download_category(SLUG, published["server"].url, tmp_path / "dl")
    out = tmp_path / "dl" / SLUG
    assert not (out / "images").exists() and not (out / "images.tar").exists()
    assert not (out / "manifest.json").exists()


def test_tar_members_claiming_more_than_the_archive_are_refused(tmp_path):
    path = tmp_path / "images.tar"
    with tarfile.open(path, "w") as tar:
        for i in range(3):
            info = tarfile.TarInfo(f"images/{i}.jpg")
            info.size = 4096
            tar.addfile(info, io.BytesIO(bytes(4096)))
    with tarfile.open(path, "r:") as tar:
        assert len(check_tar_members(tar, "images.tar", path.stat().st_size)) == 3
        with pytest.raises(UnsafeArchiveError, match="add up to 12288 bytes"):
            check_tar_members(tar, "images.tar", 10_000)


# ----------------------------------------------------------------------------- 5: concurrency


def test_concurrent_downloads_into_one_folder_all_succeed_and_a_manifest_means_complete(
    published, tmp_path
):
    dest = tmp_path / "dl"
    code = (
        "import sys; from acmmg.download import download_category as d; "
        "d('demo', sys.argv[1], sys.argv[2], workers=4)"
    )
    files = published["manifest"]["files"]
    broken: list[str] = []
    stop = threading.Event()
    pause = threading.Lock()  # held while the test itself empties the folder

    def watch() -> None:  # "a folder with manifest.json is complete", checked all along
        out = dest / SLUG
        while not stop.is_set():
            with pause:
                if (out / "manifest.json").exists():
                    missing = [r for r in files if not (out / r).is_file()]
                    if missing and (out / "manifest.json").exists():
                        broken.append(missing[0])

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        for round_ in range(6):
            if round_ % 2:
                with pause:
                    shutil.rmtree(dest, ignore_errors=True)  # from empty, and over a full one
            procs = [
                subprocess.Popen(
                    [sys.executable, "-c", code, published["server"].url, str(dest)],
                    env={**os.environ, "PYTHONPATH": str(ROOT)},
                    stderr=subprocess.PIPE,
                    text=True,
                )
                for _ in range(2)
            ]
            for p in procs:
                _, err = p.communicate(timeout=120)
                assert p.returncode == 0, err[-2000:]
    finally:
        stop.set()
        watcher.join()
    assert broken == []
    out = download_category(SLUG, published["server"].url, dest)
    for rel in files:
        assert (out / rel).read_bytes() == (published["folder"] / rel).read_bytes()


# ----------------------------------------------------------------------------- 10: smaller


def test_a_path_that_is_a_file_in_one_version_and_a_directory_in_the_next(tmp_path):
    folder = tmp_path / "build" / SLUG
    build_category_folder(folder, n=12, seed=8)
    target, dest = tmp_path / "target", tmp_path / "dl"
    (folder / "extra").write_text("a file\n")
    write_manifest(folder, {"category": SLUG})
    v1 = publish_folder(folder, SLUG, str(target))
    (folder / "extra").unlink()
    (folder / "extra").mkdir()
    (folder / "extra" / "inner.txt").write_text("now a directory\n")
    write_manifest(folder, {"category": SLUG})
    v2 = publish_folder(folder, SLUG, str(target))
    out = download_category(SLUG, str(target), dest, version=v1)
    assert (out / "extra").read_text() == "a file\n"
    download_category(SLUG, str(target), dest, version=v2)
    assert (out / "extra" / "inner.txt").read_text() == "now a directory\n"
    download_category(SLUG, str(target), dest, version=v1)  # and back
    assert (out / "extra").read_text() == "a file\n"


def _tamper_manifest(vdir: Path, edit) -> None:
    m = json.loads((vdir / "manifest.json").read_text())
    edit(m)
    (vdir / "manifest.json").write_text(json.dumps(m))


@pytest.mark.parametrize(
    "edit, why",
    [
        (lambda m: m["files"]["edges.parquet"].update(size=True), "needs an int size"),
        (lambda m: m["files"]["edges.parquet"].update(size=1.5), "needs an int size"),
        (lambda m: m["files"]["edges.parquet"].update(sha256="AB" * 32), "needs an int size"),
        (lambda m: m["files"].update({"edges.parquet/x": m["files"]["splits.parquet"]}),
         "both as a file and as a directory"),
        (lambda m: m.update(counts=[1]), "'counts' must be an object"),
        (lambda m: m["files"].update({"../x": m["files"]["splits.parquet"]}), "unsafe path"),
    ],
)  # fmt: skip
def test_manifest_schema_is_strict_and_errors_are_one_line(published, tmp_path, capsys, edit, why):
    _tamper_manifest(published["vdir"], edit)
    rc = cli_main(["download", SLUG, "--from", published["server"].url, "--to", str(tmp_path)])
    assert rc == 2
    assert why in one_line_error(capsys)


def test_deeply_nested_manifest_is_one_line(published, tmp_path, capsys):
    (published["vdir"] / "manifest.json").write_text("[" * 100_000 + "]" * 100_000)
    rc = cli_main(["download", SLUG, "--from", str(published["target"]), "--to", str(tmp_path)])
    assert rc == 2
    assert "nested too deeply" in one_line_error(capsys)


# ----------------------------------------------------------------------------- authenticity


def test_a_manifest_that_does_not_match_its_version_is_refused(published, tmp_path, capsys):
    vdir, version = published["vdir"], published["manifest"]["version"]
    # A mirror swaps a file and fixes up its hash in the manifest, keeping the version name.
    (vdir / "node_categories.json").write_text('{"0": "forged"}\n')
    forged = __import__("hashlib").sha256((vdir / "node_categories.json").read_bytes())

    def edit(m: dict) -> None:
        m["files"]["node_categories.json"] = {
            "size": (vdir / "node_categories.json").stat().st_size,
            "sha256": forged.hexdigest(),
        }

    _tamper_manifest(vdir, edit)
    with pytest.raises(ManifestError, match="does not match its version"):
        download_category(SLUG, published["server"].url, tmp_path / "a")
    # The same without a version field, asked for by name (--version): still refused.
    _tamper_manifest(vdir, lambda m: m.pop("version"))
    rc = cli_main(
        ["download", SLUG, "--from", published["server"].url, "--to", str(tmp_path / "b"),
         "--version", version]
    )  # fmt: skip
    assert rc == 2 and f"asked for version {version}" in one_line_error(capsys)
    assert not (tmp_path / "a" / SLUG / "node_categories.json").exists()


# ----------------------------------------------------------------------------- transport


def test_transport_errors_are_one_line_naming_the_url(published, tmp_path, capsys):
    server = published["server"]
    server.faults[f"/{SLUG}/LATEST"] = ["500"] * 10
    for source in (
        server.url,  # HTTP 500 every time
        f"http://127.0.0.1:{closed_port()}",  # connection refused
        "http://acmmg-test.invalid",  # DNS
    ):
        rc = cli_main(["download", SLUG, "--from", source, "--to", str(tmp_path / "dl")])
        assert rc == 2
        err = one_line_error(capsys)
        assert f"{source}/{SLUG}/LATEST" in err, err
    # A file whose every GET fails: one line naming it, the rest kept for the rerun.
    server.faults.clear()
    path = f"/{SLUG}/versions/{published['manifest']['version']}/edges.parquet"
    server.faults[path] = ["500"] * 10
    rc = cli_main(["download", SLUG, "--from", server.url, "--to", str(tmp_path / "dl")])
    assert rc == 2
    err = one_line_error(capsys)
    assert "edges.parquet" in err and server.url + path in err and "HTTP 500" in err
    assert (tmp_path / "dl" / SLUG / "splits.parquet").is_file()
