"""``images.tar``: images/{asin}.jpg in node order, member metadata fixed so the bytes depend
on the images only."""

from __future__ import annotations

import hashlib
import io
import tarfile
from pathlib import Path

from pipeline.errors import UserError

FILE = "images.tar"
TAR_MTIME = 0


def write_images_tar(dest: Path, asins: list[str], files: list[Path], hashes: list[str]) -> int:
    """One member per node: ``files[i]`` (the stored JPEG of ``asins[i]``), checked against
    ``hashes[i]`` (its sha256) on the way in. Returns the member count."""
    with tarfile.open(dest / FILE, "w", format=tarfile.PAX_FORMAT) as tar:
        for asin, src, sha in zip(asins, files, hashes, strict=True):
            if not src.exists():
                raise UserError(f"image of {asin} missing from the store: {src}")
            data = src.read_bytes()
            if hashlib.sha256(data).hexdigest() != sha:
                raise UserError(f"image store file {src} does not match its sha256 (corrupt)")
            info = tarfile.TarInfo(f"images/{asin}.jpg")
            info.size = len(data)
            info.mtime = TAR_MTIME
            info.mode = 0o644
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            info.type = tarfile.REGTYPE
            tar.addfile(info, io.BytesIO(data))
    return len(asins)
