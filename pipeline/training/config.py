"""The training configuration: every setting once, with its default and help.

``acmmg train slip|rcml`` generates its flags from these fields (``pipeline.cli.args``);
``RUN/config.json`` records them, method defaults resolved. Fields tagged ``method=`` are flags
of that method's command only. This module imports no torch, so ``acmmg --help`` stays fast.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, fields
from typing import Any, Literal

from pipeline.errors import UserError
from pipeline.params import ParamError, as_dict, build, param

METHODS = ("slip", "rcml")
# Both papers fine-tune CLIP ViT-B/32 (SLIP also B/16) from OpenAI's weights.
DEFAULT_MODEL = "ViT-B-32"
DEFAULT_PRETRAINED = "openai"
TEXT_FIELDS = ("title", "description", "combined")
# Per-method defaults (SLIP section 6.1; RCML appendix A.1), used where the config says None.
METHOD_DEFAULTS: dict[str, dict[str, Any]] = {
    "slip": {
        "epochs": 50,
        "batch_size": 1024,
        "lr": 1e-5,
        "head_lr": 4e-3,
        "layer_decay": 0.8,
        "layer_decay_direction": "paper",
        "schedule": "linear",
        "seeds": 1,
    },
    "rcml": {
        "epochs": 3,
        "batch_size": 512,
        "lr": 5e-5,
        "head_lr": 1e-3,
        "layer_decay": 1.0,
        "layer_decay_direction": "standard",
        "schedule": "cosine",
        "seeds": 3,
    },
}


@dataclass(frozen=True)
class TrainConfig:
    method: str = param(help="slip or rcml", cli=False)
    data: str = param(help="published category folder")
    out: str = param(help="run directory (checkpoints, metrics)")
    frozen: bool = param(
        False,
        "SLIP: train only adapters + graph heads on the precomputed embeddings "
        "(CPU-friendly); RCML: freeze the CLIP encoders, train the attention module",
    )
    epochs: int | None = param(None, "maximum epochs (default: SLIP 50, RCML 3)")
    batch_size: int | None = param(None, "nodes per subgraph batch (default: SLIP 1024, RCML 512)")
    lr: float | None = param(
        None, "base learning rate of the CLIP encoders (default: SLIP 1e-5, RCML 5e-5)"
    )
    head_lr: float | None = param(
        None, "learning rate of the graph / attention heads (default: SLIP 4e-3, RCML 1e-3)"
    )
    layer_decay: float | None = param(
        None, "layer-wise learning-rate decay (default: SLIP 0.8, RCML 1.0)"
    )
    layer_decay_direction: Literal["paper", "standard"] | None = param(
        None,
        "paper (SLIP 6.1): the last block at --lr, each block below it x 1/decay (shallower "
        "layers learn faster); standard: the projection at --lr, each layer below it x decay "
        "(default: SLIP paper, RCML standard)",
    )
    schedule: Literal["linear", "cosine"] | None = param(
        None, "decay after warmup (default: SLIP linear, RCML cosine)"
    )
    weight_decay: float = param(0.01, "AdamW weight decay")
    warmup_steps: int = param(
        500,
        "linear warmup steps (SLIP: 500); a run with no more steps in all warms up over "
        "a tenth of them",
    )
    grad_clip: float = param(1.0, "gradient norm clip (0: none)", cli=False)
    patience: int = param(10, "early-stopping patience (epochs)")
    min_delta: float = param(0.001, "early-stopping min delta")
    seed: int = param(0, "random seed")
    seeds: int | None = param(
        None,
        "train this many runs, seeds --seed, --seed + 1, ... (OUT/seed-<s>/), and average "
        "their metrics in OUT/metrics.json (default: SLIP 1, RCML 3 as the RCML paper)",
    )
    max_steps: int | None = param(None, "stop after this many steps")
    text_field: Literal["title", "description", "combined"] = param(
        "title", "text of each node (default title, as in SLIP)"
    )
    # SLIP
    hops: int = param(1, "hop threshold h of the positive mask", method="slip")
    lambda_graph: float = param(
        0.05, "weight of the structural loss (0: CLIP fine-tune baseline)", method="slip"
    )
    lambda_aux: float = param(0.1, "weight of the auxiliary classification loss", method="slip")
    frozen_center: bool = param(
        True,
        "with --frozen: centre each modality's published embeddings on their train-split mean "
        "before the adapters",
        method="slip",
    )
    prompt: str = param(
        "a photo of {}, a type of product.",
        "zero-shot classification prompt; {} is the class name",
        method="slip",
    )
    shots: tuple[int, ...] = param(
        (1, 5, 10, 16), "k of the k-shot linear probes (repeat the flag)", method="slip"
    )
    fewshot_seeds: int = param(5, "draws of the k-shot support nodes", method="slip")
    gat_hidden: int = param(512, "GAT hidden size", method="slip")
    gat_heads: int = param(4, "GAT attention heads", method="slip")
    dropout: float = param(0.1, "GAT dropout", method="slip")
    # RCML
    beta: float = param(
        0.6, "balance of relation attention and summary token (Eq. 5)", method="rcml"
    )
    tau: float = param(0.1, "contrastive temperature", method="rcml")
    lambda_intra: float = param(
        0.5, "weight of the intra-modal (text-text, image-image) terms", method="rcml"
    )
    negatives: int = param(
        20, "random negatives per relation-guided retrieval query", method="rcml"
    )
    max_eval_queries: int = param(2000, "at most this many evaluation queries", method="rcml")
    # model and hardware
    model: str | None = param(
        None,
        "open_clip model name (default ViT-B-32 with --pretrained openai, as both papers; "
        "SLIP --frozen: the model that made the folder's embeddings; acmmg-tiny: random "
        "weights for tests and the demo)",
    )
    pretrained: str | None = param(
        None,
        "open_clip pretrained tag (default openai with the default model; none: random weights)",
    )
    checkpoint: str | None = param(
        None, "open_clip weights file or model folder (instead of --pretrained)", metavar="PATH"
    )
    grad_checkpointing: bool = param(
        False, "recompute encoder activations in backward to save memory"
    )
    device: str = param("auto", "auto (CUDA when present), cpu, cuda[:i]")
    num_workers: int = param(0, "image decoding workers")
    eval_batch_size: int = param(256, "nodes per evaluation batch")

    def resolved(self) -> TrainConfig:
        if self.method not in METHODS:
            raise UserError(f"method must be one of {METHODS}, got {self.method!r}")
        unset = {k: v for k, v in METHOD_DEFAULTS[self.method].items() if getattr(self, k) is None}
        cfg = dataclasses.replace(self, **unset)
        if cfg.epochs < 1 or cfg.batch_size < 2 or cfg.seeds < 1:
            raise UserError("epochs and seeds must be >= 1 and batch size >= 2")
        try:
            ok = cfg.prompt.format("x") != cfg.prompt.format("y")
        except (IndexError, KeyError, ValueError):
            ok = False
        if not ok:
            raise UserError(f"--prompt must hold one {{}} for the class name, got {cfg.prompt!r}")
        if not cfg.shots or min(cfg.shots) < 1 or cfg.fewshot_seeds < 1:
            raise UserError("--shots and --fewshot-seeds must be >= 1")
        if cfg.schedule not in ("linear", "cosine"):
            raise UserError(f"schedule must be linear or cosine, got {cfg.schedule!r}")
        return cfg

    @classmethod
    def from_dict(cls, d: dict) -> TrainConfig:
        """From a config.json (other keys, such as lr_groups, ignored); bad values refused."""
        names = {f.name for f in fields(cls)}
        try:
            return build(cls, {k: v for k, v in d.items() if k in names}, source="config")
        except ParamError as e:
            raise UserError(str(e)) from None

    def as_dict(self) -> dict[str, Any]:
        return as_dict(self)


def method_fields(method: str) -> tuple[str, ...]:
    """Names of the fields that are flags of ``acmmg train METHOD``."""
    return tuple(f.name for f in fields(TrainConfig) if f.metadata.get("method") in (None, method))
