"""A real headless Chromium for page tests: the OS's Chromium (``make setup`` installs Debian's
``chromium``), driven by Playwright with ``executable_path`` (never ``playwright install``).

Where no browser can be started the tests skip with the reason (shown by ``pytest -rs``,
which the project's pytest settings turn on), never silently.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from pipeline.publish.explorer import CHROMIUM_FLAGS, find_chromium

VIEWPORT = {"width": 1280, "height": 1000}


@dataclass
class Page:
    """A Playwright page and what the browser said while it ran: console errors (and
    warnings) and uncaught exceptions."""

    page: object
    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)


def require_chromium() -> str:
    """The Chromium binary (pipeline.publish.explorer.find_chromium), or a skip saying why."""
    path = find_chromium()
    if path is None:
        where = os.environ.get("ACMMG_CHROMIUM")
        pytest.skip(
            f"no browser test: ACMMG_CHROMIUM={where} is not an executable"
            if where
            else "no browser test: no Chromium on PATH (make setup installs Debian's chromium "
            "with apt-get where it runs as root; or set ACMMG_CHROMIUM)"
        )
    return path


@pytest.fixture(scope="module")
def chromium(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """A Playwright browser context on a fresh profile; skips with the reason where none can
    be started."""
    try:
        from playwright.sync_api import Error, sync_playwright
    except ImportError:
        pytest.skip("no browser test: playwright is not installed (pip install -e '.[dev]')")
    path = require_chromium()
    profile = tmp_path_factory.mktemp("chromium-profile")
    # --headless comes from headless=True; the rest keep it off the network and the GPU.
    args = [f for f in CHROMIUM_FLAGS if f != "--headless"]
    with sync_playwright() as pw:
        try:
            context = pw.chromium.launch_persistent_context(
                str(profile),
                executable_path=path,
                headless=True,
                args=args,
                viewport=VIEWPORT,
                timeout=60_000,
            )
        except Error as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            pytest.skip(f"no browser test: {path} did not start: {first}")
        try:
            yield context
        finally:
            context.close()


def open_page(context: object, url: str) -> Page:
    """A new tab on ``url``, recording console errors and page errors from the start."""
    page = context.new_page()
    seen = Page(page)
    page.on(
        "console",
        lambda msg: (
            seen.console_errors.append(f"{msg.type}: {msg.text}")
            if msg.type in ("error", "warning")
            else None
        ),
    )
    page.on("pageerror", lambda exc: seen.page_errors.append(str(exc)))
    page.goto(url, wait_until="load")
    return seen


def file_url(path: Path, fragment: str = "") -> str:
    return Path(path).resolve().as_uri() + (f"#{fragment}" if fragment else "")
