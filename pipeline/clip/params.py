"""The embed stage's parameters (light: importing them loads neither torch nor open_clip)."""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.errors import StageError
from pipeline.params import param
from pipeline.workdir import CLIP_KINDS

TINY_MODEL = "acmmg-tiny"  # pipeline/model_configs/: open_clip code, seeded random weights
KINDS = CLIP_KINDS
PRECISIONS = ("auto", "fp32", "amp-bf16", "bf16", "amp-fp16", "fp16")
RUNTIMES = ("auto", "torch", "openvino")
NO_WEIGHTS = ("", "none", "random")  # --pretrained values that mean seeded random weights


@dataclass(frozen=True)
class EmbedParams:
    model: str = param("ViT-B-32", "open_clip model name (acmmg-tiny: the tiny test model)")
    pretrained: str | None = param(
        "openai", "open_clip pretrained tag; none for seeded random weights"
    )
    checkpoint: str | None = param(
        None,
        "local weights file (for --model) or open_clip model folder with "
        "open_clip_config.json; overrides --pretrained",
        metavar="PATH",
    )
    device: str = param("auto", "auto, cpu, cuda or cuda:N")
    precision: str = param(
        "auto",
        "auto: fp16 autocast on CUDA, bf16 weights on CPUs with native bf16, else fp32",
        choices=PRECISIONS,
    )
    runtime: str = param(
        "torch",
        "torch; or openvino (auto: OpenVINO for bf16 on a CPU, about 2x torch's bf16 there, "
        "else torch). Opt-in: OpenVINO after DataLoader decode workers in one process was "
        "seen to corrupt the heap in the test suite, not yet explained",
        choices=RUNTIMES,
    )
    batch_size: int = param(64, "images per batch")
    text_batch_size: int | None = param(None, "texts per batch (default max(batch size, 256))")
    num_workers: int = param(2, "image decode workers", key=False)
    weights_seed: int = param(0, "seed of random weights", flag="--seed")

    def __post_init__(self) -> None:
        if self.pretrained is not None and self.pretrained.lower() in NO_WEIGHTS:
            object.__setattr__(self, "pretrained", None)
        if self.batch_size < 1 or self.num_workers < 0:
            raise StageError("batch_size must be >= 1 and num_workers >= 0")
