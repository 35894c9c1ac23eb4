"""Deterministic product-like images for the sample data set.

Each image carries its item's class (a class-specific shape and hue, varied per item) and a
key word of its title drawn as text, so that image-text alignment is learnable on the demo
category and the CLIP-T filter has something to judge. Sizes, aspect ratios and formats (JPEG
baseline/progressive/EXIF-rotated, PNG RGB/RGBA/palette, WebP) vary per item so that the image
stage sees the variety of a real crawl. Same arguments => same bytes (for one Pillow version).
"""

from __future__ import annotations

import colorsys
import hashlib
import io
import math
import random
import re

from PIL import Image, ImageDraw, ImageFont

SHAPES = (
    "circle",
    "square",
    "triangle",
    "diamond",
    "star",
    "hexagon",
    "ring",
    "cross",
    "stripes",
    "dots",
)

_STOPWORDS = frozenset(
    """a an and are as at by for from in into is it of on or the to with without new pack set
    pcs piece pieces size color colour black white inch inches cm mm ft lbs oz x""".split()
)
_CLAUSE = re.compile(r"\s(?:with|for|by|from|in|and)\s|[,;:(\[|]|\s-\s", re.IGNORECASE)
_WORD = re.compile(r"[A-Za-z][A-Za-z0-9'\-]*[A-Za-z0-9]|[A-Za-z]")

# Item formats, cumulative probabilities: most real product images are JPEG.
_FORMATS = (
    (0.62, "jpg"),
    (0.72, "jpg-progressive"),
    (0.77, "jpg-exif-rotated"),
    (0.85, "png"),
    (0.89, "png-rgba"),
    (0.92, "png-palette"),
    (1.00, "webp"),
)


def _digest(*parts: object) -> int:
    h = hashlib.sha256("\x1f".join(str(p) for p in parts).encode()).digest()
    return int.from_bytes(h[:8], "big")


def class_style(class_name: str) -> tuple[str, float]:
    """The (shape, hue in [0, 1)) of a class: stable across runs and machines."""
    h = _digest("class", class_name)
    return SHAPES[h % len(SHAPES)], ((h >> 16) % 3600) / 3600.0


def key_word(title: str) -> str:
    """The word of a title drawn on its image: the head noun, i.e. the last word before any
    "with/for/..." clause that is neither a stop word nor holds a digit (model numbers)."""

    def usable(w: str) -> bool:
        return w.lower() not in _STOPWORDS and not any(c.isdigit() for c in w)

    head = _CLAUSE.split(title or "", maxsplit=1)[0]
    words = [w for w in _WORD.findall(head) if usable(w)] or [
        w for w in _WORD.findall(title or "") if usable(w)
    ]
    if not words:
        return "Item"
    w = words[-1][:16]
    return w[0].upper() + w[1:]


def _rgb(hue: float, sat: float, val: float) -> tuple[int, int, int]:
    r, g, b = colorsys.hsv_to_rgb(hue % 1.0, sat, val)
    return int(r * 255), int(g * 255), int(b * 255)


def _polygon(cx: float, cy: float, r: float, n: int, rot: float) -> list[tuple[float, float]]:
    return [
        (cx + r * math.cos(rot + 2 * math.pi * i / n), cy + r * math.sin(rot + 2 * math.pi * i / n))
        for i in range(n)
    ]


