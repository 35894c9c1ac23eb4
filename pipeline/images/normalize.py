"""Decode, verify and normalise one downloaded image to an RGB JPEG.

Steps: open with an allow-list of formats; refuse more than ``max_pixels`` or an aspect
ratio over ``max_aspect`` before decoding (decompression bombs, 100000x100 strips); refuse
originals under the minimum size; decode fully, within the process's budget of pixels in
flight (a truncated file fails here; so does a JPEG whose data stops at an early end marker,
which libjpeg would fill with grey); apply the EXIF orientation; convert to RGB (CMYK, palette, alpha over
white, 16-bit and float greys scaled to 8 bits); shrink so the longer side is at most
``max_side``; encode JPEG at a fixed quality. For JPEGs the decoder's DCT scaling
(Image.draft) decodes big originals at 1/2, 1/4 or 1/8 size, never below the target size,
which is where most of the speed over a naive decode-then-resize comes from.
"""

from __future__ import annotations

import contextlib
import functools
import io
import struct
import threading
import zlib
from collections.abc import Iterator
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


class PixelBudget:
    """At most ``capacity`` decoded pixels in flight at once (0: no limit).

    Per image ``max_pixels`` bounds one decode; this bounds all threads together: 16 threads
    decoding 6300x6300 PNGs at once would hold ~3 GB. An image larger than the whole budget
    waits until it can run alone.
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.in_use = 0
        self.peak = 0  # the most ever in use (for tests and benchmarks)
        self._cond = threading.Condition()

    @contextlib.contextmanager
    def hold(self, pixels: int) -> Iterator[None]:
        n = min(pixels, self.capacity)
        if n <= 0:
            yield
            return
        with self._cond:
            self._cond.wait_for(lambda: self.in_use + n <= self.capacity)
            self.in_use += n
            self.peak = max(self.peak, self.in_use)
        try:
            yield
        finally:
            with self._cond:
                self.in_use -= n
                self._cond.notify_all()


_budgets: dict[int, PixelBudget] = {}
_budgets_lock = threading.Lock()


def pixel_budget(capacity: int) -> PixelBudget:
    """The process-wide budget of that capacity (shared by every thread and stage run)."""
    with _budgets_lock:
        return _budgets.setdefault(capacity, PixelBudget(capacity))


def _decode(im: Image.Image) -> None:
    try:
        im.load()
    except Image.DecompressionBombError as e:
        raise Rejected("decompression_bomb", str(e)) from None
    except _DECODE_ERRORS as e:
        msg = str(e) or type(e).__name__
        status = "truncated" if "truncated" in msg or isinstance(e, EOFError) else "corrupt"
        raise Rejected(status, msg) from None


def _check_grey_fill(im: Image.Image) -> None:
    """libjpeg fills the blocks after a premature end marker with mid-grey and says nothing:
    a JPEG whose data stops early (even a header with no data at all) decodes "fine"."""
    last = im.crop((0, im.height - 1, im.width, im.height))
    if all(lo == hi and lo in (127, 128) for lo, hi in _extrema(last)):
        raise Rejected("truncated", "JPEG data ends early (bottom rows are the decoder's grey)")


def _extrema(im: Image.Image) -> list[tuple[int, int]]:
    ext = im.getextrema()
    return [ext] if isinstance(ext[0], int) else list(ext)  # type: ignore[list-item]


def _sizes(im: Image.Image, cfg: ImageConfig) -> tuple[int, int, int, int, int]:
    """(EXIF orientation, displayed width and height, target width and height)."""
    orient = _orientation(im)
    w, h = im.size
    ow, oh = (h, w) if orient in _SWAPS_AXES else (w, h)
    if ow < cfg.min_width or oh < cfg.min_height:
        raise Rejected("too_small", f"{ow}x{oh} under {cfg.min_width}x{cfg.min_height}")
    return (orient, ow, oh, *target_size(ow, oh, cfg.max_side))


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
        if max(w, h) > cfg.max_aspect * max(min(w, h), 1):
            raise Rejected("extreme_aspect", f"{w}x{h}: aspect ratio over {cfg.max_aspect:g}")
        jpeg = im.format in ("JPEG", "MPO")
        if jpeg:  # EXIF comes from the header; decode at the smallest DCT scale that fits
            orient, ow, oh, tw, th = _sizes(im, cfg)
            if (tw, th) != (ow, oh):
                im.draft(None, (th, tw) if orient in _SWAPS_AXES else (tw, th))
        with pixel_budget(cfg.max_pixels_in_flight).hold(im.width * im.height):
            _decode(im)
            if jpeg:
                _check_grey_fill(im)
            else:  # after decoding: getexif() of a PNG decodes it, and must not hide an error
                orient, ow, oh, tw, th = _sizes(im, cfg)
            out = im
            if orient != 1:
                out = ImageOps.exif_transpose(out)
            out = to_rgb(out)
            if out.size != (tw, th):
                out = out.resize((tw, th), _FILTERS[cfg.resample], reducing_gap=3.0)
            buf = io.BytesIO()
            out.save(buf, "JPEG", quality=cfg.jpeg_quality)
            return Normalized(buf.getvalue(), tw, th, ow, oh, dhash(out))
