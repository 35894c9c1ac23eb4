"""A disk that fills up during a download's tar extraction or during a publish (issue 11,
item 10): one line and exit 2, no temp files or half state left, and a rerun with room
completes. The full disk is real: a small tmpfs mounted in a private mount namespace
(``unshare -m``, so nothing outside the test sees it); skipped, with the reason, where
this machine does not allow that."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.publish.targets import publish_folder
from tests.faults.namespaces import why_no_tmpfs
from tests.publish_fixtures import build_category_folder

SLUG = "demo"
ROOT = Path(__file__).resolve().parents[2]
PAGE = 4096


pytestmark = pytest.mark.skipif(
    (why := why_no_tmpfs()) is not None, reason=f"no real full disk here: {why}"
)

# Runs inside the namespace: STEP 1 on a small tmpfs, then STEP 2 after growing it.
SCRIPT = """
set -u
mount -t tmpfs -o size={small}k tmpfs {mnt}
cd {mnt}
{cmd} 2>{logs}/err1; rc1=$?
ls -A {mnt}/out/{slug} 2>/dev/null | tr '\\n' ' ' > {logs}/ls1
find {mnt} -name '*.tmp' -o -name '.extract.*' | tr '\\n' ' ' > {logs}/tmp1
mount -o remount,size=8m {mnt}
{cmd} 2>{logs}/err2; rc2=$?
{py} -c "import json, pathlib; m, g = pathlib.Path('{mnt}'), pathlib.Path('{logs}'); print(json.dumps({{
    'rc1': $rc1, 'rc2': $rc2, 'err1': (g / 'err1').read_text(), 'err2': (g / 'err2').read_text(),
    'ls1': (g / 'ls1').read_text().split(), 'tmp1': (g / 'tmp1').read_text().split(),
    'after': sorted(p.relative_to(m / 'out').as_posix() for p in (m / 'out').rglob('*')
                    if p.is_file())}}))"
"""


def run_full(tmp_path: Path, small_kb: int, args: list[str]) -> dict:
    mnt, logs = tmp_path / "mnt", tmp_path / "logs"  # logs outside the full disk
    mnt.mkdir()
    logs.mkdir()
    cmd = f"env PYTHONPATH={ROOT} {sys.executable} -m pipeline.cli " + " ".join(args)
    script = SCRIPT.format(
        small=small_kb, mnt=mnt, logs=logs, cmd=cmd, slug=SLUG, py=sys.executable
    )
    r = subprocess.run(
        ["unshare", "-m", "--", "bash", "-c", script],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    return json.loads(r.stdout.strip().splitlines()[-1])


def pages(size: int) -> int:
    return -(-size // PAGE) * PAGE


def assert_one_line(err: str) -> str:
    lines = [ln for ln in err.strip().splitlines() if " ERROR " not in ln and " INFO " not in ln]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def test_disk_full_during_tar_extraction(tmp_path):
    folder = tmp_path / "build" / SLUG
    built = build_category_folder(folder, n=40, seed=6)
    target = tmp_path / "target"
    publish_folder(folder, SLUG, str(target))
    files = built["manifest"]["files"]
    # Room for every downloaded file, not for the 40 extracted images (a page each at least).
    small = (sum(pages(m["size"]) for m in files.values()) + 16 * PAGE) // 1024
    r = run_full(
        tmp_path, small, ["download", SLUG, "--from", str(target), "--to", "out", "--no-progress"]
    )
    assert r["rc1"] == 2
    assert "No space left on device" in assert_one_line(r["err1"])
    assert "manifest.json" not in r["ls1"] and r["tmp1"] == []  # not complete, no debris
    assert r["rc2"] == 0, r["err2"]
    assert (
        f"{SLUG}/manifest.json" in r["after"]
        and f"{SLUG}/images/{built['asins'][0]}.jpg" in r["after"]
    )


def test_disk_full_during_publish(tmp_path):
    folder = tmp_path / "work" / "publish" / SLUG
    built = build_category_folder(folder, n=40, seed=6)
    files = built["manifest"]["files"]
    small = (sum(pages(m["size"]) for m in files.values()) // 2) // 1024
    r = run_full(
        tmp_path, small, ["publish", "--category", SLUG, "--from", str(folder), "--to", "out"]
    )
    assert r["rc1"] == 2
    line = assert_one_line(r["err1"])
    assert "cannot publish demo" in line and "No space left on device" in line
    assert "LATEST" not in r["ls1"] and r["tmp1"] == []
    assert r["rc2"] == 0, r["err2"]
    version = built["manifest"]["version"]
    assert f"{SLUG}/LATEST" in r["after"]
    assert f"{SLUG}/versions/{version}/manifest.json" in r["after"]
