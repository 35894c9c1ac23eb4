"""SLIP (seeds/003): CLIP dual encoder + per-modality GAT over the batch subgraph, fused node
embedding Z, structural contrastive loss and an auxiliary classifier.

    L_total = L_clip (Eq. 1) + lambda_graph * L_graph (Eq. 5) + lambda_aux * L_aux (Eq. 6)

Two ways to get the per-node image / text embeddings E_v, E_t:
- full: an open_clip model encodes images and texts (fine-tuned end to end);
- frozen: the folder's precomputed CLIP embeddings, centred on their modality's train-split
  mean (a fixed shift, see ``SLIPModel``), each passed through a trainable linear adapter
  that starts as the identity (so an untrained model scores like the centred published
  embeddings). Only the adapters and graph heads train: fast, CPU-friendly.
Retrieval is evaluated on E_v / E_t; the graph path is training-time supervision.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

LOGIT_SCALE_MAX = 100.0  # CLIP clamps exp(logit_scale) at 100


class DenseGATLayer(nn.Module):
    """Graph attention (Velickovic et al.) over a dense batch adjacency, self loops added.

    Plain torch: attention scores for every (target i, source j) pair are masked by the
    adjacency, which is cheap at SLIP batch sizes (b <= 1024). Heads are concatenated.
    """

    def __init__(
        self, in_dim: int, out_dim: int, heads: int = 4, dropout: float = 0.1, slope: float = 0.2
    ):
        super().__init__()
        if out_dim % heads:
            raise ValueError(f"out_dim {out_dim} must be divisible by heads {heads}")
        self.heads, self.head_dim = heads, out_dim // heads
        self.lin = nn.Linear(in_dim, out_dim, bias=False)
        self.att_src = nn.Parameter(torch.empty(heads, self.head_dim))
        self.att_dst = nn.Parameter(torch.empty(heads, self.head_dim))
        self.bias = nn.Parameter(torch.zeros(out_dim))
        self.dropout = nn.Dropout(dropout)
        self.slope = slope
        nn.init.xavier_uniform_(self.lin.weight)
        nn.init.xavier_uniform_(self.att_src)
        nn.init.xavier_uniform_(self.att_dst)

    def forward(self, x: torch.Tensor, adj: torch.Tensor) -> torch.Tensor:
        b = x.shape[0]
        h = self.lin(self.dropout(x)).view(b, self.heads, self.head_dim)
        score_src = (h * self.att_src).sum(-1)  # [b, H]
        score_dst = (h * self.att_dst).sum(-1)
        e = F.leaky_relu(score_dst[:, None, :] + score_src[None, :, :], self.slope)  # [i, j, H]
        mask = adj.bool() | torch.eye(b, dtype=torch.bool, device=adj.device)
        e = e.masked_fill(~mask[:, :, None], float("-inf"))
        alpha = self.dropout(torch.softmax(e, dim=1))
        out = torch.einsum("ijh,jhd->ihd", alpha, h).reshape(b, -1)
        return out + self.bias


class GAT(nn.Module):
    """Two GAT layers (ELU between), as SLIP Eq. 3 applies per modality."""

    def __init__(self, in_dim: int, hidden: int = 512, heads: int = 4, dropout: float = 0.1):
        super().__init__()
        self.layers = nn.ModuleList(
            [
                DenseGATLayer(in_dim, hidden, heads, dropout),
                DenseGATLayer(hidden, hidden, heads, dropout),
            ]
        )

    def forward(self, x: torch.Tensor, adj: torch.Tensor) -> torch.Tensor:
        x = F.elu(self.layers[0](x, adj))
        return self.layers[1](x, adj)


class SLIPHead(nn.Module):
    """Graph components: GAT_V, GAT_T, fusion phi (Eq. 4) and the auxiliary classifier.

    With ``use_graph`` False (the CLIP fine-tune baseline) there is no GAT and the classifier
    reads the concatenated CLIP embeddings, as SLIP section 4.2 describes.
    """

    def __init__(
        self,
        embed_dim: int,
        num_classes: int,
        hidden: int = 512,
        heads: int = 4,
        dropout: float = 0.1,
        use_graph: bool = True,
        use_aux: bool = True,
    ):
        super().__init__()
        self.use_graph = use_graph
        if use_graph:
            self.gat_v = GAT(embed_dim, hidden, heads, dropout)
            self.gat_t = GAT(embed_dim, hidden, heads, dropout)
            # phi: one projection with a nonlinearity and normalisation; Z is L2-normalised after
            self.phi = nn.Sequential(
                nn.Linear(2 * hidden, embed_dim), nn.GELU(), nn.LayerNorm(embed_dim)
            )
        cls_in = embed_dim if use_graph else 2 * embed_dim
        self.classifier = nn.Linear(cls_in, num_classes) if use_aux and num_classes > 0 else None

    def forward(self, e_v: torch.Tensor, e_t: torch.Tensor, adj: torch.Tensor) -> dict:
        out: dict[str, torch.Tensor | None] = {"z": None, "class_logits": None}
        if self.use_graph:
            h = torch.cat([self.gat_v(e_v, adj), self.gat_t(e_t, adj)], dim=-1)
            out["z"] = F.normalize(self.phi(h), dim=-1)
            feats = out["z"]
        else:
            feats = torch.cat([e_v, e_t], dim=-1)
        if self.classifier is not None:
            out["class_logits"] = self.classifier(feats)
        return out


def identity_linear(dim: int, bias: bool = True) -> nn.Linear:
    """A d -> d linear map initialised to the identity (zero bias)."""
    lin = nn.Linear(dim, dim, bias=bias)
    with torch.no_grad():
        lin.weight.copy_(torch.eye(dim))
        if bias:
            lin.bias.zero_()
    return lin


class SLIPModel(nn.Module):
    """SLIP model. ``clip`` is an open_clip model (full mode) or None (frozen mode, inputs are
    precomputed embeddings of dimension ``embed_dim``).

    Frozen mode subtracts ``image_mean`` / ``text_mean`` (buffers, saved with the model) from
    the inputs before the adapters. Each modality's embeddings share one large common
    direction (CLIP's modality gap; with random-weight towers, almost all of the vector:
    cosine 0.99 between any two demo images), and the adapters would otherwise spend their
    first steps, at a learning rate meant for fine adjustment, only learning to remove it.
    """

    def __init__(
        self,
        clip: nn.Module | None,
        embed_dim: int,
        num_classes: int,
        hidden: int = 512,
        heads: int = 4,
        dropout: float = 0.1,
        use_graph: bool = True,
        use_aux: bool = True,
        image_mean: torch.Tensor | None = None,
        text_mean: torch.Tensor | None = None,
    ):
        super().__init__()
        self.clip = clip
        self.frozen = clip is None
        if self.frozen:
            # Frozen mode's trainable stand-ins for the encoders, starting as the identity.
            self.image_adapter = identity_linear(embed_dim)
            self.text_adapter = identity_linear(embed_dim)
            self.frozen_logit_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07)))
            zero = torch.zeros(embed_dim)
            self.register_buffer("image_mean", zero if image_mean is None else image_mean.float())
            self.register_buffer("text_mean", zero if text_mean is None else text_mean.float())
        self.head = SLIPHead(embed_dim, num_classes, hidden, heads, dropout, use_graph, use_aux)

    def head_parameters(self) -> list[nn.Parameter]:
        """Parameters that train at the graph learning rate (everything but the CLIP model)."""
        return [p for n, p in self.named_parameters() if not n.startswith("clip.")]

    def logit_scale(self) -> torch.Tensor:
        raw = self.frozen_logit_scale if self.frozen else self.clip.logit_scale
        return raw.exp().clamp(max=LOGIT_SCALE_MAX)

    def adapt_image(self, emb: torch.Tensor) -> torch.Tensor:
        """Frozen mode: E_v of published image embeddings (centred, then the adapter)."""
        return self.image_adapter(F.normalize(emb - self.image_mean, dim=-1))

    def adapt_text(self, emb: torch.Tensor) -> torch.Tensor:
        """Frozen mode: E_t of published text embeddings, or of any text the folder's model
        embedded (the zero-shot prompts)."""
        return self.text_adapter(F.normalize(emb - self.text_mean, dim=-1))

    def encode(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        """L2-normalised (E_v, E_t) of a batch."""
        if self.frozen:
            e_v = self.adapt_image(batch["image_emb"])
            e_t = self.adapt_text(batch["text_emb"])
        else:
            e_v = self.clip.encode_image(batch["images"])
            e_t = self.clip.encode_text(batch["tokens"])
        return F.normalize(e_v.float(), dim=-1), F.normalize(e_t.float(), dim=-1)

    def forward(self, batch: dict, adj: torch.Tensor) -> dict:
        e_v, e_t = self.encode(batch)
        out = self.head(e_v, e_t, adj)
        return {"e_v": e_v, "e_t": e_t, "logit_scale": self.logit_scale(), **out}


def clip_loss(e_v: torch.Tensor, e_t: torch.Tensor, logit_scale: torch.Tensor) -> torch.Tensor:
    """SLIP Eq. 1: symmetric InfoNCE, 1/2 [CE(Y_v, Y) + CE(Y_t, Y)], Y_v = s E_v E_t^T."""
    logits = logit_scale * e_v @ e_t.T
    target = torch.arange(e_v.shape[0], device=e_v.device)
    return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target))


def graph_loss(
    z: torch.Tensor, pos_mask: torch.Tensor, logit_scale: torch.Tensor, eps: float = 1e-8
) -> torch.Tensor:
    """SLIP Eq. 5: -1/(|M+| + eps) sum_ij M+_ij log softmax_j(S)_ij, S = Z Z^T / tau.

    The softmax runs over the whole row (k = 1..b, self included) as the equation writes it.
    """
    s = logit_scale * z @ z.T
    log_p = torch.log_softmax(s, dim=1)
    m = pos_mask.to(log_p.dtype)
    return -(m * log_p).sum() / (m.sum() + eps)


def aux_loss(class_logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """SLIP Eq. 6: mean cross-entropy of the auxiliary classifier."""
    return F.cross_entropy(class_logits, labels)


def _wide(x: torch.Tensor) -> torch.Tensor:
    """At least fp32: losses stay exact when the forward pass ran under bf16 autocast."""
    return x if x.dtype in (torch.float32, torch.float64) else x.float()


def slip_loss(
    out: dict,
    pos_mask: torch.Tensor,
    labels: torch.Tensor,
    lambda_graph: float = 0.05,
    lambda_aux: float = 0.1,
) -> tuple[torch.Tensor, dict[str, float]]:
    """SLIP Eq. 7. Returns the total and its parts (floats, for logging)."""
    scale = _wide(out["logit_scale"])
    parts = {"clip": clip_loss(_wide(out["e_v"]), _wide(out["e_t"]), scale)}
    total = parts["clip"]
    if lambda_graph and out.get("z") is not None:
        parts["graph"] = graph_loss(_wide(out["z"]), pos_mask, scale)
        total = total + lambda_graph * parts["graph"]
    if lambda_aux and out.get("class_logits") is not None:
        parts["aux"] = aux_loss(_wide(out["class_logits"]), labels)
        total = total + lambda_aux * parts["aux"]
    return total, {k: float(v.detach()) for k, v in parts.items()}