def _draw_shape(
    d: ImageDraw.ImageDraw,
    shape: str,
    cx: float,
    cy: float,
    r: float,
    fill: tuple[int, int, int],
    rot: float,
) -> None:
    box = (cx - r, cy - r, cx + r, cy + r)
    if shape == "circle":
        d.ellipse(box, fill=fill)
    elif shape == "square":
        d.polygon(_polygon(cx, cy, r * 1.2, 4, rot + math.pi / 4), fill=fill)
    elif shape == "triangle":
        d.polygon(_polygon(cx, cy, r * 1.2, 3, rot - math.pi / 2), fill=fill)
    elif shape == "diamond":
        d.polygon(
            [(cx, cy - r * 1.2), (cx + r * 0.7, cy), (cx, cy + r * 1.2), (cx - r * 0.7, cy)],
            fill=fill,
        )
    elif shape == "star":
        pts = []
        for i in range(10):
            rr = r * (1.2 if i % 2 == 0 else 0.5)
            a = rot - math.pi / 2 + math.pi * i / 5
            pts.append((cx + rr * math.cos(a), cy + rr * math.sin(a)))
        d.polygon(pts, fill=fill)
    elif shape == "hexagon":
        d.polygon(_polygon(cx, cy, r * 1.1, 6, rot), fill=fill)
    elif shape == "ring":
        d.ellipse(box, outline=fill, width=max(2, int(r * 0.3)))
    elif shape == "cross":
        w = r * 0.35
        d.rectangle((cx - w, cy - r, cx + w, cy + r), fill=fill)
        d.rectangle((cx - r, cy - w, cx + r, cy + w), fill=fill)
    elif shape == "stripes":
        w = max(2, int(r * 0.22))
        for k in range(-2, 3):
            x = cx + k * 2 * w
            d.rectangle((x - w / 2, cy - r, x + w / 2, cy + r), fill=fill)
    elif shape == "dots":
        s = r * 0.28
        for i in range(3):
            for j in range(3):
                x, y = cx + (i - 1) * r * 0.7, cy + (j - 1) * r * 0.7
                d.ellipse((x - s, y - s, x + s, y + s), fill=fill)
    else:  # pragma: no cover - SHAPES is closed
        raise ValueError(f"unknown shape {shape!r}")


def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    # Pillow's bundled scalable font: no system font files, so rendering is reproducible.
    return ImageFont.load_default(size=size)


def render_scene(
    asin: str,
    class_name: str,
    title: str,
    seed: int = 0,
    size: tuple[int, int] | None = None,
    noise: float = 0.0,
) -> Image.Image:
    """The RGB picture of one item (before encoding). ``noise`` in [0, 1] adds photo-like
    texture (the benchmark uses it to get realistic JPEG sizes)."""
    rng = random.Random(_digest("item", seed, asin))
    shape, hue = class_style(class_name)
    if size is None:
        long_side = rng.randint(320, 1200)
        aspect = rng.uniform(0.7, 1.4)
        w, h = (
            (long_side, int(long_side / aspect))
            if aspect >= 1
            else (int(long_side * aspect), long_side)
        )
    else:
        w, h = size
    bg = _rgb(hue + rng.uniform(-0.05, 0.05), rng.uniform(0.0, 0.08), rng.uniform(0.93, 1.0))
    im = Image.new("RGB", (w, h), bg)
    d = ImageDraw.Draw(im)
    m = min(w, h)
    # One large main shape plus a few small satellites of the same class style.
    main_r = m * rng.uniform(0.22, 0.32)
    cx, cy = w * rng.uniform(0.35, 0.65), h * rng.uniform(0.30, 0.45)
    col = _rgb(hue + rng.uniform(-0.03, 0.03), rng.uniform(0.6, 0.95), rng.uniform(0.55, 0.9))
    _draw_shape(d, shape, cx, cy, main_r, col, rng.uniform(0, math.pi))
    for _ in range(rng.randint(0, 3)):
        r = m * rng.uniform(0.05, 0.1)
        x, y = w * rng.uniform(0.1, 0.9), h * rng.uniform(0.1, 0.6)
        col2 = _rgb(hue + rng.uniform(-0.05, 0.05), rng.uniform(0.4, 0.9), rng.uniform(0.4, 0.9))
        _draw_shape(d, shape, x, y, r, col2, rng.uniform(0, math.pi))
    # The title's key word, large, in the lower part, in a dark shade of the class hue.
    word = key_word(title)
    fsize = max(12, int(min(w / (0.62 * len(word) + 1), h * 0.16)))
    font = _font(fsize)
    left, top, right, bottom = d.textbbox((0, 0), word, font=font)
    tx = (w - (right - left)) / 2 - left
    ty = h * 0.78 - (bottom - top) / 2 - top
    d.text((tx, ty), word, font=font, fill=_rgb(hue, 0.7, rng.uniform(0.15, 0.3)))
    if noise > 0:
        # Texture plus a soft gradient, like a photographed product: JPEG sizes near real ones.
        tex = Image.effect_noise((w, h), 64).convert("RGB")
        im = Image.blend(im, tex, min(1.0, noise) * 0.25)
        grad = Image.linear_gradient("L").resize((w, h)).convert("RGB")
        im = Image.blend(im, grad, min(1.0, noise) * 0.08)
    return im


