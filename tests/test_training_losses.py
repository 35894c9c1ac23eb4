"""SLIP and RCML losses against direct, loop-by-loop implementations of the papers' formulas,
and CLIP as a special case of both."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from pipeline.training.rcml import (
    RCMLModel,
    RelationAttentionPool,
    batch_pairs,
    rcml_loss,
    relation_infonce,
)
from pipeline.training.slip import (
    DenseGATLayer,
    SLIPModel,
    aux_loss,
    clip_loss,
    graph_loss,
    slip_loss,
)
from tests.training_fixtures import one_torch_thread  # noqa: F401


def _unit(*shape: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return F.normalize(torch.randn(*shape, generator=g, dtype=torch.float64), dim=-1)


# ---------------------------------------------------------------- SLIP


def _clip_direct(ev: torch.Tensor, et: torch.Tensor, tau: float) -> float:
    n = len(ev)
    l_vt = (
        -sum(
            math.log(
                math.exp(ev[i] @ et[i] / tau) / sum(math.exp(ev[i] @ et[j] / tau) for j in range(n))
            )
            for i in range(n)
        )
        / n
    )
    l_tv = (
        -sum(
            math.log(
                math.exp(ev[j] @ et[j] / tau) / sum(math.exp(ev[i] @ et[j] / tau) for i in range(n))
            )
            for j in range(n)
        )
        / n
    )
    return 0.5 * (l_vt + l_tv)


def test_clip_loss_is_eq1():
    ev, et = _unit(6, 5, seed=1), _unit(6, 5, seed=2)
    for tau in (0.07, 0.5, 1.0):
        got = clip_loss(ev, et, torch.tensor(1 / tau, dtype=torch.float64))
        assert float(got) == pytest.approx(_clip_direct(ev, et, tau), rel=1e-9)


def test_graph_loss_is_eq5():
    z = _unit(5, 4, seed=3)
    m = torch.zeros(5, 5, dtype=torch.bool)
    for i, j in [(0, 1), (1, 0), (1, 2), (2, 1), (3, 4), (4, 3)]:
        m[i, j] = True
    tau, eps = 0.2, 1e-8
    total = 0.0
    for i in range(5):
        denom = sum(math.exp(float(z[i] @ z[k]) / tau) for k in range(5))
        for j in range(5):
            if m[i, j]:
                total += math.log(math.exp(float(z[i] @ z[j]) / tau) / denom)
    expect = -total / (6 + eps)
    got = graph_loss(z, m, torch.tensor(1 / tau, dtype=torch.float64), eps=eps)
    assert float(got) == pytest.approx(expect, rel=1e-9)
    # no positives: 0, not NaN
    assert float(graph_loss(z, torch.zeros(5, 5, dtype=torch.bool), torch.tensor(5.0))) == 0.0


def test_aux_loss_is_eq6():
    g = torch.Generator().manual_seed(4)
    logits = torch.randn(4, 3, generator=g, dtype=torch.float64)
    y = torch.tensor([0, 2, 1, 2])
    expect = (
        -sum(
            math.log(math.exp(logits[i, y[i]]) / sum(math.exp(logits[i, c]) for c in range(3)))
            for i in range(4)
        )
        / 4
    )
    assert float(aux_loss(logits, y)) == pytest.approx(expect, rel=1e-9)


def test_slip_total_is_eq7_and_clip_special_case():
    ev, et, z = _unit(5, 4, seed=5), _unit(5, 4, seed=6), _unit(5, 4, seed=7)
    logits = _unit(5, 3, seed=8)
    y = torch.tensor([0, 1, 2, 0, 1])
    pos = torch.zeros(5, 5, dtype=torch.bool)
    pos[0, 1] = pos[1, 0] = True
    s = torch.tensor(1 / 0.07, dtype=torch.float64)
    out = {"e_v": ev, "e_t": et, "z": z, "class_logits": logits, "logit_scale": s}
    total, parts = slip_loss(out, pos, y, lambda_graph=0.05, lambda_aux=0.1)
    expect = clip_loss(ev, et, s) + 0.05 * graph_loss(z, pos, s) + 0.1 * aux_loss(logits, y)
    assert float(total) == pytest.approx(float(expect), rel=1e-12)
    assert set(parts) == {"clip", "graph", "aux"}
    # CLIP as a special case: no graph loss, no auxiliary loss
    total, parts = slip_loss(out, pos, y, lambda_graph=0.0, lambda_aux=0.0)
    assert float(total) == pytest.approx(float(clip_loss(ev, et, s)), rel=1e-12)
    assert set(parts) == {"clip"}


def test_gat_layer_matches_loop_definition():
    torch.manual_seed(0)
    layer = DenseGATLayer(6, 8, heads=2, dropout=0.5).double().eval()
    x = torch.randn(5, 6, dtype=torch.float64)
    adj = torch.zeros(5, 5, dtype=torch.bool)
    for i, j in [(0, 1), (1, 2), (2, 3)]:  # node 4 is isolated
        adj[i, j] = adj[j, i] = True
    got = layer(x, adj)
    h = (x @ layer.lin.weight.T).view(5, 2, 4)
    for i in range(5):
        nbrs = [j for j in range(5) if adj[i, j] or i == j]
        for hd in range(2):
            e = torch.stack(
                [
                    F.leaky_relu(layer.att_dst[hd] @ h[i, hd] + layer.att_src[hd] @ h[j, hd], 0.2)
                    for j in nbrs
                ]
            )
            alpha = torch.softmax(e, 0)
            want = sum(a * h[j, hd] for a, j in zip(alpha, nbrs, strict=True))
            want = want + layer.bias.view(2, 4)[hd]
            assert torch.allclose(got[i].view(2, 4)[hd], want, atol=1e-12)


# ---------------------------------------------------------------- RCML


def _infonce_direct(za, zb, pairs, related, tau) -> float:
    b = za.shape[1]
    terms = []
    for i, j, c in pairs.tolist():
        num = math.exp(float(za[c, i] @ zb[c, j]) / tau)
        negs = [k for k in range(b) if not related[i, k]]  # N(i): not related to i
        den = num + sum(math.exp(float(za[c, i] @ zb[c, k]) / tau) for k in negs)
        terms.append(-math.log(num / den))
    return sum(terms) / len(terms)


def test_rcml_loss_is_eq1_eq2():
    b, C = 5, 3
    z_t, z_i = _unit(C, b, 4, seed=9), _unit(C, b, 4, seed=10)
    rel_b = torch.zeros(b, b, dtype=torch.long)
    for i, j, r in [(0, 1, 4), (1, 2, 7), (3, 4, 4)]:  # relation ids 4 and 7 -> conditions 1, 2
        rel_b[i, j] = rel_b[j, i] = r + 1
    cross, inter, rel_ids = batch_pairs(rel_b)
    assert rel_ids == [4, 7]
    assert len(cross) == b + 6 and len(inter) == 6
    assert {tuple(p) for p in inter.tolist()} >= {(0, 1, 1), (1, 0, 1), (1, 2, 2), (4, 3, 1)}
    related = (rel_b > 0) | torch.eye(b, dtype=torch.bool)
    tau, lam = 0.1, 0.5
    l_ti = _infonce_direct(z_t, z_i, cross, related, tau)
    l_it = _infonce_direct(z_i, z_t, cross, related, tau)
    l_tt = _infonce_direct(z_t, z_t, inter, related, tau)
    l_ii = _infonce_direct(z_i, z_i, inter, related, tau)
    total, parts = rcml_loss(z_t, z_i, cross, inter, related, tau=tau, lam=lam)
    assert parts["txt-img"] == pytest.approx(l_ti, rel=1e-9)
    assert parts["img-txt"] == pytest.approx(l_it, rel=1e-9)
    assert parts["txt-txt"] == pytest.approx(l_tt, rel=1e-9)
    assert parts["img-img"] == pytest.approx(l_ii, rel=1e-9)
    assert float(total) == pytest.approx((l_ti + l_it) / 2 + lam * (l_tt + l_ii), rel=1e-9)
    assert float(relation_infonce(z_t, z_i, torch.zeros(0, 3, dtype=torch.long), related, tau)) == 0


def test_relation_pooling_is_eq4_to_eq6():
    torch.manual_seed(1)
    d, L = 4, 5
    pool = RelationAttentionPool(d).double()
    with torch.no_grad():  # arbitrary (non-identity) projections for the check
        for lin in (pool.w_q, pool.w_k, pool.w_v, pool.w_o):
            lin.weight.copy_(torch.randn(d, d, dtype=torch.float64))
    H = torch.randn(2, L, d, dtype=torch.float64)  # two samples, L tokens each
    valid = torch.tensor([[True] * 5, [True, True, True, False, False]])
    summary = torch.tensor([4, 2])
    rel = torch.randn(2, d, dtype=torch.float64)  # condition 0: inter, condition 1: intra
    intra = torch.tensor([False, True])
    for beta in (0.0, 0.6, 1.0):
        z = pool(H, valid, summary, rel, intra, beta)
        for c in range(2):
            for s in range(2):
                n = int(valid[s].sum())
                Hs = H[s, :n].T  # d x n, columns are tokens
                q = (pool.w_q.weight @ rel[c]) @ (pool.w_k.weight @ Hs) / math.sqrt(d)  # Eq. 6
                a = torch.softmax(q, 0)
                if intra[c]:  # Eq. 5, B = one-hot summary token
                    B = F.one_hot(summary[s], n).double()
                    a = (1 - beta) * a + beta * B
                zz = a @ (pool.w_v.weight @ Hs).T @ pool.w_o.weight.T  # Eq. 4 (W_o acts on rows)
                zz = zz / zz.norm()
                assert torch.allclose(z[c, s], zz, atol=1e-10), (beta, c, s)


@pytest.fixture(scope="module")
def tiny_clip():
    from pipeline.clip import load_model

    cm = load_model("acmmg-tiny", pretrained=None, device="cpu", precision="fp32", seed=0)
    return cm


def test_clip_is_a_special_case_of_rcml(tiny_clip):
    """beta = 1, no relations, only cross-modal self pairs: the RCML loss is the CLIP loss."""
    torch.manual_seed(0)
    model = RCMLModel(tiny_clip.model, tiny_clip.embed_dim, beta=1.0).eval()
    images = torch.randn(4, 3, 64, 64)
    tokens = tiny_clip.tokenizer(["a red lamp", "green mug", "blue chair for the office", "hat"])
    tau = 0.1
    with torch.no_grad():
        feats = model.tokens(images, tokens)
        rel = model.relation_embeddings(tiny_clip.tokenizer(["the same product"]))
        z_t, z_i = model.conditioned(feats, rel, torch.tensor([True]))
        cross, inter, rel_ids = batch_pairs(torch.zeros(4, 4, dtype=torch.long))
        assert rel_ids == [] and len(inter) == 0
        got, parts = rcml_loss(z_t, z_i, cross, inter, torch.eye(4, dtype=torch.bool), tau, lam=0.5)
        e_v = F.normalize(tiny_clip.model.encode_image(images), dim=-1)
        e_t = F.normalize(tiny_clip.model.encode_text(tokens), dim=-1)
        want = clip_loss(e_v, e_t, torch.tensor(1 / tau))
    assert set(parts) == {"txt-img", "img-txt"}
    assert torch.allclose(z_i[0], e_v, atol=1e-5) and torch.allclose(z_t[0], e_t, atol=1e-5)
    assert float(got) == pytest.approx(float(want), abs=1e-5)


def test_clip_is_a_special_case_of_slip(tiny_clip):
    """No graph loss, no auxiliary loss: SLIP's objective is CLIP's on the same encoders."""
    model = SLIPModel(
        tiny_clip.model, tiny_clip.embed_dim, num_classes=0, use_graph=False, use_aux=False
    ).eval()
    batch = {"images": torch.randn(3, 3, 64, 64), "tokens": tiny_clip.tokenizer(["a", "b c", "d"])}
    with torch.no_grad():
        out = model(batch, torch.zeros(3, 3, dtype=torch.bool))
        total, parts = slip_loss(out, torch.zeros(3, 3, dtype=torch.bool), torch.zeros(3).long())
        e_v = F.normalize(tiny_clip.model.encode_image(batch["images"]), dim=-1)
        e_t = F.normalize(tiny_clip.model.encode_text(batch["tokens"]), dim=-1)
        want = clip_loss(e_v, e_t, tiny_clip.model.logit_scale.exp())
    assert parts == {"clip": pytest.approx(float(want), abs=1e-6)}
    assert float(total) == pytest.approx(float(want), abs=1e-6)
