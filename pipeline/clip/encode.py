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
from open_clip.transformer import text_global_pool
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from pipeline.clip.model import ClipModel

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
        pixels = pixels.to(cm.device, dtype=cm.input_dtype, non_blocking=True)
        with cm.autocast():
            feats = cm.model.encode_image(pixels)
        feats = F.normalize(feats.float(), dim=-1).cpu().numpy()
        n = len(feats)
        good = good.numpy().astype(bool)
        out[row : row + n][good] = feats[good]
        ok[row : row + n] = good
        row += n
    return out, ok


def _pool_index(model: torch.nn.Module, tokens: torch.Tensor) -> torch.Tensor | None:
    """Per row, the position the text tower pools at, or None where the model is not an
    open_clip CLIP text transformer with a causal mask and token pooling (then no trimming).

    Under the causal mask a position sees only itself and earlier ones, so the pooled feature
    of a row does not depend on anything after its pooled position: cutting the padded tail
    leaves it bit-identical (tests/test_clip.py asserts so in fp32 and bf16; see CUT_MULTIPLE).
    """
    needed = ("token_embedding", "positional_embedding", "transformer", "ln_final")
    if getattr(model, "attn_mask", None) is None or not all(hasattr(model, a) for a in needed):
        return None
    pool = getattr(model, "text_pool_type", None)
    if pool == "argmax":  # the OpenAI tokenizer's EOT is its largest id
        return tokens.argmax(dim=-1)
    if pool == "eos" and getattr(model, "text_eos_id", None) is not None:
        return (tokens == model.text_eos_id).int().argmax(dim=-1)
    if pool == "first":
        return torch.zeros(len(tokens), dtype=torch.long)
    return None


# Texts are cut to a multiple of this many tokens. Bit-identity needs it: the attention's
# sums over keys run in 16-lane vectors (fp32 and bf16 alike), and a key length that ends in
# a partial vector adds the same nonzero terms in another order (measured: a cut to 21 or 29
# tokens differs from the full 77 in the last bits, 32 or 48 do not).
CUT_MULTIPLE = 16


def cut_length(longest: int, context: int) -> int:
    """Tokens to keep for a batch whose longest row pools at position ``longest - 1``."""
    return min(context, -(-longest // CUT_MULTIPLE) * CUT_MULTIPLE)


def _encode_trimmed(model: torch.nn.Module, tokens: torch.Tensor) -> torch.Tensor:
    """open_clip's ``CLIP.encode_text`` on tokens cut to length L = tokens.shape[1]: the
    positional embedding and the causal mask are sliced to L as well."""
    n = tokens.shape[1]
    cast = model.transformer.get_cast_dtype()
    x = model.token_embedding(tokens).to(cast)
    x = x + model.positional_embedding[:n].to(cast)
    x = model.transformer(x, attn_mask=model.attn_mask[:n, :n])
    x = model.ln_final(x)
    eos = getattr(model, "text_eos_id", None)
    x = text_global_pool(x, tokens, model.text_pool_type, eos_token_id=eos)
    proj = model.text_projection
    if proj is None:
        return x
    return proj(x) if isinstance(proj, torch.nn.Linear) else x @ proj


@torch.no_grad()
def encode_tokens(
    cm: ClipModel, tokens: torch.Tensor, batch_size: int = 256, progress: bool = False
) -> np.ndarray:
    """Embed tokenised texts [n, context]. float32 [n, d], L2-normalised.

    Identical rows are encoded once; the distinct rows go through the text tower sorted by
    pooled position (their length), each batch cut to its longest row (rounded up to a
    multiple of CUT_MULTIPLE). A row's result then
    depends only on the rows of this call (the order is a pure function of them), so a
    resumable part always gives the same bytes.
    """
    out = np.empty((len(tokens), cm.embed_dim), dtype=np.float32)
    if not len(tokens):
        return out
    uniq, inverse = torch.unique(tokens, dim=0, return_inverse=True)  # rows sorted: stable
    pooled = _pool_index(cm.model, uniq)
    if pooled is None:  # no exact trimming for this text tower: full context, input order
        order, lengths = torch.arange(len(uniq)), None
    else:
        lengths = pooled + 1
        order = torch.argsort(lengths, stable=True)
    feats_u = np.empty((len(uniq), cm.embed_dim), dtype=np.float32)
    starts = range(0, len(uniq), batch_size)
    for s in tqdm(starts, desc="texts", unit="batch", disable=not progress):
        rows = order[s : s + batch_size]
        with cm.autocast():
            if lengths is None:
                feats = cm.model.encode_text(uniq[rows].to(cm.device))
            else:
                n = cut_length(int(lengths[rows].max()), uniq.shape[1])
                feats = _encode_trimmed(cm.model, uniq[rows, :n].to(cm.device))
        feats_u[rows.numpy()] = F.normalize(feats.float(), dim=-1).cpu().numpy()
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
