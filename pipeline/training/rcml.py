"""RCML (seeds/004): relation-conditioned attention pooling over CLIP token features and the
relation-conditioned contrastive loss with cross-modal and intra-modal terms.

Features (Eq. 3-6). Text tokens H_T are the text transformer's outputs after ln_final,
projected by text_projection (the EOT token is exactly CLIP's text embedding); image tokens
H_I are the ViT outputs after ln_post and proj (the CLS token is CLIP's image embedding),
then a residual MLP (Eq. 3) whose last layer starts at zero. For a condition c (relation text
e_ij, embedded by the text encoder's EOT token as h_E):

    q   = (W_Q h_E)^T (W_K H) / sqrt(d)                     Eq. 6
    A   = (1 - beta) softmax(q) + beta B                    Eq. 5, see below
    z   = Norm(A (W_V H)^T W_o)                             Eq. 4

B is the one-hot summary-token vector (EOT for text, CLS for images) for intra-sample pairs
and zero for inter-sample pairs. The paper writes Eq. 5 as softmax((1-beta) q + beta B) and
states that beta = 1 reduces A to selecting the summary token (its Remark: CLIP as a special
case); a softmax over a 0/1 vector does not select one token, so the mix is taken in
probability space, which makes that reduction exact. For inter-sample pairs B = 0 and the
L2 normalisation makes A = softmax(q). W_V and W_o start as the identity, so an untrained
model with beta = 1 and no relations scores exactly like the CLIP model it wraps.

Loss (Eq. 1-2): L = (L_txt-img + L_img-txt) / 2 + lambda (L_txt-txt + L_img-img), each term
an InfoNCE over positive pairs (i, j) in P under condition e_ij, the positive contrasted with
the batch samples not related to i (N(i)). Cross-modal terms use intra- and inter-sample
pairs; the intra-modal terms use inter-sample pairs only (an intra-sample text-text pair would
compare a feature with itself). Terms are means over their pairs.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from pipeline.errors import UserError
from pipeline.training.slip import identity_linear


def text_token_features(clip: nn.Module, tokens: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """(features [b, L, d], valid [b, L] bool, summary index [b]) of an open_clip CLIP model."""
    if not hasattr(clip, "token_embedding") or not hasattr(clip, "ln_final"):
        raise UserError("RCML needs an open_clip CLIP model with its own text transformer")
    cast = clip.transformer.get_cast_dtype()
    x = clip.token_embedding(tokens).to(cast) + clip.positional_embedding.to(cast)
    x = clip.transformer(x, attn_mask=clip.attn_mask)
    x = clip.ln_final(x)
    proj = clip.text_projection
    if proj is not None:
        x = proj(x) if isinstance(proj, nn.Linear) else x @ proj
    pool = getattr(clip, "text_pool_type", "argmax")
    positions = torch.arange(tokens.shape[1], device=tokens.device)
    if pool == "argmax":  # the EOT token has the highest id in CLIP's vocabulary
        summary = tokens.argmax(dim=-1)
    elif pool == "eos":
        summary = (tokens == clip.text_eos_id).int().argmax(dim=-1)
    elif pool == "last":
        summary = torch.full_like(tokens[:, 0], tokens.shape[1] - 1)
    else:
        raise UserError(f"RCML: unsupported text pooling {pool!r}")
    # Causal text transformer: tokens after the summary token are padding.
    valid = positions[None, :] <= summary[:, None]
    return x, valid, summary


def image_token_features(clip: nn.Module, images: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """(features [b, 1 + patches, d], valid, summary index = 0) of an open_clip ViT."""
    v = clip.visual
    plain = (
        hasattr(v, "_embeds")
        and getattr(v, "attn_pool", None) is None
        and not getattr(v, "final_ln_after_pool", False)
        and getattr(v, "pool_type", None) == "tok"
    )
    if not plain:
        raise UserError("RCML needs an open_clip ViT image tower with class-token pooling")
    x = v.transformer(v._embeds(images))
    x = v.ln_post(x)
    if v.proj is not None:
        x = x @ v.proj
    b, n = x.shape[:2]
    valid = torch.ones(b, n, dtype=torch.bool, device=x.device)
    summary = torch.zeros(b, dtype=torch.long, device=x.device)
    return x, valid, summary


class ResidualMLP(nn.Module):
    """H + fc2(gelu(fc1(H))) with fc2 = 0 at start: the image-token MLP of Eq. 3."""

    def __init__(self, dim: int, hidden: int | None = None):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden or dim)
        self.fc2 = nn.Linear(hidden or dim, dim)
        nn.init.zeros_(self.fc2.weight)
        nn.init.zeros_(self.fc2.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.fc2(F.gelu(self.fc1(x)))


class RelationAttentionPool(nn.Module):
    """Eq. 4-6, shared by both modalities (the image tokens are already in the text space)."""

    def __init__(self, dim: int):
        super().__init__()
        self.dim = dim
        self.w_q = nn.Linear(dim, dim, bias=False)
        self.w_k = nn.Linear(dim, dim, bias=False)
        self.w_v = identity_linear(dim, bias=False)
        self.w_o = identity_linear(dim, bias=False)

    def attention(
        self,
        tokens: torch.Tensor,
        valid: torch.Tensor,
        summary: torch.Tensor,
        rel: torch.Tensor,
        intra: torch.Tensor,
        beta: float,
    ) -> torch.Tensor:
        """A [C, b, L] for C conditions (rel [C, d], intra [C] bool) and b samples."""
        q = self.w_q(rel)  # [C, d]
        k = self.w_k(tokens)  # [b, L, d]
        logits = torch.einsum("cd,bld->cbl", q, k) / math.sqrt(self.dim)
        logits = logits.masked_fill(~valid[None], float("-inf"))
        # softmax in at least fp32 (autocast may hand us bf16 logits)
        wide = torch.promote_types(logits.dtype, torch.float32)
        a = torch.softmax(logits.to(wide), dim=-1).to(tokens.dtype)
        onehot = F.one_hot(summary, tokens.shape[1]).to(a.dtype)  # [b, L]
        mixed = (1.0 - beta) * a + beta * onehot[None]
        return torch.where(intra.bool()[:, None, None], mixed, a)

    def forward(
        self,
        tokens: torch.Tensor,
        valid: torch.Tensor,
        summary: torch.Tensor,
        rel: torch.Tensor,
        intra: torch.Tensor,
        beta: float,
    ) -> torch.Tensor:
        """z [C, b, d], L2-normalised: every sample under every condition."""
        a = self.attention(tokens, valid, summary, rel, intra, beta)
        pooled = torch.einsum("cbl,bld->cbd", a, self.w_v(tokens))
        return F.normalize(self.w_o(pooled), dim=-1)


class RCMLModel(nn.Module):
    """open_clip CLIP + image-token MLP + relation-conditioned attention pooling.

    ``frozen`` keeps the CLIP encoders fixed (RCML's "Frozen CLIP" ablation): only the MLP and
    the attention module train, and the encoders run without gradients.
    """

    def __init__(self, clip: nn.Module, embed_dim: int, beta: float = 0.6, frozen: bool = False):
        super().__init__()
        if not 0.0 <= beta <= 1.0:
            raise ValueError(f"beta must be in [0, 1], got {beta}")
        self.clip = clip
        self.beta = float(beta)
        self.frozen = frozen
        self.image_mlp = ResidualMLP(embed_dim)
        self.pool = RelationAttentionPool(embed_dim)
        if frozen:
            for p in self.clip.parameters():
                p.requires_grad_(False)

    def train(self, mode: bool = True) -> RCMLModel:
        super().train(mode)
        if self.frozen:
            self.clip.eval()
        return self

    def head_parameters(self) -> list[nn.Parameter]:
        return [p for n, p in self.named_parameters() if not n.startswith("clip.")]

    def tokens(self, images: torch.Tensor, tokens: torch.Tensor) -> dict[str, tuple]:
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.frozen):
            img = image_token_features(self.clip, images)
            txt = text_token_features(self.clip, tokens)
        img = (self.image_mlp(img[0].float()), img[1], img[2])
        return {"image": img, "text": (txt[0].float(), txt[1], txt[2])}

    def relation_embeddings(self, rel_tokens: torch.Tensor) -> torch.Tensor:
        """h_E: the text encoder's EOT embedding of each relation text, [C, d]."""
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.frozen):
            return self.clip.encode_text(rel_tokens).float()

    def conditioned(
        self, feats: dict[str, tuple], rel: torch.Tensor, intra: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(z_text, z_image), each [C, b, d]."""
        z_t = self.pool(*feats["text"], rel, intra, self.beta)
        z_i = self.pool(*feats["image"], rel, intra, self.beta)
        return z_t, z_i


def relation_infonce(
    za: torch.Tensor, zb: torch.Tensor, pairs: torch.Tensor, related: torch.Tensor, tau: float
) -> torch.Tensor:
    """Eq. 2 for one direction x -> y, averaged over pairs.

    za, zb: [C, b, d] features of modality x and y under each condition; pairs: [P, 3] rows
    (i, j, c): anchor i, positive j, condition c; related: [b, b] bool, True where two samples
    are paired under some relation (diagonal included). The denominator holds the positive and
    N(i) = the samples not related to i.
    """
    if pairs.numel() == 0:
        return za.new_zeros(())
    i, j, c = pairs[:, 0], pairs[:, 1], pairs[:, 2]
    sims = torch.einsum("cid,ckd->cik", za, zb) / tau  # [C, b, b]
    rows = sims[c, i]  # [P, b]
    allowed = ~related[i]
    allowed[torch.arange(len(j), device=j.device), j] = True
    logits = rows.masked_fill(~allowed, float("-inf"))
    pos = rows[torch.arange(len(j), device=j.device), j]
    return (torch.logsumexp(logits, dim=1) - pos).mean()


def rcml_loss(
    z_t: torch.Tensor,
    z_i: torch.Tensor,
    cross_pairs: torch.Tensor,
    inter_pairs: torch.Tensor,
    related: torch.Tensor,
    tau: float = 0.1,
    lam: float = 0.5,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Eq. 1: (L_ti + L_it) / 2 + lam (L_tt + L_ii). Returns the total and its parts."""
    parts = {
        "txt-img": relation_infonce(z_t, z_i, cross_pairs, related, tau),
        "img-txt": relation_infonce(z_i, z_t, cross_pairs, related, tau),
    }
    total = (parts["txt-img"] + parts["img-txt"]) / 2
    if lam and inter_pairs.numel():
        parts["txt-txt"] = relation_infonce(z_t, z_t, inter_pairs, related, tau)
        parts["img-img"] = relation_infonce(z_i, z_i, inter_pairs, related, tau)
        total = total + lam * (parts["txt-txt"] + parts["img-img"])
    return total, {k: float(v.detach()) for k, v in parts.items()}


def batch_pairs(rel_b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, list[int]]:
    """Positive pairs of one batch from its relation matrix.

    rel_b: [b, b] int, symmetric, relation id + 1 where an edge with a relation joins two
    batch samples and 0 elsewhere. Condition 0 is the intra-sample relation; conditions 1..
    are the batch's distinct relation ids, sorted. Returns (cross_pairs: intra + inter pairs,
    inter_pairs: both directions of every edge, relation ids of conditions 1..).
    """
    b = rel_b.shape[0]
    rel_ids = sorted(int(r) - 1 for r in torch.unique(rel_b[rel_b > 0]).tolist())
    cond_of = {r: k + 1 for k, r in enumerate(rel_ids)}
    ii, jj = torch.nonzero(rel_b > 0, as_tuple=True)
    keep = ii != jj
    ii, jj = ii[keep], jj[keep]
    cond = torch.tensor([cond_of[int(r) - 1] for r in rel_b[ii, jj].tolist()], dtype=torch.long)
    inter = torch.stack([ii, jj, cond], dim=1) if len(ii) else torch.zeros(0, 3, dtype=torch.long)
    idx = torch.arange(b)
    intra = torch.stack([idx, idx, torch.zeros(b, dtype=torch.long)], dim=1)
    return torch.cat([intra, inter]), inter, rel_ids
