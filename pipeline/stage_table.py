"""The stage table (``acmmg stages``, docs/architecture.md), generated from the declarations.

Inputs and outputs are functions of a work directory, some of which look at what is there
(the cleaned items when the clean stage ran, the fixpoint graph when the filter ran); the
table evaluates them in a scratch work directory that the stages "fill" in order, so it
shows what each stage reads and writes in a complete build.
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
from pathlib import Path
from typing import Any

from pipeline import workdir
from pipeline.io import write_json
from pipeline.params import fields, hints, type_name
from pipeline.stages import STAGES, Stage

SLUG = "SLUG"


def _rel(paths: list[Path], work: Path) -> list[str]:
    out = []
    for p in paths:
        p = Path(p)
        rel = os.path.relpath(p, work) if p.is_relative_to(work) else str(p)
        out.append(rel + ("/" if p.is_dir() else ""))
    return out


def _touch(paths: list[Path]) -> None:
    for p in paths:
        p = Path(p)
        if p.suffix:
            p.parent.mkdir(parents=True, exist_ok=True)
            p.touch()
        else:
            p.mkdir(parents=True, exist_ok=True)


def _params(stage: Stage) -> list[dict[str, Any]]:
    types_ = hints(stage.params)
    out = []
    for f in fields(stage.params):
        default = f.default if f.default is not dataclasses.MISSING else None
        if f.default_factory is not dataclasses.MISSING:
            default = f.default_factory()
        out.append(
            {
                "name": f.name,
                "type": type_name(types_[f.name]),
                "default": list(default) if isinstance(default, tuple) else default,
                "help": f.metadata.get("help", ""),
                "key": f.metadata.get("key", True),
            }
        )
    return out


def rows() -> list[dict[str, Any]]:
    """One row per stage, in build order."""
    out = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        downloads = work / workdir.DOWNLOADS
        listed = {
            kind: [{"uri": f"{kind}-URI", "path": str(downloads / f"{kind}.jsonl.gz"), "size": 0,
                    "sha256": ""}]
            for kind in ("reviews", "meta")
        }  # fmt: skip
        settings = {"category": SLUG}
        for stage in STAGES:
            p = stage.make_params(settings)
            ins = stage.inputs(work, p)
            outs = stage.outputs(work, p)
            if stage.stats is not None:
                outs = [*outs, workdir.stats_file(work, stage.name)]
            if stage.name == "fetch":
                write_json(work / workdir.SOURCES, listed)
                outs = [*outs, downloads]
            out.append(
                {
                    "name": stage.name,
                    "title": stage.title,
                    "doc": stage.doc,
                    "function": f"{stage.fn.__module__}.{stage.fn.__name__}",
                    "inputs": _rel(ins, work),
                    "outputs": _rel(outs, work),
                    "stats": {None: "", "": "top level"}.get(stage.stats, stage.stats),
                    "network": stage.network,
                    "cached": stage.cached,
                    "sharded": stage.sharding is not None,
                    "sharding": stage.sharding.how if stage.sharding else "",
                    "params": _params(stage),
                }
            )
            _touch(outs)
    return out


def markdown() -> str:
    """The stage table and one parameter table per stage, as markdown."""
    lines = [
        "| stage | function | reads | writes | stats | network | sharded |",
        "|---|---|---|---|---|---|---|",
    ]
    table = rows()
    for r in table:
        lines.append(
            f"| {r['name']} | `{r['function']}` | {', '.join(r['inputs']) or '-'} | "
            f"{', '.join(r['outputs'])} | {r['stats'] or '-'} | "
            f"{'yes' if r['network'] else ''} | {r['sharding']} |"
        )
    for r in table:
        lines += ["", f"**{r['name']}** ({r['title']}): {r['doc']}", ""]
        if not r["params"]:
            lines.append("(no parameters)")
            continue
        lines += ["| parameter | type | default | |", "|---|---|---|---|"]
        for p in r["params"]:
            note = "" if p["key"] else " (not in the cache key)"
            lines.append(
                f"| `{p['name']}` | {p['type']} | `{p['default']!r}` | {p['help']}{note} |"
            )
    return "\n".join(lines) + "\n"


BEGIN, END = "<!-- stages:begin -->", "<!-- stages:end -->"


def with_table(doc: str) -> str:
    """``doc`` with the generated tables between its stage markers."""
    head, rest = doc.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{BEGIN}\n{markdown()}{END}{tail}"
