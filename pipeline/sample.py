"""A seeded generator of realistic Amazon-Reviews-2023-format dumps (and their images).

Used by the demo category and by the tests: heavy-tailed user activity, Zipf-like item
popularity, shopping communities (so co-purchases repeat and a 5-core exists), a category
taxonomy with paths, titles and descriptions that fit their class, image URLs, and the
defects real dumps have: exact duplicate lines, malformed lines, items without a usable
title, description or image, and a placeholder image shared by many items.
"""

from __future__ import annotations

import gzip
import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline.io import atomic_path

# Top level -> sub-classes -> (nouns, adjectives). Two levels under the main category, so
# class selection has a real choice to make.
TAXONOMY: dict[str, dict[str, tuple[list[str], list[str]]]] = {
    "Audio": {
        "Headphones": (
            ["Headphones", "Earbuds", "Headset"],
            ["Wireless", "Noise Cancelling", "Over-Ear"],
        ),
        "Speakers": (["Speaker", "Soundbar", "Subwoofer"], ["Bluetooth", "Portable", "Waterproof"]),
    },
    "Computers": {
        "Keyboards": (["Keyboard", "Keypad", "Keycap Set"], ["Mechanical", "Ergonomic", "Backlit"]),
        "Mice": (["Mouse", "Trackball", "Mouse Pad"], ["Gaming", "Vertical", "Silent"]),
        "Storage": (["SSD", "Flash Drive", "Hard Drive"], ["External", "Portable", "High Speed"]),
    },
    "Cameras": {
        "Lenses": (["Lens", "Lens Filter", "Lens Hood"], ["Wide Angle", "Telephoto", "Macro"]),
        "Tripods": (["Tripod", "Monopod", "Gimbal"], ["Carbon Fiber", "Travel", "Compact"]),
    },
    "Phones": {
        "Cases": (["Phone Case", "Wallet Case", "Bumper"], ["Shockproof", "Slim", "Leather"]),
        "Chargers": (["Charger", "Charging Cable", "Power Bank"], ["Fast", "USB-C", "Magnetic"]),
        "Screen Protectors": (
            ["Screen Protector", "Privacy Film", "Glass Protector"],
            ["Tempered", "Anti-Glare", "Matte"],
        ),
    },
}
BRANDS = [
    "Acmeon",
    "Brightly",
    "Corvex",
    "Dynalo",
    "Everpeak",
    "Fionix",
    "Glimmer",
    "Hexa",
    "Ionis",
    "Jolt",
    "Kestrel",
    "Lumo",
    "Maveno",
    "Nordcraft",
    "Orbix",
    "Pulsar",
]
REVIEW_OPENERS = [
    "Works great",
    "Exactly as described",
    "Not bad for the price",
    "Stopped working",
    "Love it",
    "Decent quality",
    "Would buy again",
    "Disappointed",
    "Solid build",
]


@dataclass(frozen=True)
class SampleSpec:
    """Size and defect rates of a generated category."""

    category: str = "Demo"
    n_items: int = 600
    n_users: int = 6000
    group_size: int = 12  # shopping communities inside a leaf class
    mean_items_per_user: float = 4.0
    home_share: float = 0.65  # purchases from the user's own shopping community
    sibling_share: float = 0.2  # from a community of another class of the same top level
    duplicate_rate: float = 0.01
    malformed_rate: float = 0.004
    no_title_rate: float = 0.015
    no_description_rate: float = 0.015
    no_image_rate: float = 0.015
    placeholder_rate: float = 0.02
    broken_image_rate: float = 0.01


def leaf_classes() -> list[tuple[str, str]]:
    return [(top, sub) for top, subs in TAXONOMY.items() for sub in subs]


def _zipf_weights(n: int, s: float, rng: np.random.Generator) -> np.ndarray:
    w = (np.arange(1, n + 1, dtype=float)) ** -s
    return rng.permutation(w / w.sum())


