"""Settings of the image stage."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass

# Formats Pillow may open. Deliberately short: e.g. EPS would run Ghostscript on crawled bytes.
DEFAULT_FORMATS = ("JPEG", "MPO", "PNG", "WEBP", "GIF", "BMP", "TIFF")
RESAMPLE_FILTERS = ("lanczos", "bicubic", "hamming", "bilinear", "box")
# Image URLs known to be placeholders (shell patterns, matched against the whole URL before and
# after urls.full_size_url): refused unfetched as placeholder_url. Amazon's default
# digital-video art (442 SQID rows), its "no image" icons and its spacer pixel; G/01 is the
# US store, G/02 UK, G/03 DE and so on.
PLACEHOLDER_URLS = (
    "*/images/G/*/digital/video/web/Default_Background_Art*",
    "*/images/G/*/x-site/icons/no-img-*",
    "*/images/G/*/x-locale/detail/thumb-no-image*",
    "*/images/G/*/x-locale/common/transparent-pixel*",
)


@dataclass(frozen=True)
class ImageConfig:
    """How images are fetched, checked and normalised.

    Fields marked (result) change what an item's row or stored JPEG would be: they make up
    :meth:`fingerprint`, and a rerun redoes rows fetched under a different fingerprint.
    """

    # Normalisation (result).
    # Longer side of the stored JPEG at most this (never upscaled): the source resolution up to
    # 1024 px, enough for CLIP preprocessing (224-448 px) and most users' crops.
    max_side: int = 1024
    jpeg_quality: int = 90
    # Downscaling filter. hamming: antialiased, close to bicubic in quality (41 vs 48 dB PSNR
    # against lanczos on textured images, box/area 36 dB) at nearly the cost of box (bench/).
    resample: str = "hamming"
    min_width: int = 100  # smaller originals are rejected as too_small
    min_height: int = 100
    max_pixels: int = 40_000_000  # more pixels than this: decompression_bomb (checked pre-decode)
    max_aspect: float = 20.0  # longer side over shorter side above this: extreme_aspect
    allowed_formats: tuple[str, ...] = DEFAULT_FORMATS
    # Network safety (result).
    max_bytes: int = 20 * 1024 * 1024  # response bodies above this are too_large
    max_redirects: int = 5
    # Networks that may be fetched although not public (e.g. ("127.0.0.1/32",) in tests).
    allow_private: tuple[str, ...] = ()
    # Sources (result). Amazon image URLs are fetched in their full-size form
    # (urls.full_size_url): the row keeps the original in `url`, the fetched one in `fetch_url`.
    amazon_full_size: bool = True
    placeholder_urls: tuple[str, ...] = PLACEHOLDER_URLS  # refused unfetched: placeholder_url
    # Placeholders: an image (by `placeholder_hash`) used by more than this many items.
    placeholder_threshold: int = 3
    placeholder_hash: str = "sha256"  # or "dhash" (perceptual, 64-bit difference hash)
    # Transport.
    connect_timeout: float = 5.0
    read_timeout: float = 15.0  # per socket read
    total_timeout: float = 60.0  # one attempt: connect, headers and body of every redirect hop
    # Extra tries (acmmg.retry's rules: timeouts, resets, 429, 5xx), all within total_timeout;
    # fewer than for a dump: a lost image costs one row, and a rerun tries it again.
    retries: int = 2
    backoff_base: float = 0.5  # seconds; doubled per attempt, with jitter
    backoff_max: float = 30.0
    max_retry_after: float = 120.0  # a longer Retry-After gives up (a rerun tries again)
    user_agent: str = "acmmg-pipeline/0.1 (+https://github.com/; product image fetch)"
    # Where to connect for a URL (FROM=TO prefixes, pipeline.http.alias): set by the runner
    # for a locally served sample; rows keep the URL itself.
    url_aliases: tuple[str, ...] = dataclasses.field(
        default=(), metadata={"setting": False, "cli": False}
    )
    # Parallelism: `threads` per process; processes 0 = one per CPU (1 for small jobs).
    threads: int = 16
    processes: int = 0
    chunk_size: int = 128  # work unit of a process and of the resume journal
    # Decoded pixels in flight per process (all threads, all stages in it), 0 = unbounded.
    # ~5 bytes each while decoding and converting: 100 M is about 0.5 GB.
    max_pixels_in_flight: int = 100_000_000
    # On a rerun, try transient failures (timeout, connection_error, 429, 5xx) again.
    retry_transient: bool = True

    def __post_init__(self) -> None:
        if self.resample not in RESAMPLE_FILTERS:
            raise ValueError(f"resample must be one of {RESAMPLE_FILTERS}, not {self.resample!r}")
        if self.placeholder_hash not in ("sha256", "dhash"):
            raise ValueError("placeholder_hash must be 'sha256' or 'dhash'")
        if self.max_side < 1 or not 1 <= self.jpeg_quality <= 100:
            raise ValueError("max_side must be >= 1 and jpeg_quality in 1..100")
        if self.threads < 1 or self.chunk_size < 1 or self.processes < 0 or self.retries < 0:
            raise ValueError("threads and chunk_size must be >= 1, processes and retries >= 0")
        if self.max_aspect < 1 or self.max_pixels_in_flight < 0:
            raise ValueError("max_aspect must be >= 1 and max_pixels_in_flight >= 0")
        if not self.total_timeout > 0:
            raise ValueError("total_timeout must be > 0")

    def fingerprint(self) -> str:
        """Hash of the settings that change an item's result (see the class docstring)."""
        keys = (
            "max_side",
            "jpeg_quality",
            "resample",
            "min_width",
            "min_height",
            "max_pixels",
            "max_aspect",
            "allowed_formats",
            "max_bytes",
            "max_redirects",
            "allow_private",
            "amazon_full_size",
            "placeholder_urls",
        )
        d = dataclasses.asdict(self)
        blob = json.dumps({k: d[k] for k in keys}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]
