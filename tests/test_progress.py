"""Progress lines in logs: every 10 s or 5 % (not more than one in 2 s), with rate and ETA."""

from __future__ import annotations

import logging

from pipeline import progress as progress_mod
from pipeline.progress import Progress


def test_lines_every_five_percent_at_most_every_two_seconds(monkeypatch, caplog):
    clock = [0.0]
    monkeypatch.setattr(progress_mod.time, "monotonic", lambda: clock[0])
    caplog.set_level(logging.INFO, logger="pipeline.progress")
    p = Progress(1000, "images", "img")
    for _ in range(1000):
        clock[0] += 0.01  # 100 img/s: 5 % takes 0.5 s, so the 2 s floor rules
        p.update()
    p.close()
    lines = [r.getMessage() for r in caplog.records]
    assert 4 <= len(lines) <= 6, lines
    assert lines[0].startswith("images: ") and "img/s" in lines[0] and "ETA" in lines[0]
    assert lines[-1].startswith("images: 1,000/1,000 (100.0%)")


def test_bytes_and_unknown_totals(monkeypatch, caplog):
    clock = [0.0]
    monkeypatch.setattr(progress_mod.time, "monotonic", lambda: clock[0])
    caplog.set_level(logging.INFO, logger="pipeline.progress")
    p = Progress(None, "download x", "B")
    clock[0] = 11.0
    p.update(5_000_000)
    assert caplog.records[-1].getMessage() == "download x: 5,000,000, 454.5 kB/s"
