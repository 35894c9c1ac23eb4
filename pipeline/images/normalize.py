"""Decode, verify and normalise one downloaded image to an RGB JPEG.

Steps: open with an allow-list of formats; refuse more than ``max_pixels`` before decoding
(decompression bombs); refuse originals under the minimum size; decode fully (a truncated
file fails here); apply the EXIF orientation; convert to RGB (CMYK, palette, alpha over
white, 16-bit and float greys scaled to 8 bits); shrink so the longer side is at most
``max_side``; encode JPEG at a fixed quality. For JPEGs the decoder's DCT scaling
(Image.draft) decodes big originals at 1/2, 1/4 or 1/8 size, never below the target size,
which is where most of the speed over a naive decode-then-resize comes from.
"""

from __future__ import annotations

import functools
import io
import struct
import zlib
from dataclasses import dataclass

from PIL import Image, ImageOps, UnidentifiedImageError

from .config import ImageConfig

_FILTERS = {
    "lanczos": Image.Resampling.LANCZOS,
    "bicubic": Image.Resampling.BICUBIC,
    "hamming": Image.Resampling.HAMMING,
    "bilinear": Image.Resampling.BILINEAR,
    "box": Image.Resampling.BOX,
}
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, struct.error, zlib.error)
_SWAPS_AXES = (5, 6, 7, 8)  # EXIF orientations that turn the image by 90 degrees


class Rejected(Exception):
    """An image that fails a check; ``status`` is the row status."""

    def __init__(self, status: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass
class Normalized:
    jpeg: bytes
    width: int
    height: int
    orig_width: int  # after EXIF orientation
    orig_height: int
    dhash: str  # 64-bit difference hash, hex


def _orientation(im: Image.Image) -> int:
    try:
        return int(im.getexif().get(0x0112, 1) or 1)
    except Exception:  # a broken EXIF block is not a broken image
        return 1


def _gray16_to_8(im: Image.Image) -> Image.Image:
    import numpy as np

    a = np.asarray(im)
    if im.mode == "F":
        a = np.nan_to_num(a.astype(np.float64))
        a = a * 255.0 if a.size and a.max() <= 1.0 else a
        out = np.clip(a, 0, 255).astype(np.uint8)
    elif im.mode.startswith("I;16"):
        out = (a.astype(np.uint32) >> 8).astype(np.uint8)
    else:  # "I": 32-bit ints, usually a widened 8- or 16-bit image
        a = a.astype(np.int64)
        top = int(a.max()) if a.size else 0
        if top <= 255:
            out = np.clip(a, 0, 255).astype(np.uint8)
        elif top <= 65535:
            out = (np.clip(a, 0, 65535) >> 8).astype(np.uint8)
        else:
            out = (np.clip(a, 0, None) * 255 // top).astype(np.uint8)
    return Image.fromarray(out)


def to_rgb(im: Image.Image) -> Image.Image:
    """RGB version of any mode; transparency is flattened onto white (like product pages)."""
    if im.mode == "RGB":
        return im
    if im.mode in ("I", "F") or im.mode.startswith("I;16"):
        im = _gray16_to_8(im)
    if im.mode == "P":
        im = im.convert("RGBA" if "transparency" in im.info else "RGB")
    elif im.mode in ("LA", "La", "PA", "RGBa") or (
        im.mode in ("L", "RGB") and "transparency" in im.info
    ):
        im = im.convert("RGBA")
    if im.mode == "RGBA":
        bg = Image.new("RGB", im.size, (255, 255, 255))
        bg.paste(im, mask=im.getchannel("A"))
        return bg
    try:
        return im.convert("RGB")
    except ValueError as e:
        raise Rejected("unsupported_mode", f"cannot convert mode {im.mode} to RGB: {e}") from None


def dhash(im: Image.Image) -> str:
    """64-bit difference hash: 1 bit per horizontally adjacent pixel pair of a 9x8 grey."""
    g = im.convert("L").resize((9, 8), Image.Resampling.BOX).tobytes()
    bits = 0
    for y in range(8):
        row = g[y * 9 : y * 9 + 9]
        for x in range(8):
            bits = (bits << 1) | (row[x] > row[x + 1])
    return f"{bits:016x}"


def target_size(width: int, height: int, max_side: int) -> tuple[int, int]:
    """Size after shrinking so the longer side is at most ``max_side`` (never enlarged)."""
    scale = min(1.0, max_side / max(width, height))
    return max(1, round(width * scale)), max(1, round(height * scale))


@functools.lru_cache(maxsize=8)
def _formats(allowed: tuple[str, ...]) -> list[str]:
    # Image.open(formats=...) fails on names whose plugin is not loaded yet: load all, filter.
    Image.init()
    return [f for f in allowed if f.upper() in Image.OPEN]


def normalize_image(data: bytes, config: ImageConfig) -> Normalized:
    """Verify and normalise one image; raises Rejected with the row status on failure."""
    cfg = config
    if not data:
        raise Rejected("not_image", "empty body")
    try:
        im = Image.open(io.BytesIO(data), formats=_formats(cfg.allowed_formats))
    except Image.DecompressionBombError as e:
        raise Rejected("decompression_bomb", str(e)) from None
    except UnidentifiedImageError:
        raise Rejected("not_image", "not a recognised image format") from None
    except _DECODE_ERRORS as e:
        raise Rejected("corrupt", f"bad image header: {e}") from None
    with im:
        w, h = im.size
        if w * h > cfg.max_pixels:
            raise Rejected("decompression_bomb", f"{w}x{h} = {w * h} pixels > {cfg.max_pixels}")
        orient = _orientation(im)
        ow, oh = (h, w) if orient in _SWAPS_AXES else (w, h)
        if ow < cfg.min_width or oh < cfg.min_height:
            raise Rejected("too_small", f"{ow}x{oh} under {cfg.min_width}x{cfg.min_height}")
        tw, th = target_size(ow, oh, cfg.max_side)
        if im.format in ("JPEG", "MPO") and (tw, th) != (ow, oh):
            # Decode at the smallest DCT scale that still covers the target size.
            im.draft(None, (th, tw) if orient in _SWAPS_AXES else (tw, th))
        try:
            im.load()
        except Image.DecompressionBombError as e:
            raise Rejected("decompression_bomb", str(e)) from None
        except _DECODE_ERRORS as e:
            msg = str(e) or type(e).__name__
            status = "truncated" if "truncated" in msg or isinstance(e, EOFError) else "corrupt"
            raise Rejected(status, msg) from None
        out = im
        if orient != 1:
            out = ImageOps.exif_transpose(out)
        out = to_rgb(out)
        if out.size != (tw, th):
            out = out.resize((tw, th), _FILTERS[cfg.resample], reducing_gap=3.0)
        buf = io.BytesIO()
        out.save(buf, "JPEG", quality=cfg.jpeg_quality)
        return Normalized(buf.getvalue(), tw, th, ow, oh, dhash(out))
