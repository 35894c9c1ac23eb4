"""CLIP embedding throughput on CPU: plain fp32 against what the product does, side by side.

For each model (the tiny test config and ViT-B-32, both with seeded random weights: no
download) and each precision (fp32; bf16 autocast; weights in bf16, the product's CPU default
where the CPU has native bf16), measures
  - images/s of the model alone on preprocessed batches,
  - images/s end to end from JPEG files (pipeline.clip.encode_images, DataLoader workers),
  - texts/s (77-token texts, pipeline.clip.encode_texts),
and how close each variant stays to fp32: the smallest cosine between an fp32 embedding and
the variant's, and the largest CLIP-T difference (points of 100 x cosine). Runs alternate
between precisions; medians are reported, with ratios to fp32.

    .venv/bin/python bench/bench_embed.py [--images 128] [--texts 512] [--repeats 3]
        [--models acmmg-tiny ViT-B-32] [--json out.json]

Images are generated once into .cache/bench-embed-<n>/ (512 px JPEG q90, the image store's
size class).
"""

from __future__ import annotations

import argparse
import io
import json
import os
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

PRECISIONS = ["fp32", "amp-bf16", "bf16"]


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


def make_texts(n: int) -> list[str]:
    rng = np.random.default_rng(1)
    words = "wireless portable premium compact speaker cable lamp mug chair charger with for and".split()
    # About 100 words: always truncated at the 77-token context, as real descriptions are.
    return [" ".join(rng.choice(words, 100)) for _ in range(n)]


def timed(fn) -> tuple[float, object]:
    t = time.perf_counter()
    out = fn()
    return time.perf_counter() - t, out


@torch.no_grad()
def model_only(cm: clip.ClipModel, pixels: torch.Tensor, batch: int) -> np.ndarray:
    outs = []
    for s in range(0, len(pixels), batch):
        x = pixels[s : s + batch].to(cm.device, dtype=cm.input_dtype)
        with cm.autocast():
            f = cm.model.encode_image(x)
        outs.append(torch.nn.functional.normalize(f.float(), dim=-1).numpy())
    return np.concatenate(outs)


def bench_model(name: str, paths: list[Path], texts: list[str], repeats: int, args) -> dict:
    models = {p: clip.load_model(name, None, device="cpu", precision=p) for p in PRECISIONS}
    pre = models["fp32"].preprocess
    pixels = torch.stack([pre(Image.open(p).convert("RGB")) for p in paths])
    times: dict[str, dict[str, list[float]]] = {
        p: {"model": [], "e2e": [], "text": []} for p in PRECISIONS
    }
    outs: dict[str, dict[str, np.ndarray]] = {p: {} for p in PRECISIONS}
    for cm in models.values():  # warm-up (first-call allocations, oneDNN kernels)
        model_only(cm, pixels[: args.batch], args.batch)
        clip.encode_texts(cm, texts[:8], 8)
    for _ in range(repeats):
        for p, cm in models.items():
            t, outs[p]["image"] = timed(lambda cm=cm: model_only(cm, pixels, args.batch))
            times[p]["model"].append(len(paths) / t)
            t, (e2e, _) = timed(
                lambda cm=cm: clip.encode_images(cm, paths, args.batch, args.workers)
            )
            times[p]["e2e"].append(len(paths) / t)
            t, outs[p]["text"] = timed(lambda cm=cm: clip.encode_texts(cm, texts, args.text_batch))
            times[p]["text"].append(len(texts) / t)
    ref = outs["fp32"]
    k = min(len(paths), len(texts))
    ref_t = clip.clip_t(ref["image"][:k], ref["text"][:k])
    res = {}
    for p in PRECISIONS:
        o = outs[p]
        res[p] = {key: statistics.median(v) for key, v in times[p].items()}
        res[p]["cos_min_image"] = float(np.sum(o["image"] * ref["image"], 1).min())
        res[p]["cos_min_text"] = float(np.sum(o["text"] * ref["text"], 1).min())
        res[p]["clip_t_absdiff_max"] = float(
            np.abs(clip.clip_t(o["image"][:k], o["text"][:k]) - ref_t).max()
        )
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=128)
    ap.add_argument("--texts", type=int, default=512)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--batch", type=int, default=64, help="image batch (product default)")
    ap.add_argument("--text-batch", type=int, default=256, help="text batch (product default)")
    ap.add_argument("--workers", type=int, default=2, help="decode workers (product default)")
    ap.add_argument("--models", nargs="+", default=[clip.TINY_MODEL, "ViT-B-32"])
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()

    paths = make_images(args.images)
    texts = make_texts(args.texts)
    auto = clip.resolve_precision("auto", torch.device("cpu"))
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"load average {os.getloadavg()[0]:.1f}, product CPU precision: {auto}"
    )
    results = {}
    for name in args.models:
        results[name] = r = bench_model(name, paths, texts, args.repeats, args)
        print(f"\n### {name} ({args.images} images, {args.texts} texts, median of {args.repeats})")
        print(
            "| precision | model img/s | end-to-end img/s | texts/s | ratio img (model / e2e) "
            "| ratio texts | min cos vs fp32 (img / text) | max abs dCLIP-T |"
        )
        print("|---|---|---|---|---|---|---|---|")
        base = r["fp32"]
        for p in PRECISIONS:
            x = r[p]
            mark = " (product)" if p == auto else ""
            print(
                f"| {p}{mark} | {x['model']:.1f} | {x['e2e']:.1f} | {x['text']:.1f} "
                f"| {x['model'] / base['model']:.2f}x / {x['e2e'] / base['e2e']:.2f}x "
                f"| {x['text'] / base['text']:.2f}x "
                f"| {x['cos_min_image']:.5f} / {x['cos_min_text']:.5f} "
                f"| {x['clip_t_absdiff_max']:.3f} |"
            )  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()
