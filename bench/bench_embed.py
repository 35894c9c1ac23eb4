"""CLIP embedding throughput on CPU: the embed stage before and after, side by side.

ViT-B-32 with seeded random weights (no download: the same shapes and FLOPs as the real
weights, and the same arithmetic for the drift checks). Variants, alternated within each
repeat:
  - before: torch, bf16 weights, every text padded to 77 tokens, one pass per text kind
    (the embed stage until this change; its text loop is reproduced here as padded_texts);
  - trimmed: torch, bf16 weights, pipeline.clip.encode_texts (a part's three text kinds in
    one call: duplicates once, sorted by length, batches cut to their longest text);
  - product: what ``acmmg embed`` does on this CPU (runtime auto = OpenVINO, bf16) with the
    same text handling;
  - fp32: torch fp32, padded, per kind: the reference for the drift, timed once.
Per variant: images/s of the image tower on preprocessed batches, images/s end to end from
JPEG files (pipeline.clip.encode_images, DataLoader workers; not for fp32), texts/s for
titles (~20 tokens) and descriptions (~100 words, cut at 77 tokens) each on its own, and
nodes/s for the stage's four passes (image end to end + title, description, combined).
Drift against fp32: the smallest cosine per kind and the largest CLIP-T difference.

    .venv/bin/python bench/bench_embed.py [--nodes 96] [--repeats 3] [--json out.json]

Images are generated once into .cache/bench-embed-<n>/ (512 px JPEG q90, the image store's
size class).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import resource
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFilter

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pipeline import clip  # noqa: E402

MODEL = "ViT-B-32"
WORDS = (
    "wireless portable premium compact speaker cable lamp mug chair charger with for and "
    "bluetooth usb-c 4k hdmi adapter pack of 2 black stainless steel 65w fast ultra slim"
).split()


def make_images(n: int) -> list[Path]:
    out = ROOT / ".cache" / f"bench-embed-{n}"
    paths = [out / f"{i:05d}.jpg" for i in range(n)]
    if all(p.exists() for p in paths):
        return paths
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for p in paths:
        w, h = 512, int(rng.integers(384, 513))
        base = rng.integers(0, 256, (h // 8, w // 8, 3), dtype=np.uint8)
        im = Image.fromarray(base).resize((w, h), Image.BICUBIC)
        d = ImageDraw.Draw(im)
        for _ in range(6):
            x, y = (int(v) for v in rng.integers(0, 400, 2))
            s = int(rng.integers(30, 160))
            d.ellipse([x, y, x + s, y + s], fill=tuple(int(c) for c in rng.integers(0, 256, 3)))
        im = im.filter(ImageFilter.GaussianBlur(1))
        buf = io.BytesIO()
        im.save(buf, format="JPEG", quality=90)
        p.write_bytes(buf.getvalue())
    return paths


def make_texts(n: int) -> dict[str, list[str]]:
    """Titles of 8-20 words (~20 tokens), descriptions of ~100 words (always cut at 77
    tokens, as long real descriptions are) and their combination, as the stage builds it."""
    rng = np.random.default_rng(1)
    titles = [" ".join(rng.choice(WORDS, int(rng.integers(8, 21)))) for _ in range(n)]
    descs = [" ".join(rng.choice(WORDS, 100)) for _ in range(n)]
    combined = [f"{t} {d}" for t, d in zip(titles, descs, strict=True)]
    return {"title": titles, "description": descs, "combined": combined}


@torch.no_grad()
def padded_texts(cm: clip.ClipModel, texts: list[str], batch: int) -> np.ndarray:
    """The embed stage's text loop before this change: input order, padded to 77 tokens."""
    outs = []
    for s in range(0, len(texts), batch):
        tokens = cm.tokenizer(texts[s : s + batch])
        with cm.autocast():
            f = cm.model.encode_text(tokens)
        outs.append(torch.nn.functional.normalize(f.float(), dim=-1).numpy())
    return np.concatenate(outs)


def image_tower(cm: clip.ClipModel, pixels: torch.Tensor, batch: int) -> np.ndarray:
    outs = [cm.image_features(pixels[s : s + batch]) for s in range(0, len(pixels), batch)]
    return torch.nn.functional.normalize(torch.cat(outs), dim=-1).numpy()


def timed(fn) -> tuple[float, object]:
    t = time.perf_counter()
    out = fn()
    return time.perf_counter() - t, out


