"""Shared fixtures: the real samples in ../shared and a generated sample category."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# ../shared beside the checkout (ACMMG_SHARED elsewhere, e.g. in a git worktree).
SHARED = Path(os.environ.get("ACMMG_SHARED") or Path(__file__).resolve().parents[2] / "shared")
RAW = SHARED / "datasets" / "raw"


@pytest.fixture(scope="session")
def raw_dir() -> Path:
    """../shared/datasets/raw, read in place; tests that need it skip where it is absent."""
    if not RAW.is_dir():
        pytest.skip(f"real samples not available: {RAW} is absent")
    return RAW


@pytest.fixture(scope="session")
def sample_dir(tmp_path_factory) -> Path:
    """A small generated Amazon-2023 category (no images), shared by the session."""
    from pipeline.sample import SampleSpec, generate_sample

    out = tmp_path_factory.mktemp("sample")
    generate_sample(
        out, "http://127.0.0.1:9", seed=7, spec=SampleSpec(n_items=240, n_users=2500), images=False
    )
    return out
