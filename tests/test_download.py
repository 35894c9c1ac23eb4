"""``download_category`` against a real HTTP server on 127.0.0.1 (and a local path source)."""

from __future__ import annotations

import io
import tarfile
from hashlib import sha256
from pathlib import Path

import pytest

from pipeline.cli import main as cli_main
from pipeline.download import (
    PARTIAL_DIR,
    DownloadError,
    UnsafeArchiveError,
    download_category,
    extract_images,
    partial_path,
)
from pipeline.publish.targets import publish_folder
from tests.httpserver import FaultyServer
from tests.publish_fixtures import (
    build_category_folder,
    jpeg_bytes,
    write_images_tar,
    write_manifest,
)

SLUG = "demo"


@pytest.fixture
def published(tmp_path):
    """A folder built, published to a local target, served over HTTP."""
    folder = tmp_path / "build" / SLUG
    built = build_category_folder(folder, n=40, seed=1)
    target = tmp_path / "target"
    version = publish_folder(folder, SLUG, str(target))
    server = FaultyServer(target).start()
    yield {"folder": folder, "target": target, "version": version, "server": server, **built}
    server.close()


def assert_same_files(src: Path, out: Path) -> None:
    for p in src.rglob("*"):
        if p.is_file():
            assert (out / p.relative_to(src)).read_bytes() == p.read_bytes(), p


def test_http_download_verifies_extracts_and_second_run_fetches_nothing(published, tmp_path):
    server = published["server"]
    dest = tmp_path / "dl"
    out = download_category(SLUG, server.url, dest, workers=4)
    assert out == dest / SLUG
    assert_same_files(published["folder"], out)
    assert sorted(p.name for p in (out / "images").iterdir()) == sorted(
        f"{a}.jpg" for a in published["asins"]
    )
    assert (out / "images.tar").exists()  # kept: the card's snippet may extract it itself
    assert not (out / PARTIAL_DIR).exists()
    n_files = len(published["manifest"]["files"])
    assert len(server.data_requests()) == n_files

    server.requests.clear()
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()}
    download_category(SLUG, server.url, dest)
    assert server.data_requests() == []  # nothing downloaded
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()} == before


