"""A real full disk for the fault tests: a tiny tmpfs mounted in a private mount namespace
(``unshare -m``), where the machine allows it."""

from __future__ import annotations

import shutil
import subprocess


def why_no_tmpfs() -> str | None:
    """None where a tmpfs can be mounted in a namespace, else why not (the skip reason)."""
    if shutil.which("unshare") is None:
        return "unshare is not installed"
    r = subprocess.run(
        ["unshare", "-m", "--", "sh", "-c", "mount -t tmpfs -o size=64k tmpfs /mnt"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    return None if r.returncode == 0 else f"cannot mount a tmpfs in a namespace: {r.stderr}"
