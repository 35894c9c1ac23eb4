"""CLI flags generated from parameter dataclasses (``pipeline.params``).

``add_params(parser, Cls)`` adds one flag per field (``--field-name``, or the field's
``flag``), typed, with the field's default and help; ``from_args(Cls, args)`` builds the
dataclass back from the parsed namespace. A parameter is thus written once, in its
dataclass, and every command that takes it stays in step.
"""

from __future__ import annotations

import argparse
import dataclasses
import typing
from pathlib import Path
from typing import Any, Literal

from pipeline.params import ParamError, coerce, fields, hints, unwrap_optional


def _flag(f: dataclasses.Field) -> str:
    return f.metadata.get("flag") or "--" + f.name.replace("_", "-")


def _default(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return None


def _converter(tp: Any):
    def convert(text: str) -> Any:
        try:
            return coerce(tp, text)
        except ParamError as e:
            raise argparse.ArgumentTypeError(f"{text!r} {e}") from None

    convert.__name__ = getattr(tp, "__name__", "value")
    return convert


def add_params(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup,
    cls: type,
    *,
    exclude: tuple[str, ...] = (),
    only: tuple[str, ...] | None = None,
    defaults: dict[str, Any] | None = None,
) -> None:
    """One flag per field of ``cls`` (fields with ``cli=False`` metadata, in ``exclude`` or
    outside ``only`` are left out); ``defaults`` replaces the dataclass defaults."""
    types_ = hints(cls)
    for f in fields(cls):
        if f.name in exclude or (only is not None and f.name not in only):
            continue
        if f.metadata.get("cli", True) is False:
            continue
        tp, _ = unwrap_optional(types_[f.name])
        default = (defaults or {}).get(f.name, _default(f))
        kw: dict[str, Any] = {"dest": f.name, "help": f.metadata.get("help") or None}
        if "metavar" in f.metadata:
            kw["metavar"] = f.metadata["metavar"]
        if tp is bool:
            action = argparse.BooleanOptionalAction if default else "store_true"
            parser.add_argument(_flag(f), action=action, default=bool(default), **kw)
            continue
        origin = typing.get_origin(tp)
        if origin is Literal:
            kw["choices"] = list(typing.get_args(tp))
            kw["type"] = _converter(tp)
        elif origin in (tuple, list):
            (item,) = typing.get_args(tp)[:1]
            kw["action"] = "append"
            kw["type"] = _converter(item)
            default = None  # appended values replace the default (restored in from_args)
        elif "choices" in f.metadata:
            kw["choices"] = list(f.metadata["choices"])
            kw["type"] = _converter(types_[f.name])
        else:
            kw["type"] = _converter(types_[f.name]) if tp is not str else str
        if tp is Path:
            kw["type"] = Path
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            kw["required"] = not (defaults and f.name in defaults)
        parser.add_argument(_flag(f), default=default, **kw)


def from_args(cls: type, args: argparse.Namespace, **overrides: Any) -> Any:
    """``cls`` from the parsed flags ``add_params`` added (missing ones keep their default)."""
    values: dict[str, Any] = {}
    for f in fields(cls):
        if f.name in overrides:
            values[f.name] = overrides[f.name]
        elif hasattr(args, f.name):
            v = getattr(args, f.name)
            if v is None and typing.get_origin(unwrap_optional(hints(cls)[f.name])[0]) in (
                tuple,
                list,
            ):
                continue  # an append flag never given: the default list
            values[f.name] = tuple(v) if isinstance(v, list) else v
    return cls(**values)
