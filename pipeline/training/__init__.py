"""A thin SLIP and RCML training module for published category folders.

    config.py      TrainConfig: every training setting with its default and help
    data.py        folder loading, images.tar reader, subgraph batch sampler, positive mask
    slip.py        SLIP model (CLIP + GAT + fusion + aux classifier) and losses (Eq. 1, 5, 6)
    rcml.py        RCML relation-conditioned pooling (Eq. 3-6) and loss (Eq. 1-2)
    metrics.py     retrieval metrics (MRR, R@k, ranks), Hit@5, top-k accuracy
    classify.py    zero-shot and k-shot linear-probe classification
    hops.py        SLIP Fig. 5: node pairs by hop distance and their cross-modal cosine
    run.py         Run: config, data, model and device, built once
    optim.py       layer-wise learning-rate groups, warmup + decay schedule, early stopping
    batches.py     model inputs per batch (precomputed embeddings, or images and tokens)
    steps.py       one training step's loss per method
    slip_eval.py   what SLIP reports: retrieval, zero-/few-shot, Fig. 5
    rcml_eval.py   what RCML reports: Hit@5, relation type, relation validity, CLIP baseline
    evaluate.py    evaluation of a run, before / after training, ``evaluate_run``
    checkpoint.py  saving and loading checkpoints (weights_only)
    report.py      run-folder outputs: rounding, CSV, averages over seeds
    plots.py       loss curve and Fig. 5 plots
    loop.py        ``train`` / ``fit``: the training loop

Command line: ``acmmg train slip|rcml --data DIR --out RUN_DIR`` and ``acmmg eval``.
Importing this package loads no torch; the names below are imported when first used.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "CategoryData": "pipeline.training.data",
    "load_category": "pipeline.training.data",
    "load_embeddings": "pipeline.training.data",
    "TrainConfig": "pipeline.training.config",
    "evaluate_run": "pipeline.training.evaluate",
    "train": "pipeline.training.loop",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
