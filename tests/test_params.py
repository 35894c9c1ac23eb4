"""Parameter dataclasses: conversion, errors that name the setting, CLI flags from fields."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Literal

import pytest

from pipeline.cli.args import add_params, from_args
from pipeline.params import ParamError, as_dict, build, coerce, defaults, param


@dataclass(frozen=True)
class Demo:
    k: int = param(5, "k of the k-core")
    min_clip_t: float | None = param(None, "CLIP-T floor")
    fields: Literal["both", "title"] = param("both", "which CLIP-T must pass")
    verified_only: bool = param(False, "verified purchases only")
    progress: bool = param(True, "progress bars")
    allow: tuple[str, ...] = param((), "networks", metavar="CIDR")
    hidden: int = param(1, "not a flag", cli=False)


def test_coerce_and_build():
    assert coerce(int, "3") == 3
    assert coerce(float | None, "none") is None
    assert coerce(bool, "yes") is True
    assert coerce(tuple[str, ...], "a,b") == ("a", "b")
    d = build(Demo, {"k": "7", "min_clip_t": 15})
    assert d.k == 7 and d.min_clip_t == 15.0
    with pytest.raises(ParamError, match=r"min_clip_t='abc'.*expected float or null"):
        build(Demo, {"min_clip_t": "abc"})
    with pytest.raises(ParamError, match=r"unknown setting 'bogus_key'; valid: allow"):
        build(Demo, {"bogus_key": 3})
    with pytest.raises(ParamError, match="must be one of"):
        build(Demo, {"fields": "neither"})
    assert defaults(Demo)["k"] == 5
    assert as_dict(Demo(allow=("x",)))["allow"] == ["x"]


def test_flags_from_fields():
    p = argparse.ArgumentParser()
    add_params(p, Demo)
    a = p.parse_args(["--k", "3", "--no-progress", "--allow", "10.0.0.0/8", "--allow", "x"])
    d = from_args(Demo, a)
    assert (d.k, d.progress, d.allow, d.verified_only, d.hidden) == (
        3,
        False,
        ("10.0.0.0/8", "x"),
        False,
        1,
    )
    assert from_args(Demo, p.parse_args([])) == Demo()
    with pytest.raises(SystemExit):
        p.parse_args(["--k", "x"])
    with pytest.raises(SystemExit):
        p.parse_args(["--hidden", "2"])


def test_a_setting_name_means_one_thing_in_every_stage():
    from pipeline.params import hints
    from pipeline.stages import STAGES

    seen: dict = {}
    for stage in STAGES:
        for name, tp in hints(stage.params).items():
            assert seen.setdefault(name, (tp, stage.name))[0] == tp, (name, stage.name, seen[name])


def test_settings_are_checked_with_close_matches():
    from pipeline.stages import check_settings

    assert check_settings({"min_clip_t": "20", "k": 4}) == {"min_clip_t": 20.0, "k": 4}
    with pytest.raises(ParamError, match=r"'min_clip' \(did you mean 'min_clip_t'"):
        check_settings({"min_clip": 3})
    with pytest.raises(ParamError, match=r"unknown setting 'category'"):
        check_settings({"category": "x"})  # set by the runner, not a user setting