def generate_sample(
    out: Path,
    base_url: str,
    seed: int = 0,
    spec: SampleSpec | None = None,
    images: bool = True,
) -> dict:
    """Write ``<Category>.jsonl.gz``, ``meta_<Category>.jsonl.gz`` and ``images/`` to ``out``.

    Image URLs are ``{base_url}/images/<file>``; serve ``out`` there. Returns a summary with
    the file paths and the planted defects.
    """
    spec = spec or SampleSpec()
    rng = np.random.default_rng(seed)
    out = Path(out)
    (out / "images").mkdir(parents=True, exist_ok=True)
    base_url = base_url.rstrip("/")
    leaves = leaf_classes()
    items = []
    for idx in range(spec.n_items):
        top, sub = leaves[idx % len(leaves)]
        nouns, adjs = TAXONOMY[top][sub]
        brand = BRANDS[rng.integers(len(BRANDS))]
        noun, adj = nouns[rng.integers(len(nouns))], adjs[rng.integers(len(adjs))]
        asin = f"B0{seed % 100:02d}{idx:06d}"
        title = f"{brand} {adj} {noun} {chr(65 + rng.integers(26))}{rng.integers(10, 999)}"
        items.append(
            {
                "asin": asin,
                "top": top,
                "sub": sub,
                "noun": noun,
                "adj": adj,
                "brand": brand,
                "title": title,
            }
        )
    # Communities: consecutive items of one leaf class form a shopping group.
    by_leaf: dict[tuple[str, str], list[int]] = {}
    for i, it in enumerate(items):
        by_leaf.setdefault((it["top"], it["sub"]), []).append(i)
    groups = [
        idxs[g : g + spec.group_size]
        for idxs in by_leaf.values()
        for g in range(0, len(idxs), spec.group_size)
    ]
    popularity = _zipf_weights(spec.n_items, 0.8, rng)
    defects = _plant_item_defects(items, spec, rng)
    meta_lines = [_meta_line(it, spec.category, base_url, defects, rng) for it in items]
    if images:
        _write_images(out, items, defects, seed)
    review_lines, n_reviews = _review_lines(items, groups, popularity, spec, rng)
    review_lines, planted = _add_line_defects(review_lines, spec, rng)
    reviews_path = out / f"{spec.category}.jsonl.gz"
    meta_path = out / f"meta_{spec.category}.jsonl.gz"
    _write_gz(reviews_path, review_lines)
    _write_gz(meta_path, meta_lines)
    return {
        "reviews": str(reviews_path),
        "meta": str(meta_path),
        "items": spec.n_items,
        "reviews_written": n_reviews,
        **planted,
        **{f"items_{k}": len(v) for k, v in defects.items()},
    }


def _plant_item_defects(items, spec: SampleSpec, rng) -> dict[str, set[str]]:
    asins = [it["asin"] for it in items]
    order = rng.permutation(len(asins))
    out: dict[str, set[str]] = {}
    start = 0
    for name, rate in [
        ("no_title", spec.no_title_rate),
        ("no_description", spec.no_description_rate),
        ("no_image", spec.no_image_rate),
        ("placeholder", spec.placeholder_rate),
        ("broken_image", spec.broken_image_rate),
    ]:
        n = int(round(rate * len(asins)))
        out[name] = {asins[i] for i in order[start : start + n]}
        start += n
    return out


def _meta_line(it: dict, category: str, base_url: str, defects, rng) -> str:
    asin = it["asin"]
    noun, adj = it["noun"], it["adj"]
    desc = [
        f"The {it['brand']} {noun.lower()} is a {adj.lower()} choice for everyday use.",
        f"Designed for {it['sub'].lower()} lovers who want reliable {it['top'].lower()} gear.",
    ]
    features = [f"{adj} design", f"Made by {it['brand']}"]
    if asin in defects["no_description"]:
        desc, features = [], []
    ext = ("jpg", "png", "webp")[int(asin[-1]) % 3] if asin[-1].isdigit() else "jpg"
    url = f"{base_url}/images/{asin}.{ext}"
    images = (
        []
        if asin in defects["no_image"]
        else [
            {
                "thumb": url.replace(f".{ext}", f"_thumb.{ext}"),
                "large": url,
                "variant": "MAIN",
                "hi_res": url if rng.random() < 0.5 else None,
            }
        ]
    )
    rec = {
        "main_category": category,
        "title": "" if asin in defects["no_title"] else it["title"],
        "average_rating": round(float(rng.uniform(3, 5)), 1),
        "rating_number": int(rng.integers(1, 500)),
        "features": features,
        "description": desc,
        "price": round(float(rng.uniform(5, 200)), 2),
        "images": images,
        "videos": [],
        "store": it["brand"],
        "categories": [category, it["top"], it["sub"]],
        "details": {"Brand": it["brand"]},
        "parent_asin": asin,
        "bought_together": None,
    }
    return json.dumps(rec)


def _write_images(out: Path, items, defects, seed: int) -> None:
    from pipeline.sample_images import render_item_image, render_placeholder

    placeholder = render_placeholder()
    for it in items:
        asin = it["asin"]
        if asin in defects["no_image"] or asin in defects["broken_image"]:
            continue  # broken: the URL 404s
        ext = ("jpg", "png", "webp")[int(asin[-1]) % 3]
        if asin in defects["placeholder"]:
            data = placeholder
        else:
            data, _ = render_item_image(asin, it["sub"], it["title"], seed)
        # The URL names the extension; the bytes are whatever the renderer produced, as on
        # real CDNs that serve WebP behind .jpg names.
        with atomic_path(out / "images" / f"{asin}.{ext}") as tmp:
            tmp.write_bytes(data)


