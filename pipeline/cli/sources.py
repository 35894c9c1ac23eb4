"""CLI: ``acmmg sources check [slug ...]``: does every category's dump still answer?"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from pathlib import Path
from urllib.parse import urlparse


def register(sub: argparse._SubParsersAction) -> None:
    s = sub.add_parser("sources", help="the registry's source dumps")
    ssub = s.add_subparsers(dest="sources_command", required=True)
    c = ssub.add_parser(
        "check",
        help="ask every source (and its mirrors) for size, ETag and Last-Modified "
        "without downloading; exit 1 when a category has a source nothing answers for",
    )
    c.add_argument("categories", nargs="*", help="only these slugs (default: all)")
    c.add_argument("--registry", type=Path, help="a categories.toml (default: the package's)")
    c.add_argument("--json", action="store_true", help="machine-readable output")
    c.set_defaults(func=run_check)


def _size(n: int | None) -> str:
    if n is None:
        return "?"
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return "?"


def _answered_by(check) -> str:
    p = check.answered
    if p is None:
        return "-"
    i = check.probes.index(p)
    where = "source" if i == 0 else f"mirror {i}"
    return f"{where} ({urlparse(p.url).hostname})"


def _status(check) -> str:
    if check.generated:
        return "generated"
    if check.local:
        return "local file, not checked"
    failed = [p for p in check.probes if not p.ok]
    notes = "; ".join(f"{urlparse(p.url).hostname}: {p.status}" for p in failed)
    if check.answered is not None:
        return "ok" + (f" ({notes})" if notes else "")
    return f"UNREACHABLE ({notes})"


def run_check(args: argparse.Namespace) -> int:
    from pipeline.categories import get_category, load_registry
    from pipeline.sources.check import check_sources

    registry = load_registry(args.registry)
    cats = [get_category(s, registry) for s in args.categories] or list(registry.values())
    checks = check_sources(cats)
    bad = sorted({c.category for c in checks if not c.reachable})
    if args.json:
        print(json.dumps([{**asdict(c), "reachable": c.reachable} for c in checks], indent=2))
    else:
        rows = [
            (
                c.category,
                c.source,
                _size(c.answered.size) if c.answered else "-",
                (c.answered.etag or c.answered.last_modified or "-")[:34] if c.answered else "-",
                _answered_by(c),
                _status(c),
            )
            for c in checks
        ]
        head = ("category", "source", "size", "ETag / Last-Modified", "answered by", "status")
        widths = [max(len(r[i]) for r in [head, *rows]) for i in range(5)]
        for r in [head, *rows]:
            print("  ".join(v.ljust(w) for v, w in zip(r, widths, strict=False)) + "  " + r[5])
    if bad:
        print(f"no reachable source for: {', '.join(bad)}")
        return 1
    return 0
