"""SLIP's classification evaluations on node embeddings: zero-shot (class names as text
prompts) and k-shot linear probes (a ridge-regression classifier per draw of the shots).

Pure functions on tensors: the run-specific parts (which embeddings, which prompts) are in
``evaluate.py``.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

SHOTS = (1, 5, 10, 16)


def zero_shot(features: torch.Tensor, class_text: torch.Tensor, labels: np.ndarray) -> dict:
    """Accuracy of predicting each row's class as the most similar class prompt embedding."""
    sims = F.normalize(features.float(), dim=-1) @ F.normalize(class_text.float(), dim=-1).T
    pred = sims.argmax(dim=1).numpy()
    return {"accuracy": float(np.mean(pred == labels)), "n": int(len(labels))}


def standardiser(reference: torch.Tensor):
    """x -> (x - mean) / std with the reference rows' per-dimension statistics: a probe's
    regularisation then means the same on CLIP embeddings and on nearly collinear ones."""
    ref = reference.double()
    mean, std = ref.mean(0), ref.std(0, unbiased=False).clamp_min(1e-12)
    return lambda x: (x.double() - mean) / std


def linear_probe(x: torch.Tensor, y: np.ndarray, num_classes: int, l2: float = 1.0):
    """A ridge-regression classifier on one-hot targets, solved in closed form (k-shot sets
    are small: the solve is over the n x n kernel). ``l2`` is relative to the mean squared
    norm of the rows. Returns a function: rows -> class scores."""
    x = x.double()
    target = F.one_hot(torch.as_tensor(y, dtype=torch.long), num_classes).double()
    mean_x, mean_y = x.mean(0), target.mean(0)
    xc = x - mean_x
    gram = xc @ xc.T
    reg = l2 * float(gram.diagonal().mean().clamp_min(1e-12))
    alpha = torch.linalg.solve(gram + reg * torch.eye(len(x), dtype=x.dtype), target - mean_y)
    w = xc.T @ alpha  # [d, classes]
    return lambda rows: (rows.double() - mean_x) @ w + mean_y


def sample_shots(
    labels: np.ndarray, pool: np.ndarray, k: int, rng: np.random.Generator
) -> np.ndarray:
    """k pool nodes of every class (all of a class that has fewer), sorted."""
    picked = []
    for c in np.unique(labels[pool]):
        members = pool[labels[pool] == c]
        picked.append(rng.choice(members, min(k, len(members)), replace=False))
    return np.sort(np.concatenate(picked)) if picked else np.zeros(0, dtype=np.int64)


def few_shot(
    features: dict[str, torch.Tensor],
    labels: np.ndarray,
    support: np.ndarray,
    query: np.ndarray,
    num_classes: int,
    shots: tuple[int, ...] = SHOTS,
    seeds: int = 5,
    seed: int = 0,
) -> dict:
    """k-shot linear-probe accuracy on ``query`` rows for every feature kind and k.

    ``features[kind]`` is indexed by node id. For each seed, k nodes per class are drawn from
    ``support`` (the same nodes for every kind); features are standardised with the whole
    support pool's statistics (labels unused), then a probe is fitted on the k-shot nodes.
    Returns {k: {kind: {"mean", "std", "runs"}}} and the number of support nodes per k.
    """
    scaled = {kind: standardiser(x[support])(x) for kind, x in features.items()}
    out: dict = {}
    for k in shots:
        runs: dict[str, list[float]] = {kind: [] for kind in features}
        n_support = []
        for s in range(seeds):
            rng = np.random.default_rng([seed, s, k])
            idx = sample_shots(labels, support, k, rng)
            n_support.append(len(idx))
            for kind in features:
                probe = linear_probe(scaled[kind][idx], labels[idx], num_classes)
                pred = probe(scaled[kind][query]).argmax(dim=1).numpy()
                runs[kind].append(float(np.mean(pred == labels[query])))
        out[str(k)] = {
            kind: {"mean": float(np.mean(v)), "std": float(np.std(v)), "runs": v}
            for kind, v in runs.items()
        } | {"support_nodes": int(max(n_support))}
    return out
