"""Resuming a killed publish (issue 11, item 6): what is already in the version folder counts
only if its sha256 is the manifest's; the debris killed publishes leave is removed."""

from __future__ import annotations

import json
import os
import threading
import time

from pipeline.download import download_category
from pipeline.publish.targets import LATEST, publish_folder
from tests.publish_fixtures import build_category_folder, write_manifest

SLUG = "demo"


def test_resume_replaces_a_same_size_different_file_and_removes_debris(tmp_path):
    folder = tmp_path / "build" / SLUG
    built = build_category_folder(folder, n=20, seed=12)
    target = tmp_path / "target"
    v1 = publish_folder(folder, SLUG, str(target))
    (folder / "README.md").write_text("# v2\n")
    v2 = write_manifest(folder, {"category": SLUG})["version"]

    # What a killed publish of v2 leaves: some files (one of them same-size garbage), a temp
    # file of the upload under way, no manifest; and an older killed publish's version folder.
    vdir = target / SLUG / "versions" / v2
    vdir.mkdir(parents=True)
    good = (folder / "edges.parquet").read_bytes()
    (vdir / "edges.parquet").write_bytes(bytes(b ^ 0x5A for b in good))  # same size
    (vdir / "splits.parquet").write_bytes((folder / "splits.parquet").read_bytes())
    (vdir / ".images.tar.0123abcd.tmp").write_bytes(b"x" * 1000)
    orphan = target / SLUG / "versions" / "0000aaaa0000aaaa"
    (orphan / "embeddings").mkdir(parents=True)
    (orphan / "embeddings" / "image_embeds.pt").write_bytes(b"half")
    (target / SLUG / f".{LATEST}.feed.tmp").write_text("junk")
    kept = (vdir / "splits.parquet").stat().st_ino

    assert publish_folder(folder, SLUG, str(target)) == v2
    assert (vdir / "edges.parquet").read_bytes() == good  # re-uploaded, not trusted by size
    assert (vdir / "splits.parquet").stat().st_ino == kept  # intact: kept, not re-uploaded
    assert not [p for p in target.rglob("*.tmp")]
    assert not orphan.exists()
    assert (target / SLUG / "versions" / v1 / "manifest.json").is_file()  # complete: kept
    assert (target / SLUG / LATEST).read_text() == f"{v2}\n"
    out = download_category(SLUG, str(target), tmp_path / "dl")
    assert json.loads((out / "manifest.json").read_text())["version"] == v2
    assert built["num_nodes"] == 20


def test_a_publish_in_progress_elsewhere_is_waited_for_not_swept(tmp_path):
    """The sweep runs under the target's publish lock, so it only ever removes what a
    killed publish left: a concurrent publish of the same category holds the lock."""
    from filelock import FileLock

    folder = tmp_path / "build" / SLUG
    build_category_folder(folder, n=12, seed=13)
    target = tmp_path / "target"
    target.mkdir()
    lock = FileLock(str(target / f".{SLUG}.publish.lock"))
    done = threading.Event()
    with lock:
        t = threading.Thread(target=lambda: (publish_folder(folder, SLUG, str(target)), done.set()))
        t.start()
        time.sleep(0.5)
        assert not done.is_set() and not (target / SLUG).exists()  # waiting for the lock
    t.join(timeout=60)
    assert done.is_set() and (target / SLUG / LATEST).is_file()
    assert os.listdir(target / SLUG / "versions")
