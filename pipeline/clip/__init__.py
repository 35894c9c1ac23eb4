"""CLIP: image, title, description and combined embeddings plus CLIP-T scores.

In the shape of clip-retrieval's inference: ``params`` (the stage's settings, light),
``model`` (open_clip loading: weights, device, precision), ``reader`` (what is embedded),
``encode`` (images through DataLoader workers, texts, CLIP-T), ``text`` (the text tower
on tokens cut to their length), ``runtime`` (both towers through OpenVINO) and ``stage`` (the resumable,
shardable embed stage writing work/clip/). Names are importable from here; torch and open_clip
load only when a name that needs them is first used.
"""

from __future__ import annotations

import importlib
from typing import Any

from pipeline.clip.params import KINDS, NO_WEIGHTS, PRECISIONS, RUNTIMES, TINY_MODEL, EmbedParams

_LAZY = {
    "ClipModel": "model",
    "MODEL_CONFIG_DIR": "model",
    "load_model": "model",
    "resolve_device": "model",
    "resolve_precision": "model",
    "resolve_runtime": "model",
    "cpu_has_native_bf16": "model",
    "encode_images": "encode",
    "encode_texts": "encode",
    "encode_tokens": "encode",
    "clip_t": "encode",
    "load_inputs": "reader",
    "join_description": "reader",
    "inputs_fingerprint": "reader",
    "embed_work": "stage",
    "embed_shard": "stage",
    "PART_ROWS": "stage",
}

__all__ = ["KINDS", "NO_WEIGHTS", "PRECISIONS", "RUNTIMES", "TINY_MODEL", "EmbedParams", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(f"pipeline.clip.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
