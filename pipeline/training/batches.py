"""Model inputs for a sampler's batches: precomputed embeddings (SLIP --frozen) or images from
images.tar and tokenised texts, on the run's device."""

from __future__ import annotations

import numpy as np
import torch

from pipeline.training.data import NodeImageText
from pipeline.training.run import Run


class _Collate:
    """Stack images and tokenise texts (a class, so DataLoader workers can pickle it)."""

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer

    def __call__(self, items: list) -> dict:
        ids, imgs, texts = zip(*items, strict=True)
        return {
            "nodes": list(ids),
            "images": torch.stack(imgs),
            "tokens": self.tokenizer(list(texts)),
        }


def _worker_init(_: int) -> None:
    torch.set_num_threads(1)


def _image_text_loader(run: Run, batch_sampler, train: bool) -> torch.utils.data.DataLoader:
    ds = NodeImageText(
        run.data,
        run.images,
        run.preprocess_train if train else run.preprocess_val,
        run.cfg.text_field,
    )
    return torch.utils.data.DataLoader(
        ds,
        batch_sampler=batch_sampler,
        collate_fn=_Collate(run.tokenizer),
        num_workers=run.cfg.num_workers,
        worker_init_fn=_worker_init if run.cfg.num_workers else None,
        pin_memory=run.device.type == "cuda",
    )


def batches(run: Run, sampler, train: bool):
    """Yield batch dicts (node ids + model inputs on the device) for the sampler's batches."""
    if run.emb_image is not None:
        for nodes in sampler:
            idx = torch.as_tensor(nodes)
            yield {
                "nodes": list(nodes),
                "image_emb": run.emb_image[idx].to(run.device),
                "text_emb": run.emb_text[idx].to(run.device),
            }
        return
    for batch in _image_text_loader(run, sampler, train):
        batch["images"] = batch["images"].to(run.device, non_blocking=True)
        batch["tokens"] = batch["tokens"].to(run.device, non_blocking=True)
        yield batch


def chunks(nodes: np.ndarray, size: int) -> list[list[int]]:
    return [nodes[s : s + size].tolist() for s in range(0, len(nodes), size)]
