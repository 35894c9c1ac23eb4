"""Stage stamps (pipeline.stamps): what a stage's key covers, and when a stage is skipped."""

from __future__ import annotations

from pathlib import Path

from pipeline.graph import build_graph
from pipeline.graph_partitions import merge_partitions
from pipeline.stamps import _code_files, is_cached, run_cached, stage_key


def _stage(work: Path, calls: list, **params):
    def fn(**kw):
        calls.append(kw)
        (work / "out.txt").write_text(repr(sorted(kw.items())))
        return {"n": len(calls)}

    spec = {"inputs": [work / "in.txt"], "outputs": [work / "out.txt"], "params": params}
    return fn, spec


def test_run_cached_skips_until_inputs_params_or_outputs_change(tmp_path):
    (tmp_path / "in.txt").write_text("a")
    calls: list = []
    fn, spec = _stage(tmp_path, calls, x=1)
    assert run_cached(tmp_path, "s", fn, **spec) == ({"n": 1}, False)
    assert run_cached(tmp_path, "s", fn, **spec) == ({"n": 1}, True)
    assert is_cached(tmp_path, "s", fn, **spec)
    (tmp_path / "in.txt").write_text("b")  # new input content
    assert not is_cached(tmp_path, "s", fn, **spec)
    assert run_cached(tmp_path, "s", fn, **spec) == ({"n": 2}, False)
    fn2, spec2 = _stage(tmp_path, calls, x=2)  # new parameters
    assert run_cached(tmp_path, "s", fn2, **spec2) == ({"n": 3}, False)
    (tmp_path / "out.txt").unlink()  # an output gone
    assert run_cached(tmp_path, "s", fn2, **spec2) == ({"n": 4}, False)
    assert len(calls) == 4


def test_key_covers_the_code_a_stage_takes_from_other_modules(tmp_path):
    # merge_partitions lives in graph_partitions.py but runs graph.py's k-core and writes.
    names = {f"{p.parent.name}/{p.name}" for p in _code_files(merge_partitions)}
    assert {
        "pipeline/graph_partitions.py",
        "pipeline/graph.py",
        "pipeline/io.py",
        "sql/__init__.py",
    } <= names
    assert "graph_partitions.py" not in {p.name for p in _code_files(build_graph)}
    args = ([tmp_path / "missing"], {"k": 5}, tmp_path)
    assert stage_key("graph", build_graph, *args) != stage_key("graph", merge_partitions, *args)


def test_one_build_per_work_directory(tmp_path):
    import pytest

    from pipeline.errors import UserError
    from pipeline.runner import work_lock

    with work_lock(tmp_path, "build of demo"):
        with pytest.raises(UserError, match=r"another build of demo is using .*--work-root"):
            with work_lock(tmp_path, "build of demo"):
                pass
    with work_lock(tmp_path):  # released: the next one goes ahead
        pass
