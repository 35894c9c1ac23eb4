"""The towers through OpenVINO: bf16 kernels on a CPU, 2-3x torch's bf16 on this machine.

torch's own bf16 path spends about half its time outside the matrix products (bias copies,
unfused GELU and layer norms, an attention kernel built for long sequences); OpenVINO fuses
them. Both towers are exported from the open_clip model in fp32 (``torch.export``, dynamic
batch and text length) and compiled with bf16 inference precision, so the weights are
rounded to bf16 once, as torch's bf16 path does. Embeddings stay within cosine 0.9999 of
fp32 (bench/README.md); they are not torch's bits, so the runtime and OpenVINO's version are
part of the model id and of the embed stage's reuse key.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any
from unittest import mock

import numpy as np
import torch

from pipeline.errors import UserError

log = logging.getLogger(__name__)
_CONVERT_LOCK = threading.Lock()


def openvino_version() -> str:
    import openvino

    return openvino.__version__.split("-")[0]


class _Text(torch.nn.Module):
    def __init__(self, model: torch.nn.Module, encode: Callable):
        super().__init__()
        self.model, self.encode = model, encode

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.encode(self.model, tokens)


class _Image(torch.nn.Module):
    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.model.encode_image(pixels)


def _convert(ov: Any, model: torch.nn.Module, encode_text: Callable, side: int) -> tuple:
    """Both towers as OpenVINO models (fp32 weights), batch and text length dynamic."""
    ctx = int(model.positional_embedding.shape[0])
    # torch.export guards a slice of the whole length (n != ctx); OpenVINO's graph has no
    # such bound, so its inputs are reshaped to fully dynamic below.
    b, n = torch.export.Dim("batch", min=1), torch.export.Dim("length", min=1, max=ctx - 1)
    tokens = torch.ones(2, min(16, ctx - 1), dtype=torch.long)  # below ctx: stays dynamic
    pixels = torch.zeros(2, 3, side, side)
    with torch.no_grad():
        text = torch.export.export(
            _Text(model, encode_text), (tokens,), dynamic_shapes=({0: b, 1: n},)
        )
        image = torch.export.export(_Image(model), (pixels,), dynamic_shapes=({0: b},))
    # OpenVINO's converter sends usage telemetry unless a consent file in ~/intel says no;
    # it skips that where CI=true, the one switch it reads. A pipeline phones nobody.
    with _CONVERT_LOCK, mock.patch.dict(os.environ, {"CI": "true"}):
        text_ov, image_ov = ov.convert_model(text), ov.convert_model(image)
    text_ov.reshape([-1, -1])
    image_ov.reshape([-1, 3, side, side])
    return text_ov, image_ov


def _save(ov: Any, cache: Path, text_ov: Any, image_ov: Any) -> None:
    """Both models into ``cache`` (a temp folder renamed into place: whole or absent)."""
    tmp = None
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=cache.parent, prefix=f".{cache.name}."))
        ov.save_model(text_ov, tmp / "text.xml", compress_to_fp16=False)
        ov.save_model(image_ov, tmp / "image.xml", compress_to_fp16=False)
        tmp.rename(cache)
    except OSError as e:  # another process saved it first, or the cache is not writable
        if not cache.exists():
            log.warning("could not cache the OpenVINO models in %s: %s", cache, e)
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)


def cache_dir(model_id: dict[str, Any]) -> Path | None:
    """Where the converted towers of ``model_id`` are kept ($ACMMG_OPENVINO_CACHE, default
    ~/.cache/acmmg/openvino; "none" turns the cache off). Keyed by everything that decides
    the graph and its weights: the model id (checkpoint sha, seed) and both versions."""
    root = os.environ.get("ACMMG_OPENVINO_CACHE", str(Path.home() / ".cache/acmmg/openvino"))
    if root.lower() in ("", "none"):
        return None
    key = json.dumps({**model_id, "openvino": openvino_version()}, sort_keys=True)
    return Path(root).expanduser() / hashlib.sha256(key.encode()).hexdigest()[:24]


class OpenVinoTowers:
    """Both towers of an fp32 open_clip model compiled for the CPU with OpenVINO.

    ``encode_text`` is the function that runs the text tower on cut tokens [b, L]
    (pipeline.clip.encode passes its ``_encode_trimmed``); L may be anything up to the
    context length.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        encode_text: Callable,
        image_side: int,
        precision: str,
        cache: Path | None = None,
    ):
        try:
            import openvino as ov
        except ImportError as e:  # a declared dependency; only a broken install lands here
            raise UserError(f"runtime openvino needs the openvino package: {e}") from None
        hint = {"bf16": "bf16", "fp32": "f32"}.get(precision)
        if hint is None:
            raise UserError(f"runtime openvino runs bf16 or fp32, not {precision!r}")
        if next(model.parameters()).dtype != torch.float32:
            raise ValueError("OpenVinoTowers needs the model's fp32 weights")
        core = ov.Core()
        config = {
            "INFERENCE_PRECISION_HINT": hint,
            # One stream on all the threads torch was given: the same CPU budget as torch.
            "NUM_STREAMS": 1,
            "INFERENCE_NUM_THREADS": torch.get_num_threads(),
            "PERFORMANCE_HINT": "LATENCY",
        }
        if cache is not None and (cache / "text.xml").exists() and (cache / "image.xml").exists():
            text_ov, image_ov = (
                core.read_model(cache / "text.xml"),
                core.read_model(cache / "image.xml"),
            )
        else:
            text_ov, image_ov = _convert(ov, model, encode_text, image_side)
            if cache is not None:
                _save(ov, cache, text_ov, image_ov)
        self._text = core.compile_model(text_ov, "CPU", config)
        self._image = core.compile_model(image_ov, "CPU", config)

    @staticmethod
    def _run(compiled: Any, x: torch.Tensor) -> torch.Tensor:
        out = compiled(np.ascontiguousarray(x.numpy()))[0]
        return torch.from_numpy(np.array(out, dtype=np.float32))

    def encode_text(self, tokens: torch.Tensor) -> torch.Tensor:
        return self._run(self._text, tokens.to(torch.long))

    def encode_image(self, pixels: torch.Tensor) -> torch.Tensor:
        return self._run(self._image, pixels.to(torch.float32))
