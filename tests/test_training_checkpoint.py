"""Checkpoints load with weights_only=True: a run folder cannot make ``acmmg eval`` run code."""

from __future__ import annotations

import os
import shutil

import pytest
import torch

from pipeline.cli import main
from tests.training_fixtures import make_category_folder, one_torch_thread  # noqa: F401


class _WritesMarker:
    """Unpickling this object (with weights_only=False) would create the marker file."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("ckpt")
    folder = make_category_folder(root / "Demo")
    run = root / "run"
    args = ["train", "slip", "--data", folder, "--frozen", "--epochs", 1, "--batch-size", 16]
    assert main([str(a) for a in [*args, "--out", run, "--no-progress"]]) == 0
    return run


def test_eval_refuses_a_pickle_that_runs_code(trained, tmp_path, capsys):
    run = tmp_path / "shared-run"
    shutil.copytree(trained, run)
    marker = tmp_path / "PWNED"
    torch.save({"epoch": 1, "model": _WritesMarker(str(marker))}, run / "checkpoints" / "best.pt")
    capsys.readouterr()
    assert main(["eval", "--run", str(run)]) == 2
    err = capsys.readouterr().err.strip()
    assert not marker.exists()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert "best.pt: refused to load" in err and "could run code" in err
    assert "weights_only=False" not in err  # never suggest the unsafe way


def test_eval_refuses_broken_checkpoints(trained, tmp_path, capsys):
    run = tmp_path / "broken"
    shutil.copytree(trained, run)
    best = run / "checkpoints" / "best.pt"
    best.write_bytes(best.read_bytes()[:100])
    assert main(["eval", "--run", str(run)]) == 2
    torch.save({"model": {"nope": torch.zeros(1)}, "epoch": 1}, best)
    assert main(["eval", "--run", str(run)]) == 2
    err = capsys.readouterr().err
    assert "not a readable checkpoint" in err and "does not fit this run's model" in err
    assert "Traceback" not in err


def test_trained_checkpoint_loads_weights_only(trained):
    state = torch.load(trained / "checkpoints" / "best.pt", weights_only=True)
    assert state["config"]["method"] == "slip" and isinstance(state["epoch"], int)