def run_variant(name, cm, paths, pixels, texts, args) -> tuple[dict, dict]:
    """One measurement of every figure; returns (seconds by figure, outputs by kind)."""
    n = len(paths)
    kinds = list(texts)
    t, out = {}, {}
    t["image_model"], out["image"] = timed(lambda: image_tower(cm, pixels, args.batch))
    padded = name in ("before", "fp32")
    for k in kinds:
        enc = padded_texts if padded else clip.encode_texts
        t[k], out[k] = timed(lambda k=k, enc=enc: enc(cm, texts[k], args.text_batch))
    if name == "fp32":
        return t, out
    t["image_e2e"], _ = timed(lambda: clip.encode_images(cm, paths, args.batch, args.workers))
    if padded:  # one pass per kind, as before
        t["texts_stage"] = sum(t[k] for k in kinds)
    else:  # the stage's one call over a part's three kinds
        every = [s for k in kinds for s in texts[k]]
        t["texts_stage"], both = timed(lambda: clip.encode_texts(cm, every, args.text_batch))
        assert np.array_equal(both[:n], out["title"])  # the same bytes as the title pass
    t["node"] = t["image_e2e"] + t["texts_stage"]
    return t, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nodes", type=int, default=96)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--batch", type=int, default=64, help="image batch (product default)")
    ap.add_argument("--text-batch", type=int, default=256, help="text batch (product default)")
    ap.add_argument("--workers", type=int, default=2, help="decode workers (product default)")
    ap.add_argument("--model", default=MODEL, help="acmmg-tiny for a smoke run")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()

    paths = make_images(args.nodes)
    texts = make_texts(args.nodes)
    cpu = torch.device("cpu")
    auto = clip.resolve_precision("auto", cpu)
    t0 = time.perf_counter()
    models = {
        "before": clip.load_model(
            args.model, None, device="cpu", precision="bf16", runtime="torch"
        ),
        "trimmed": clip.load_model(
            args.model, None, device="cpu", precision="bf16", runtime="torch"
        ),
        "product": clip.load_model(args.model, None, device="cpu", runtime="auto"),
        "fp32": clip.load_model(args.model, None, device="cpu", precision="fp32", runtime="torch"),
    }
    load_s = time.perf_counter() - t0
    tok = models["fp32"].tokenizer
    mean_tokens = {k: float((tok(v).argmax(-1) + 1).float().mean()) for k, v in texts.items()}
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, load average "
        f"{os.getloadavg()[0]:.1f}, product: {models['product'].runtime} {auto}, "
        f"models loaded in {load_s:.0f} s, mean tokens {mean_tokens}",
        flush=True,
    )
    pre = models["fp32"].preprocess
    pixels = torch.stack([pre(Image.open(p).convert("RGB")) for p in paths])
    for cm in models.values():  # warm-up: first-call allocations, kernels for each shape
        image_tower(cm, pixels[: args.batch], args.batch)
        clip.encode_texts(cm, texts["title"][:8] + texts["description"][:8], 8)
        if cm is not models["fp32"]:  # the decode workers' fork server starts here
            clip.encode_images(cm, paths[:4], 4, args.workers)
    secs: dict[str, dict[str, list[float]]] = {v: {} for v in models}
    outs: dict[str, dict[str, np.ndarray]] = {}
    loads = []
    for r in range(args.repeats):
        for name, cm in models.items():
            if name == "fp32" and r:
                continue
            t, outs[name] = run_variant(name, cm, paths, pixels, texts, args)
            for key, v in t.items():
                secs[name].setdefault(key, []).append(v)
            loads.append(os.getloadavg()[0])
            print(f"repeat {r} {name}: " + ", ".join(f"{k} {v:.1f}s" for k, v in t.items()))
    n = args.nodes
    ref = outs["fp32"]
    res = {}
    for name in models:
        med = {k: statistics.median(v) for k, v in secs[name].items()}
        o = outs[name]
        res[name] = {
            "img_model": n / med["image_model"],
            "img_e2e": n / med["image_e2e"] if "image_e2e" in med else None,
            "title": n / med["title"],
            "description": n / med["description"],
            "node": n / med["node"] if "node" in med else None,
            "cos_min": {k: float(np.sum(o[k] * ref[k], 1).min()) for k in o},
            "dclip_t_max": max(
                float(np.abs(clip.clip_t(o["image"], o[k]) - clip.clip_t(ref["image"], ref[k])).max())
                for k in ("title", "description")
            ),
        }  # fmt: skip
    base = res["before"]
    print(
        f"\n### {args.model}, {n} nodes, median of {args.repeats} (fp32 once), load average "
        f"{min(loads):.1f}-{max(loads):.1f}, peak RSS "
        f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.1f} GB\n"
    )
    print(
        "| variant | image tower img/s | end-to-end img/s | titles/s | descriptions/s "
        "| nodes/s (4 passes) | vs before (img tower / titles / descs / nodes) "
        "| min cos vs fp32 (img / title / desc / comb) | max abs dCLIP-T |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for name, x in res.items():

        def f(v):
            return "-" if v is None else f"{v:.1f}"

        ratios = " / ".join(
            "-" if x[k] is None else f"{x[k] / base[k]:.2f}x"
            for k in ("img_model", "title", "description", "node")
        )
        cos = " / ".join(
            f"{x['cos_min'][k]:.5f}" for k in ("image", "title", "description", "combined")
        )
        print(
            f"| {name} | {f(x['img_model'])} | {f(x['img_e2e'])} | {f(x['title'])} "
            f"| {f(x['description'])} | {f(x['node'])} | {ratios} | {cos} "
            f"| {x['dclip_t_max']:.3f} |"
        )  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps({"results": res, "seconds": secs}, indent=2) + "\n")


if __name__ == "__main__":
    main()