def _pick_format(rng: random.Random) -> str:
    u = rng.random()
    for p, name in _FORMATS:
        if u < p:
            return name
    return "jpg"


def encode_scene(im: Image.Image, fmt: str, quality: int) -> tuple[bytes, str]:
    """Encode a rendered scene in one of the sample formats; returns (bytes, extension)."""
    buf = io.BytesIO()
    if fmt == "jpg":
        im.save(buf, "JPEG", quality=quality)
        return buf.getvalue(), "jpg"
    if fmt == "jpg-progressive":
        im.save(buf, "JPEG", quality=quality, progressive=True)
        return buf.getvalue(), "jpg"
    if fmt == "jpg-exif-rotated":
        # Stored turned 90 degrees counter-clockwise; EXIF orientation 6 turns it upright.
        exif = Image.Exif()
        exif[0x0112] = 6
        im.transpose(Image.Transpose.ROTATE_90).save(buf, "JPEG", quality=quality, exif=exif)
        return buf.getvalue(), "jpg"
    if fmt == "png":
        im.save(buf, "PNG")
        return buf.getvalue(), "png"
    if fmt == "png-rgba":
        # Near-white background made transparent, as on many product cut-outs.
        rgba = im.convert("RGBA")
        mask = im.convert("L").point(lambda v: 0 if v >= 235 else 255)
        rgba.putalpha(mask)
        rgba.save(buf, "PNG")
        return buf.getvalue(), "png"
    if fmt == "png-palette":
        im.quantize(colors=64, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE).save(
            buf, "PNG"
        )
        return buf.getvalue(), "png"
    if fmt == "webp":
        im.save(buf, "WEBP", quality=quality, method=4)
        return buf.getvalue(), "webp"
    raise ValueError(f"unknown sample image format {fmt!r}")


def render_item_image(
    asin: str,
    class_name: str,
    title: str,
    seed: int = 0,
    *,
    size: tuple[int, int] | None = None,
    fmt: str | None = None,
    quality: int | None = None,
    noise: float = 0.0,
) -> tuple[bytes, str]:
    """Render the image of one sample item: deterministic (bytes, extension).

    The extension is "jpg", "png" or "webp". ``size``, ``fmt`` (one of the encode_scene
    formats), ``quality`` and ``noise`` override the per-item random choices (benchmarks).
    """
    rng = random.Random(_digest("format", seed, asin))
    fmt = fmt or _pick_format(rng)
    q = quality if quality is not None else rng.randint(80, 95)
    im = render_scene(asin, class_name, title, seed=seed, size=size, noise=noise)
    return encode_scene(im, fmt, q)


def render_placeholder() -> bytes:
    """The "image not available" JPEG many shops serve for items without a photo."""
    w = h = 500
    im = Image.new("RGB", (w, h), (238, 238, 238))
    d = ImageDraw.Draw(im)
    # A simple camera glyph.
    d.rounded_rectangle((170, 150, 330, 260), radius=14, outline=(170, 170, 170), width=8)
    d.rectangle((215, 130, 285, 150), fill=(170, 170, 170))
    d.ellipse((215, 170, 285, 240), outline=(170, 170, 170), width=8)
    font = _font(34)
    for text, y in (("image", 300), ("not available", 345)):
        left, top, right, bottom = d.textbbox((0, 0), text, font=font)
        d.text(((w - (right - left)) / 2 - left, y - top), text, font=font, fill=(150, 150, 150))
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=85)
    return buf.getvalue()
