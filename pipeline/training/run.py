"""A built training run: configuration, data, model and device, made once from a config."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from pipeline.errors import UserError
from pipeline.training.config import DEFAULT_MODEL, DEFAULT_PRETRAINED, TrainConfig
from pipeline.training.data import CategoryData, TarImages, load_category, load_embeddings
from pipeline.training.rcml import RCMLModel
from pipeline.training.slip import SLIPModel

log = logging.getLogger(__name__)


def resolve_device(device: str = "auto") -> torch.device:
    """pipeline.clip's device rule, with its refusal as a user error."""
    from pipeline.clip import resolve_device as clip_device

    try:
        return clip_device(device)
    except ValueError as e:
        raise UserError(str(e)) from e


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


@dataclass
class Run:
    """Everything a training or evaluation loop needs, built once from a config."""

    cfg: TrainConfig
    data: CategoryData
    model: nn.Module
    device: torch.device
    tokenizer: Any = None
    preprocess_train: Any = None
    preprocess_val: Any = None
    images: TarImages | None = None
    emb_image: torch.Tensor | None = None
    emb_text: torch.Tensor | None = None

    def autocast(self) -> contextlib.AbstractContextManager:
        if self.device.type == "cuda" and self.model_uses_clip:
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    @property
    def model_uses_clip(self) -> bool:
        return getattr(self.model, "clip", None) is not None


def _embedding_model(root: Path) -> tuple[str, str | None] | None:
    """(model, pretrained tag) that made a published folder's embeddings, from its manifest."""
    try:
        params = json.loads((root / "manifest.json").read_text()).get("params") or {}
    except (OSError, ValueError, AttributeError):
        return None
    model = params.get("model")
    if not isinstance(model, str) or not model:
        return None
    pretrained = params.get("pretrained")
    return model, pretrained if isinstance(pretrained, str) and pretrained else None


def resolve_model(cfg: TrainConfig, root: Path) -> TrainConfig:
    """Fill in the CLIP model: the papers' ViT-B-32 with OpenAI weights unless a model or
    weights are given; for SLIP --frozen, the model that made the folder's embeddings (its
    text tower embeds the zero-shot prompts), or none when the manifest does not say."""
    if cfg.model is not None or cfg.checkpoint is not None:
        return dataclasses.replace(cfg, model=cfg.model or DEFAULT_MODEL)
    if cfg.method == "slip" and cfg.frozen:
        made = _embedding_model(root)
        if made is None:
            return cfg
        return dataclasses.replace(cfg, model=made[0], pretrained=made[1])
    return dataclasses.replace(
        cfg, model=DEFAULT_MODEL, pretrained=cfg.pretrained or DEFAULT_PRETRAINED
    )


def load_clip_model(cfg: TrainConfig, device: torch.device):
    """pipeline.clip.load_model for the run's model, its failures as one-line user errors."""
    from pipeline import clip as pclip

    # open_clip logs every loading step (and its download failure) on the root logger; the
    # failure comes back as our own error line, so keep those logs for -v only.
    root = logging.getLogger()
    level = root.level
    if level > logging.DEBUG:
        root.setLevel(logging.CRITICAL)
    try:
        return pclip.load_model(
            cfg.model,
            pretrained=cfg.pretrained,
            checkpoint=cfg.checkpoint,
            device=str(device),
            precision="fp32",
            seed=cfg.seed,
        )
    except RuntimeError as e:
        if "download" not in str(e).lower():
            raise UserError(f"cannot load CLIP model {cfg.model!r}: {e}") from e
        raise UserError(
            f"cannot load the {cfg.model} weights {cfg.pretrained!r}: not in the local cache "
            "and they cannot be downloaded (offline?); pass local weights with --checkpoint "
            "PATH (an open_clip weights file with --model, or a model folder with "
            "open_clip_config.json), or --model acmmg-tiny for random test weights"
        ) from None
    except (ValueError, FileNotFoundError) as e:
        raise UserError(f"cannot load CLIP model {cfg.model!r}: {e}") from e
    finally:
        root.setLevel(level)


def _load_clip(cfg: TrainConfig, device: torch.device):
    import open_clip
    from open_clip.model import get_model_preprocess_cfg
    from open_clip.transform import PreprocessCfg, image_transform_v2

    if cfg.pretrained is None and cfg.checkpoint is None:
        if open_clip.list_pretrained_tags_by_model(cfg.model):
            log.warning("%s without --pretrained or --checkpoint: random weights", cfg.model)
    cm = load_clip_model(cfg, device)
    net = cm.model
    if cfg.grad_checkpointing:
        net.set_grad_checkpointing(True)
    pp = PreprocessCfg(**get_model_preprocess_cfg(net))
    return net, cm.embed_dim, cm.tokenizer, image_transform_v2(pp, is_train=True), cm.preprocess


def build_run(cfg: TrainConfig) -> Run:
    cfg = cfg.resolved()
    device = resolve_device(cfg.device)
    _seed_everything(cfg.seed)
    data = load_category(cfg.data)
    cfg = resolve_model(cfg, data.root)
    if data.num_nodes < 4:
        raise UserError(f"{cfg.data}: only {data.num_nodes} nodes, too few to train")
    if cfg.method == "slip" and cfg.frozen:
        emb_image = load_embeddings(data.root, "image")
        emb_text = load_embeddings(data.root, cfg.text_field)
        for name, e in (("image", emb_image), (cfg.text_field, emb_text)):
            if e.shape[0] != data.num_nodes:
                raise UserError(f"{name} embeddings have {e.shape[0]} rows, nodes {data.num_nodes}")
        if emb_image.shape[1] != emb_text.shape[1]:
            raise UserError("image and text embeddings differ in dimension")
        means = {}
        if cfg.frozen_center:
            train = torch.as_tensor(data.nodes("train"))
            means = {"image_mean": emb_image[train].mean(0), "text_mean": emb_text[train].mean(0)}
        model = _slip_model(cfg, None, emb_image.shape[1], data.num_classes, **means)
        return Run(cfg, data, model.to(device), device, emb_image=emb_image, emb_text=emb_text)
    if cfg.method == "rcml" and (not data.relation_texts or not (data.relation_id >= 0).any()):
        raise UserError(
            f"{cfg.data}: RCML needs relations (relations.json and edges.parquet "
            "relation_id); build the category with the relations stage"
        )
    images = TarImages(data.root / "images.tar")
    images.check(data.asins)
    net, dim, tokenizer, pp_train, pp_val = _load_clip(cfg, device)
    if cfg.method == "slip":
        model = _slip_model(cfg, net, dim, data.num_classes)
    else:
        model = RCMLModel(net, dim, beta=cfg.beta, frozen=cfg.frozen)
    return Run(cfg, data, model.to(device), device, tokenizer, pp_train, pp_val, images)


def _slip_model(cfg: TrainConfig, net, dim: int, num_classes: int, **means) -> SLIPModel:
    return SLIPModel(
        net,
        dim,
        num_classes,
        **means,
        hidden=cfg.gat_hidden,
        heads=cfg.gat_heads,
        dropout=cfg.dropout,
        use_graph=cfg.lambda_graph > 0,
        use_aux=cfg.lambda_aux > 0,
    )
