"""Loading an open_clip model for inference: device, precision, weights, the tiny config.

Models come from open_clip: a built-in name plus a pretrained tag, a local checkpoint file or
an open_clip model folder. The tiny config "acmmg-tiny" (pipeline/model_configs) is registered
here; with no pretrained weights the model is random but seeded, so runs are reproducible
without any download (tests, demo).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import open_clip
import torch

from pipeline.clip.params import PRECISIONS, RUNTIMES, TINY_MODEL
from pipeline.clip.text import encode_cut_tokens, pool_index
from pipeline.io import sha256_file

MODEL_CONFIG_DIR = Path(__file__).resolve().parent.parent / "model_configs"
_CREATE_LOCK = threading.Lock()
LOW = ("bf16", "fp16")  # precisions open_clip creates with low-precision weights

if TINY_MODEL not in open_clip.list_models():
    open_clip.add_model_config(MODEL_CONFIG_DIR)


@dataclass
class ClipModel:
    """A loaded open_clip model with everything needed to encode on one device."""

    model: torch.nn.Module
    preprocess: Any
    tokenizer: Any
    device: torch.device
    precision: str
    model_id: dict[str, Any] = field(default_factory=dict)
    # Set for runtime "openvino": the compiled towers (then ``model`` keeps fp32 weights).
    towers: Any = None

    @property
    def embed_dim(self) -> int:
        return int(self.model_id["embed_dim"])

    def autocast(self) -> contextlib.AbstractContextManager:
        if self.precision == "amp-bf16":
            return torch.autocast(self.device.type, dtype=torch.bfloat16)
        if self.precision == "amp-fp16":
            return torch.autocast(self.device.type, dtype=torch.float16)
        return contextlib.nullcontext()

    @property
    def runtime(self) -> str:
        return "torch" if self.towers is None else "openvino"

    @property
    def input_dtype(self) -> torch.dtype:
        if self.towers is not None:
            return torch.float32
        return {"bf16": torch.bfloat16, "fp16": torch.float16}.get(self.precision, torch.float32)

    def text_features(self, tokens: torch.Tensor) -> torch.Tensor:
        """The text tower on tokens [b, L], cut after every row's pooled position (or the
        full context where ``pool_index`` is None): float32 [b, d], not normalised."""
        if self.towers is not None:
            return self.towers.encode_text(tokens)
        with torch.no_grad(), self.autocast():
            tokens = tokens.to(self.device)
            if tokens.shape[1] == self.model_id.get("context_length"):
                return self.model.encode_text(tokens).float()
            return encode_cut_tokens(self.model, tokens).float()

    def image_features(self, pixels: torch.Tensor) -> torch.Tensor:
        """The image tower on a preprocessed batch: float32 [b, d], not normalised."""
        if self.towers is not None:
            return self.towers.encode_image(pixels)
        with torch.no_grad(), self.autocast():
            x = pixels.to(self.device, dtype=self.input_dtype, non_blocking=True)
            return self.model.encode_image(x).float()


def resolve_device(device: str = "auto") -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} requested but CUDA is not available")
    return torch.device(device)


def cpu_has_native_bf16() -> bool:
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def resolve_runtime(runtime: str, device: torch.device, precision: str) -> str:
    """Turn "auto" into "openvino" for bf16 on a CPU (2-3x torch's bf16 kernels, see
    bench/README.md) and "torch" otherwise (CUDA, fp32: torch's fp32 stays the reference)."""
    if runtime not in RUNTIMES:
        raise ValueError(f"runtime must be one of {RUNTIMES}, got {runtime!r}")
    if runtime == "auto":
        return "openvino" if device.type == "cpu" and precision == "bf16" else "torch"
    if runtime == "openvino" and (device.type != "cpu" or precision not in ("bf16", "fp32")):
        raise ValueError(
            f"runtime openvino runs on the CPU in bf16 or fp32, not {device.type} {precision}"
        )
    return runtime


def resolve_precision(precision: str, device: torch.device) -> str:
    """Turn "auto" into a concrete precision for ``device``.

    CUDA: fp16 autocast. CPU: weights in bf16 where the CPU computes bf16 natively (about 3x
    fp32 throughput; embeddings within cosine 0.9999 of fp32, CLIP-T within 0.2 points, see
    bench/README.md), else fp32 (emulated bf16 is slower than fp32).
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if precision == "auto":
        if device.type == "cuda":
            return "amp-fp16"
        return "bf16" if cpu_has_native_bf16() else "fp32"
    if precision in ("amp-fp16", "fp16") and device.type != "cuda":
        raise ValueError(f"precision {precision!r} needs a CUDA device")
    return precision


class _QuietOpenClip(logging.Filter):
    """Drops open_clip's INFO chatter (it logs on the root logger); warnings still pass."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.WARNING or "open_clip" not in record.pathname


def _fingerprint_path(path: Path) -> str:
    """sha256 of a checkpoint file, or of the config and weights open_clip uses in a folder."""
    if path.is_file():
        return sha256_file(path)
    # HF snapshots hold the weights in several formats (3 x 600 MB for ViT-B-32): hash only
    # the file open_clip will load, chosen by open_clip's own rule.
    chosen = open_clip.factory._find_checkpoint_in_dir(path)
    used = [path / "open_clip_config.json"] + ([Path(chosen)] if chosen else [])
    h = hashlib.sha256()
    for f in sorted(p for p in used if p.is_file()):
        h.update(f.relative_to(path).as_posix().encode() + b"\0" + sha256_file(f).encode())
    return h.hexdigest()


def load_model(
    model: str = "ViT-B-32",
    pretrained: str | None = "openai",
    checkpoint: str | Path | None = None,
    device: str = "auto",
    precision: str = "auto",
    seed: int = 0,
    runtime: str = "torch",
) -> ClipModel:
    """Load an open_clip model for inference.

    ``checkpoint`` (a weights file, or a folder with open_clip_config.json and weights, as
    downloaded from the HF Hub) overrides ``pretrained``. With neither, the weights are random
    but drawn after ``torch.manual_seed(seed)``, so the same model comes out every run.
    ``runtime`` "openvino" (or "auto", see ``resolve_runtime``) compiles both towers with
    OpenVINO; ``model`` then keeps the fp32 weights.
    """
    dev = resolve_device(device)
    prec = resolve_precision(precision, dev)
    rt = resolve_runtime(runtime, dev, prec)
    create_kwargs: dict[str, Any] = {}
    ckpt_sha = None
    if checkpoint is not None:
        ckpt = Path(checkpoint).expanduser().resolve()
        if not ckpt.exists():
            raise FileNotFoundError(f"checkpoint not found: {ckpt}")
        ckpt_sha = _fingerprint_path(ckpt)
        if ckpt.is_dir():
            # An open_clip model folder carries its own architecture config.
            model_name, weights = f"local-dir:{ckpt}", None
        else:
            if model not in open_clip.list_models():
                raise ValueError(f"unknown open_clip model {model!r}")
            model_name, weights = model, str(ckpt)
        pretrained = None
    else:
        model_name, weights = model, (pretrained or None)
        if model_name not in open_clip.list_models():
            raise ValueError(f"unknown open_clip model {model_name!r}")
        if weights:
            tag_cfg = open_clip.get_pretrained_cfg(model_name, weights)
            if not tag_cfg:
                tags = open_clip.list_pretrained_tags_by_model(model_name)
                raise ValueError(f"unknown pretrained tag {weights!r} for {model_name}: {tags}")
            # OpenAI-style weights were trained with QuickGELU; the plain config uses GELU.
            create_kwargs["force_quick_gelu"] = bool(tag_cfg.get("quick_gelu", False))

    def create(weights_precision: str) -> tuple[torch.nn.Module, Any, Any]:
        quiet = _QuietOpenClip()
        logging.getLogger().addFilter(quiet)
        try:
            # torch's RNG is process-wide: two threads creating models at once (shard tasks
            # on a thread pool) would interleave their draws and get different random weights.
            with _CREATE_LOCK, torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                net, _, preprocess = open_clip.create_model_and_transforms(
                    model_name,
                    pretrained=weights,
                    precision=weights_precision if weights_precision in LOW else "fp32",
                    device=dev,
                    **create_kwargs,
                )
            return net, preprocess, open_clip.get_tokenizer(model_name)
        finally:
            logging.getLogger().removeFilter(quiet)

    # OpenVINO rounds fp32 weights to bf16 itself; torch's bf16 path keeps bf16 weights.
    net, preprocess, tokenizer = create("fp32" if rt == "openvino" else prec)
    if rt == "openvino" and pool_index(net, tokenizer(["x"])) is None:
        if runtime != "auto":
            raise ValueError(f"runtime openvino needs an open_clip CLIP text tower: {model_name}")
        rt = "torch"  # a text tower that cannot be cut (HF text models): torch, as before
        net, preprocess, tokenizer = create(prec)
    net.eval()
    visual = net.visual
    image_size = getattr(visual, "image_size", None)
    text_ctx = getattr(tokenizer, "context_length", None)
    with torch.no_grad():
        embed_dim = int(net.encode_text(tokenizer(["x"]).to(dev)).shape[-1])
    model_id = {
        "model": model_name,
        "pretrained": pretrained or None,
        "checkpoint": str(checkpoint) if checkpoint is not None else None,
        "checkpoint_sha256": ckpt_sha,
        "random_weights_seed": seed if (weights is None and checkpoint is None) else None,
        "quick_gelu": bool(create_kwargs.get("force_quick_gelu", False)),
        "embed_dim": embed_dim,
        "image_size": list(image_size) if isinstance(image_size, tuple) else image_size,
        "context_length": text_ctx,
        "device": dev.type,
        "precision": prec,
        "open_clip": open_clip.__version__,
        "torch": torch.__version__.split("+")[0],
        "runtime": rt,
    }
    towers = None
    if rt == "openvino":
        from pipeline.clip.runtime import OpenVinoTowers, cache_dir, openvino_version

        side = image_size[0] if isinstance(image_size, tuple) else image_size
        towers = OpenVinoTowers(net, encode_cut_tokens, int(side or 224), prec, cache_dir(model_id))
        model_id["openvino"] = openvino_version()
    return ClipModel(net, preprocess, tokenizer, dev, prec, model_id, towers)
