"""One training step's loss for each method (SLIP Eq. 7, RCML Eq. 1) on a batch of nodes."""

from __future__ import annotations

import torch

from pipeline.training.data import batch_adjacency, batch_relations, positive_mask
from pipeline.training.rcml import RCMLModel, batch_pairs, rcml_loss
from pipeline.training.run import Run
from pipeline.training.slip import slip_loss


def slip_step(run: Run, batch: dict) -> tuple[torch.Tensor, dict[str, float]]:
    adj = batch_adjacency(run.data.adjacency(), batch["nodes"]).to(run.device)
    labels = torch.as_tensor(run.data.labels[batch["nodes"]], device=run.device)
    with run.autocast():
        out = run.model(batch, adj)
    pos = positive_mask(adj, run.cfg.hops)
    return slip_loss(out, pos, labels, run.cfg.lambda_graph, run.cfg.lambda_aux)


def relation_tokens(run: Run, rel_ids: list[int], intra: bool) -> torch.Tensor:
    texts = ([run.data.intra_text] if intra else []) + [run.data.relation_texts[r] for r in rel_ids]
    return run.tokenizer(texts).to(run.device)


def rcml_step(run: Run, batch: dict) -> tuple[torch.Tensor, dict[str, float]]:
    nodes = batch["nodes"]
    related = batch_adjacency(run.data.adjacency(), nodes)
    related |= torch.eye(len(nodes), dtype=torch.bool)
    cross, inter, rel_ids = batch_pairs(batch_relations(run.data.relation_matrix(), nodes))
    model: RCMLModel = run.model
    with run.autocast():
        feats = model.tokens(batch["images"], batch["tokens"])
        rel = model.relation_embeddings(relation_tokens(run, rel_ids, intra=True))
        intra = torch.zeros(len(rel_ids) + 1, dtype=torch.bool, device=run.device)
        intra[0] = True
        z_t, z_i = model.conditioned(feats, rel, intra)
    dev = run.device
    return rcml_loss(
        z_t.float(),
        z_i.float(),
        cross.to(dev),
        inter.to(dev),
        related.to(dev),
        run.cfg.tau,
        run.cfg.lambda_intra,
    )
