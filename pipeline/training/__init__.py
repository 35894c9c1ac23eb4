"""A thin SLIP and RCML training module for published category folders.

    data.py     folder loading, images.tar reader, subgraph batch sampler, positive mask
    slip.py     SLIP model (CLIP + GAT + fusion + aux classifier) and losses (Eq. 1, 5, 6)
    rcml.py     RCML relation-conditioned pooling (Eq. 3-6) and loss (Eq. 1-2)
    metrics.py  retrieval metrics (MRR, R@k, ranks), Hit@5, top-k accuracy
    train.py    training / evaluation loops, optimiser groups, schedule, early stopping

Command line: ``acmmg train slip|rcml --data DIR --out RUN_DIR`` and ``acmmg eval``.
"""

from pipeline.training.data import CategoryData, load_category, load_embeddings
from pipeline.training.train import TrainConfig, evaluate_run, train

__all__ = [
    "CategoryData",
    "TrainConfig",
    "evaluate_run",
    "load_category",
    "load_embeddings",
    "train",
]