def _review_lines(items, groups, popularity, spec: SampleSpec, rng) -> tuple[list[str], int]:
    # Heavy-tailed activity: lognormal body plus a few power users.
    sigma = 1.0
    mu = math.log(spec.mean_items_per_user) - sigma**2 / 2
    degrees = np.minimum(np.ceil(rng.lognormal(mu, sigma, spec.n_users)), 60).astype(int)
    power = rng.random(spec.n_users) < 0.003
    degrees[power] = rng.integers(60, 150, power.sum())
    group_pop = [popularity[g] / popularity[g].sum() for g in groups]
    top = [items[g[0]]["top"] for g in groups]
    leaf = [items[g[0]]["sub"] for g in groups]
    sibling_groups = [
        [h for h in range(len(groups)) if top[h] == top[g] and leaf[h] != leaf[g]]
        for g in range(len(groups))
    ]
    lines = []
    t0 = 1_600_000_000_000
    for u, d in enumerate(degrees):
        user = f"AG{u:08d}{'XYZ'[u % 3]}"
        home = rng.integers(len(groups))
        n_home = rng.binomial(d, spec.home_share)
        home_pick = rng.choice(
            groups[home], size=min(n_home, len(groups[home])), replace=False, p=group_pop[home]
        )
        # A second interest in a neighbouring class (a camera buyer also buys tripods), so
        # user clusters mix classes the way real shoppers do.
        siblings = sibling_groups[home]
        n_sib = rng.binomial(d - len(home_pick), spec.sibling_share / (1 - spec.home_share))
        sib_pick = np.array([], dtype=int)
        if siblings and n_sib:
            g = siblings[rng.integers(len(siblings))]
            sib_pick = rng.choice(
                groups[g], size=min(n_sib, len(groups[g])), replace=False, p=group_pop[g]
            )
        picked = np.concatenate([home_pick, sib_pick]).astype(int)
        other = rng.choice(len(items), size=d - len(picked), p=popularity)
        for i in np.unique(np.concatenate([picked, other]).astype(int)):
            it = items[i]
            rating = int(rng.integers(1, 6))
            lines.append(
                json.dumps(
                    {
                        "rating": float(rating),
                        "title": REVIEW_OPENERS[rng.integers(len(REVIEW_OPENERS))],
                        "text": f"{REVIEW_OPENERS[rng.integers(len(REVIEW_OPENERS))]}. This "
                        f"{it['noun'].lower()} is {it['adj'].lower()} and does the job.",
                        "images": [],
                        "asin": it["asin"],
                        "parent_asin": it["asin"],
                        "user_id": user,
                        "timestamp": int(t0 + rng.integers(0, 10**11)),
                        "helpful_vote": int(rng.poisson(1.0)),
                        "verified_purchase": bool(rng.random() < 0.9),
                    }
                )
            )
    return lines, len(lines)


def _add_line_defects(lines: list[str], spec: SampleSpec, rng) -> tuple[list[str], dict]:
    n = len(lines)
    dup_idx = rng.choice(n, size=int(spec.duplicate_rate * n), replace=False)
    bad = []
    n_bad = max(4, int(spec.malformed_rate * n))
    for j in range(n_bad):
        src = json.loads(lines[int(rng.integers(n))])
        kind = j % 4
        if kind == 0:
            bad.append(json.dumps(src)[:25])  # cut mid-record
        elif kind == 1:
            src.pop("user_id")
            bad.append(json.dumps(src))
        elif kind == 2:
            src["rating"] = "five"
            bad.append(json.dumps(src))
        else:
            src.pop("parent_asin")
            src.pop("asin")
            bad.append(json.dumps(src))
    out = lines + [lines[i] for i in dup_idx] + bad
    perm = rng.permutation(len(out))
    return [out[i] for i in perm], {"duplicate_lines": len(dup_idx), "malformed_lines": n_bad}


def _write_gz(path: Path, lines: list[str]) -> None:
    with atomic_path(path) as tmp:
        # No name and mtime 0 in the gzip header keep the file's sha256 deterministic (the
        # name would be the random temp file's).
        with (
            open(tmp, "wb") as raw,
            gzip.GzipFile(filename="", fileobj=raw, mode="wb", mtime=0) as f,
        ):
            f.write(("\n".join(lines) + "\n").encode())
