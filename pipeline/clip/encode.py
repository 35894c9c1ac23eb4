"""Encoding images (decoded in DataLoader workers) and texts with a loaded model; CLIP-T."""

from __future__ import annotations

import logging
import multiprocessing
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from pipeline.clip.model import ClipModel
from pipeline.clip.text import cut_length, pool_index

log = logging.getLogger(__name__)


class _ImageFiles(Dataset):
    """Decodes and preprocesses one image per item, in DataLoader workers."""

    def __init__(self, paths: Sequence[str | Path], preprocess: Any, size: int):
        self.paths = [str(p) for p in paths]
        self.preprocess = preprocess
        self.size = size

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, bool]:
        try:
            with Image.open(self.paths[i]) as im:
                return self.preprocess(im.convert("RGB")), True
        except Exception as e:  # a broken file must not kill the run: it is counted
            log.warning("cannot decode image %s: %s", self.paths[i], e)
            return torch.zeros(3, self.size, self.size), False


def _worker_init(_: int) -> None:
    # Each decode worker is one process; torch threads there would oversubscribe the CPUs.
    torch.set_num_threads(1)


def _image_side(cm: ClipModel) -> int:
    size = cm.model_id.get("image_size") or 224
    return int(size[0] if isinstance(size, (list, tuple)) else size)


@torch.no_grad()
def encode_images(
    cm: ClipModel,
    paths: Sequence[str | Path],
    batch_size: int = 64,
    num_workers: int = 2,
    progress: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Embed image files. Returns (float32 [n, d] L2-normalised, bool [n] decoded ok).

    Rows of images that could not be decoded are NaN and False in the mask.
    """
    out = np.full((len(paths), cm.embed_dim), np.nan, dtype=np.float32)
    ok = np.zeros(len(paths), dtype=bool)
    if not paths:
        return out, ok
    ds = _ImageFiles(paths, cm.preprocess, _image_side(cm))
    if num_workers > 0:
        # With this module preloaded in the fork server, each worker is a cheap fork of it
        # instead of a fresh interpreter importing torch (seconds per worker, per call).
        multiprocessing.set_forkserver_preload([__name__])
    loader = DataLoader(
        ds,
        batch_size=batch_size,
        shuffle=False,
        num_workers=num_workers,
        worker_init_fn=_worker_init if num_workers > 0 else None,
        pin_memory=cm.device.type == "cuda",
        # Forked workers die at start inside a Prefect task run (its threads hold state a
        # fork cannot copy); a fork server starts them from a clean process.
        multiprocessing_context="forkserver" if num_workers > 0 else None,
    )
    row = 0
    for pixels, good in tqdm(loader, desc="images", unit="batch", disable=not progress):
        feats = F.normalize(cm.image_features(pixels), dim=-1).cpu().numpy()
        n = len(feats)
        good = good.numpy().astype(bool)
        out[row : row + n][good] = feats[good]
        ok[row : row + n] = good
        row += n
    return out, ok


@torch.no_grad()
def encode_tokens(
    cm: ClipModel, tokens: torch.Tensor, batch_size: int = 256, progress: bool = False
) -> np.ndarray:
    """Embed tokenised texts [n, context]. float32 [n, d], L2-normalised.

    Identical rows are encoded once; the distinct rows go through the text tower sorted by
    pooled position (their length), cut after it, rounded up to a multiple of
    pipeline.clip.text.CUT_MULTIPLE (bit-identical to the padded context), in batches of
    one cut length each. The
    batches are a pure function of the set of rows, so a resumable part always gives the
    same bytes; titles are ~20-40 tokens, so most of the padded text tower's work was waste.
    """
    out = np.empty((len(tokens), cm.embed_dim), dtype=np.float32)
    if not len(tokens):
        return out
    uniq, inverse = torch.unique(tokens, dim=0, return_inverse=True)  # rows sorted: stable
    pooled = pool_index(cm.model, uniq)
    n_ctx = uniq.shape[1]
    if pooled is None:  # no exact trimming for this text tower: full context, input order
        batches = [(rows, n_ctx) for rows in torch.arange(len(uniq)).split(batch_size)]
    else:
        # Sorted by length, batched within each cut length: a batch of short titles never
        # waits for the descriptions that follow them.
        order = torch.argsort(pooled, stable=True)
        cut = torch.tensor([cut_length(int(n) + 1, n_ctx) for n in pooled[order]])
        cuts, sizes = torch.unique_consecutive(cut, return_counts=True)
        batches = [
            (rows, int(n))
            for n, group in zip(cuts, order.split(sizes.tolist()), strict=True)
            for rows in group.split(batch_size)
        ]
    feats_u = np.empty((len(uniq), cm.embed_dim), dtype=np.float32)
    for rows, n in tqdm(batches, desc="texts", unit="batch", disable=not progress):
        feats = cm.text_features(uniq[rows, :n])
        feats_u[rows.numpy()] = F.normalize(feats, dim=-1).cpu().numpy()
    out[:] = feats_u[inverse.numpy()]
    return out


def encode_texts(
    cm: ClipModel, texts: Sequence[str], batch_size: int = 256, progress: bool = False
) -> np.ndarray:
    """Embed texts (truncated to the model's context length). float32 [n, d], L2-normalised.

    See ``encode_tokens``: texts are tokenised once, duplicates encoded once, batches sorted
    by length and cut to their longest text.
    """
    return encode_tokens(cm, cm.tokenizer(list(texts)), batch_size, progress)


def clip_t(image_emb: np.ndarray, text_emb: np.ndarray) -> np.ndarray:
    """CLIP-T per row: 100 x cosine(image, text) (SLIP Table 1), float64 [n].

    Not clamped at 0 (torchmetrics' CLIPScore clamps); pretrained CLIP never gets near 0 on
    matched pairs, and an unclamped score keeps random-weight runs informative.
    """
    a = np.asarray(image_emb, dtype=np.float64)
    b = np.asarray(text_emb, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 2:
        raise ValueError(f"expected two [n, d] arrays of one shape, got {a.shape} and {b.shape}")
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    return 100.0 * np.einsum("ij,ij->i", a, b)