def test_corrupted_file_is_refused_and_nothing_corrupt_is_kept(published, tmp_path):
    server, version = published["server"], published["version"]
    served = published["target"] / SLUG / "versions" / version / "edges.parquet"
    data = bytearray(served.read_bytes())
    data[len(data) // 2] ^= 0xFF  # same size, different bytes
    served.write_bytes(bytes(data))
    want = published["manifest"]["files"]["edges.parquet"]["sha256"]
    dest = tmp_path / "dl"
    with pytest.raises(DownloadError) as e:
        download_category(SLUG, server.url, dest)
    msg = str(e.value)
    assert "edges.parquet" in msg and "sha256 mismatch" in msg and want in msg
    assert sha256(bytes(data)).hexdigest() in msg
    out = dest / SLUG
    assert not (out / "edges.parquet").exists()
    assert not (out / PARTIAL_DIR).exists() or not any((out / PARTIAL_DIR).iterdir())
    assert not (out / "manifest.json").exists()  # the folder is not marked complete
    # The good files are kept and verified: a rerun after the server is fixed fetches one file.
    served.write_bytes((published["folder"] / "edges.parquet").read_bytes())
    server.requests.clear()
    download_category(SLUG, server.url, dest)
    assert [r[1].rsplit("/", 1)[1] for r in server.data_requests()] == ["edges.parquet"]
    assert_same_files(published["folder"], out)


def test_longer_file_is_cut_at_the_manifest_size_and_shorter_one_refused(published, tmp_path):
    served = published["target"] / SLUG / "versions" / published["version"] / "splits.parquet"
    good = served.read_bytes()
    served.write_bytes(good + b"extra" * 1000)
    out = download_category(SLUG, published["server"].url, tmp_path / "dl")
    assert (out / "splits.parquet").read_bytes() == good  # the declared bytes, no more

    served.write_bytes(good[:-10])
    with pytest.raises(DownloadError, match=r"splits.parquet: .*fewer bytes"):
        download_category(SLUG, published["server"].url, tmp_path / "dl2")
    assert not (tmp_path / "dl2" / SLUG / "splits.parquet").exists()
    assert not (tmp_path / "dl2" / SLUG / "manifest.json").exists()


def test_dropped_connection_is_resumed_with_range(published, tmp_path):
    server, version = published["server"], published["version"]
    path = f"/{SLUG}/versions/{version}/images.tar"
    size = published["manifest"]["files"]["images.tar"]["size"]
    server.faults[path] = [f"drop:{size // 3}"]
    out = download_category(SLUG, server.url, tmp_path / "dl", workers=2)
    tar_requests = [r for r in server.requests if r[1] == path]
    assert tar_requests[0] == ("GET", path, None)
    # resumed, not restarted, and asking for no byte past the manifest's size
    assert tar_requests[1] == ("GET", path, f"bytes={size // 3}-{size - 1}")
    assert len(tar_requests) == 2
    assert_same_files(published["folder"], out)


def test_partial_from_an_interrupted_run_is_resumed(published, tmp_path):
    server, version = published["server"], published["version"]
    meta = published["manifest"]["files"]["images.tar"]
    full = (published["folder"] / "images.tar").read_bytes()
    part = partial_path(tmp_path / "dl" / SLUG, "images.tar", meta["sha256"])
    part.parent.mkdir(parents=True)
    part.write_bytes(full[:1000])
    out = download_category(SLUG, server.url, tmp_path / "dl")
    path = f"/{SLUG}/versions/{version}/images.tar"
    want = [("GET", path, f"bytes=1000-{meta['size'] - 1}")]
    assert [r for r in server.requests if r[1] == path] == want
    assert (out / "images.tar").read_bytes() == full


def test_server_ignoring_range_restarts_cleanly(published, tmp_path):
    server = published["server"]
    server.ignore_range = True
    meta = published["manifest"]["files"]["images.tar"]
    full = (published["folder"] / "images.tar").read_bytes()
    part = partial_path(tmp_path / "dl" / SLUG, "images.tar", meta["sha256"])
    part.parent.mkdir(parents=True)
    part.write_bytes(full[:1000])
    out = download_category(SLUG, server.url, tmp_path / "dl")
    assert (out / "images.tar").read_bytes() == full


def _publish_with_tar(tmp_path: Path, members: list[tarfile.TarInfo | tuple[str, bytes]]) -> Path:
    folder = tmp_path / "build" / SLUG
    build_category_folder(folder, n=12, seed=2)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for m in members:
            if isinstance(m, tarfile.TarInfo):
                tar.addfile(m)
            else:
                info = tarfile.TarInfo(m[0])
                info.size = len(m[1])
                tar.addfile(info, io.BytesIO(m[1]))
    (folder / "images.tar").write_bytes(buf.getvalue())
    write_manifest(folder, {"category": SLUG})
    target = tmp_path / "target"
    publish_folder(folder, SLUG, str(target))
    return target


def _link(name: str, target: str, kind: bytes) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = target
    return info


@pytest.mark.parametrize(
    "bad, why",
    [
        (("../evil", b"x"), "'..' in path"),
        (("images/../../evil", b"x"), "'..' in path"),
        ((None, b"x"), "absolute path"),  # filled in with an absolute path under tmp_path
        (_link("images/link.jpg", "/etc/passwd", tarfile.SYMTYPE), "link"),
        (_link("images/hard.jpg", "../../evil", tarfile.LNKTYPE), "link"),
        (_link("images/dev", "", tarfile.CHRTYPE), "device"),
        (("manifest.json", b"{}"), "replace a published file"),
    ],
)
def test_unsafe_tar_is_refused_over_http(tmp_path, bad, why):
    if isinstance(bad, tuple) and bad[0] is None:
        bad = (str(tmp_path / "abs_evil"), b"x")
    target = _publish_with_tar(tmp_path, [("images/ok.jpg", jpeg_bytes(1)), bad])
    server = FaultyServer(target).start()
    try:
        dest = tmp_path / "deep" / "dl"
        with pytest.raises(UnsafeArchiveError, match=why):
            download_category(SLUG, server.url, dest)
    finally:
        server.close()
    out = dest / SLUG
    assert not (out / "images").exists()  # nothing extracted, not even the good member
    assert not (tmp_path / "evil").exists() and not (tmp_path / "deep" / "evil").exists()
    assert not (tmp_path / "abs_evil").exists()
    assert not (out / "images.tar").exists()  # so the card's extractall cannot run on it
    assert not (out / "manifest.json").exists()
    assert not [p for p in out.iterdir() if p.name.startswith(".extract")]


def test_extract_images_skips_when_done_and_replaces_on_new_tar(tmp_path):
    out = tmp_path / "cat"
    out.mkdir()
    write_images_tar(out / "images.tar", [("images/a.jpg", b"1"), ("images/b.jpg", b"2")])
    extract_images(out / "images.tar", out)
    assert (out / "images" / "a.jpg").read_bytes() == b"1"
    mtime = (out / "images" / "a.jpg").stat().st_mtime_ns
    extract_images(out / "images.tar", out)
    assert (out / "images" / "a.jpg").stat().st_mtime_ns == mtime  # skipped
    write_images_tar(out / "images.tar", [("images/c.jpg", b"3")])
    extract_images(out / "images.tar", out)
    assert sorted(p.name for p in (out / "images").iterdir()) == ["c.jpg"]


def test_versions_latest_explicit_and_stale_files(tmp_path):
    folder = tmp_path / "build" / SLUG
    build_category_folder(folder, n=20, seed=7, shards=2)
    target = tmp_path / "target"
    v1 = publish_folder(folder, SLUG, str(target))
    dest = tmp_path / "dl"
    download_category(SLUG, str(target), dest)  # a local path source
    assert (dest / SLUG / "node_attributes" / "node_attributes_1.parquet").exists()

    (folder / "node_attributes" / "node_attributes_1.parquet").unlink()
    (folder / "README.md").write_text("# demo v2\n")
    write_manifest(folder, {"category": SLUG})
    v2 = publish_folder(folder, SLUG, str(target))
    assert v2 != v1 and (target / SLUG / "LATEST").read_text() == f"{v2}\n"

    server = FaultyServer(target).start()
    try:
        download_category(SLUG, server.url, dest)
        out = dest / SLUG
        assert (out / "README.md").exists()
        assert not (out / "node_attributes" / "node_attributes_1.parquet").exists()  # stale
        download_category(SLUG, server.url, dest, version=v1)
        assert (out / "node_attributes" / "node_attributes_1.parquet").exists()
        assert not (out / "README.md").exists()
        with pytest.raises(DownloadError, match="not \\(completely\\) published"):
            download_category(SLUG, server.url, dest, version="nope")
        with pytest.raises(DownloadError, match="no other/LATEST"):
            download_category("other", server.url, dest)
    finally:
        server.close()


def test_cli_download(published, tmp_path, capsys):
    rc = cli_main(
        [
            "download",
            SLUG,
            "--from",
            published["server"].url,
            "--to",
            str(tmp_path / "dl"),
            "--workers",
            "3",
        ]
    )
    assert rc == 0
    assert capsys.readouterr().out.strip() == str(tmp_path / "dl" / SLUG)
    assert_same_files(published["folder"], tmp_path / "dl" / SLUG)
    rc = cli_main(
        [
            "download",
            SLUG,
            "--from",
            published["server"].url,
            "--to",
            str(tmp_path / "dl"),
            "--version",
            "../x",
        ]
    )
    assert rc == 2
    assert "invalid version" in capsys.readouterr().err


def test_identical_and_empty_files(tmp_path):
    folder = tmp_path / "build" / SLUG
    build_category_folder(folder, n=10, seed=9)
    same = (folder / "embeddings" / "title_embeds.pt").read_bytes()
    (folder / "embeddings" / "copy_embeds.pt").write_bytes(same)
    (folder / "empty.txt").write_bytes(b"")
    write_manifest(folder, {"category": SLUG})
    target = tmp_path / "target"
    publish_folder(folder, SLUG, str(target))
    server = FaultyServer(target).start()
    try:
        out = download_category(SLUG, server.url, tmp_path / "dl", workers=8)
    finally:
        server.close()
    assert (out / "embeddings" / "copy_embeds.pt").read_bytes() == same
    assert (out / "embeddings" / "title_embeds.pt").read_bytes() == same
    assert (out / "empty.txt").read_bytes() == b""
