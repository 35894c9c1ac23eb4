"""Stage stamps: skip a stage whose inputs, parameters and code are unchanged.

A stage's key is the sha256 of its name, its parameters, the fingerprints (size + sha256)
of its input files and the version of its code (the package version plus a hash of the
stage's module, of the pipeline modules it takes names from, and of the SQL files). When the
stamp in ``work/.stamps/<stage>.json`` holds the same key and the stage's outputs exist, the
stage is not run again and its recorded result is returned. Stamps are written after the outputs, atomically, so a run killed
mid-stage reruns that stage and nothing before it.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import importlib.util
import inspect
import json
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pipeline
from pipeline.io import read_json, sha256_memo, write_json
from pipeline.sql import SQL_DIR
from pipeline.workdir import STAMPS


def file_fingerprint(path: Path) -> dict:
    """size + sha256 of a file (the hash memoised by pipeline.io.sha256_memo)."""
    return {"size": Path(path).stat().st_size, "sha256": sha256_memo(path)}


def _files(paths: Iterable[Path]) -> list[Path]:
    out = []
    for p in paths:
        p = Path(p)
        if p.is_dir():
            out.extend(
                sorted(f for f in p.rglob("*") if f.is_file() and not f.name.startswith("."))
            )
        elif p.exists():
            out.append(p)
    return out


def code_version(fn: Callable) -> str:
    """Package version + hash of the code the stage runs: the function's module and every
    ``pipeline`` / ``acmmg`` module it imports, directly or not, at the top or inside a
    function (read from the sources, so a lazily imported helper counts too), the templates
    and static files of the packages among them, and every SQL file."""
    h = hashlib.sha256(pipeline.__version__.encode())
    for src in _code_files(fn):
        h.update(src.read_bytes())
    for f in sorted(SQL_DIR.glob("*.sql")):
        h.update(f.name.encode() + f.read_bytes())
    return h.hexdigest()[:16]


OWN = ("pipeline", "acmmg")


def _code_files(fn: Callable) -> list[Path]:
    module = inspect.getmodule(fn)
    if module is None or not module.__name__.startswith(OWN):
        return []
    return sorted(_closure(module.__name__))


@functools.cache
def _closure(name: str) -> frozenset[Path]:
    """The files of module ``name`` and of every own module it imports, transitively."""
    seen: set[str] = set()
    files: set[Path] = set()
    todo = [name]
    while todo:
        mod = todo.pop()
        if mod in seen:
            continue
        seen.add(mod)
        path = _module_file(mod)
        if path is None:
            continue
        files.add(path)
        if path.parent.name not in OWN:  # a subpackage: its templates and static files too
            files.update(
                f
                for f in path.parent.rglob("*")
                if f.is_file() and f.suffix != ".py" and "__pycache__" not in f.parts
            )
        todo.extend(_imports(mod, path))
    return frozenset(files)


@functools.cache
def _package_dir(top: str) -> Path | None:
    spec = importlib.util.find_spec(top)
    return Path(spec.origin).parent if spec and spec.origin else None


def _module_file(name: str) -> Path | None:
    """The source file of own module ``name``, found on disk without importing it (finding
    the spec of a submodule imports its parents: open_clip and torch for a stage key)."""
    top, *rest = name.split(".")
    root = _package_dir(top)
    if root is None:
        return None
    base = root.joinpath(*rest)
    for path in (base.with_suffix(".py") if rest else None, base / "__init__.py"):
        if path is not None and path.is_file():
            return path
    return None


def _imports(mod: str, path: Path) -> list[str]:
    """The own modules (or candidates: ``from a import b`` may name module a.b) ``path``
    imports anywhere in it."""
    package = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
    out = []
    for node in _statements(ast.parse(path.read_text()).body):
        if isinstance(node, ast.Import):
            out += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                up = parts[: len(parts) - node.level + 1]
                base = ".".join(up + ([base] if base else []))
            out.append(base)
            out += [f"{base}.{a.name}" for a in node.names]
    return [m for m in out if m.split(".")[0] in OWN]


def _statements(body: list[ast.stmt]) -> Iterable[ast.AST]:
    """Every statement in ``body``, nested ones included (in functions, classes, if, try,
    with, loops, match): imports are statements, so the expressions, most of a module's
    nodes, need no visit."""
    for node in body:
        yield node
        for field in ("body", "orelse", "finalbody", "handlers", "cases"):
            yield from _statements(getattr(node, field, None) or [])


def stage_key(
    name: str, fn: Callable, inputs: Iterable[Path], params: dict[str, Any], work: Path
) -> str:
    inputs = _files(inputs)
    doc = {
        "stage": name,
        "code": code_version(fn),
        "params": params,
        "inputs": {
            os.path.relpath(p, work) if Path(p).is_relative_to(work) else str(p): file_fingerprint(
                p
            )
            for p in inputs
        },
    }
    return hashlib.sha256(json.dumps(doc, sort_keys=True, default=str).encode()).hexdigest()


def load_stamp(work: Path, name: str, key: str, outputs: Iterable[Path]) -> dict | None:
    path = Path(work) / STAMPS / f"{name}.json"
    if not path.exists():
        return None
    stamp = read_json(path)
    if stamp.get("key") != key or not all(Path(o).exists() for o in outputs):
        return None
    return stamp.get("result", {})


def write_stamp(work: Path, name: str, key: str, result: Any) -> None:
    write_json(Path(work) / STAMPS / f"{name}.json", {"key": key, "result": result})


def is_cached(
    work: Path,
    name: str,
    fn: Callable,
    inputs: Iterable[Path],
    outputs: Iterable[Path],
    params: dict[str, Any],
) -> bool:
    """Whether ``run_cached`` with these arguments would skip the stage."""
    key = stage_key(name, fn, inputs, params, Path(work))
    return load_stamp(Path(work), name, key, outputs) is not None


def run_cached(
    work: Path,
    name: str,
    fn: Callable[..., Any],
    *,
    inputs: Iterable[Path],
    outputs: Iterable[Path],
    params: dict[str, Any],
    call: Callable[[], Any] | None = None,
) -> tuple[Any, bool]:
    """Run ``call`` (default ``fn(**params)``) unless its stamp matches; (result, cached)."""
    work = Path(work)
    outputs = list(outputs)
    key = stage_key(name, fn, inputs, params, work)
    hit = load_stamp(work, name, key, outputs)
    if hit is not None:
        return hit, True
    result = call() if call is not None else fn(**params)
    write_stamp(work, name, key, result)
    return result, False
