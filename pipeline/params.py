"""Parameter dataclasses: every setting written once, with its default and its help.

A stage (or the training module) declares its settings as a frozen dataclass whose fields
are made with :func:`param`. The CLI generates its flags from those fields
(``pipeline.cli.args``), the flow and the registry convert overrides with
:func:`coerce`, and the stage table (``acmmg stages``) documents them, so a new parameter is
one line here and nowhere else.
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from pathlib import Path
from typing import Any, Literal, Union


def param(default: Any = dataclasses.MISSING, help: str = "", **meta: Any) -> Any:
    """A dataclass field with its help text. ``meta`` may hold ``flag`` (the CLI flag, default
    ``--field-name``), ``metavar``, ``choices``, ``cli=False`` (not a CLI flag),
    ``key=False`` (does not change the result, so not part of the stage's cache key) and
    ``setting=False`` (set by the runner, not a build setting a user may override)."""
    kwargs: dict[str, Any] = {"metadata": {"help": help, **meta}}
    if isinstance(default, list | dict | set):
        kwargs["default_factory"] = lambda d=default: type(d)(d)
    elif default is not dataclasses.MISSING:
        kwargs["default"] = default
    return dataclasses.field(**kwargs)


def fields(cls: type) -> list[dataclasses.Field]:
    return list(dataclasses.fields(cls))


def hints(cls: type) -> dict[str, Any]:
    """The resolved type of every field (``from __future__ import annotations`` makes them
    strings)."""
    return typing.get_type_hints(cls)


def unwrap_optional(tp: Any) -> tuple[Any, bool]:
    """(inner type, whether None is allowed) of ``X | None``."""
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0], len(args) < len(typing.get_args(tp))
    return tp, False


def type_name(tp: Any) -> str:
    """A short human name of a field type, for errors and the stage table."""
    inner, optional = unwrap_optional(tp)
    if typing.get_origin(inner) is Literal:
        name = " | ".join(repr(a) for a in typing.get_args(inner))
    elif typing.get_origin(inner) in (tuple, list):
        name = f"list of {type_name(typing.get_args(inner)[0])}"
    elif typing.get_origin(inner) in (Union, types.UnionType):
        name = " or ".join(type_name(a) for a in typing.get_args(inner))
    else:
        name = getattr(inner, "__name__", str(inner))
    return f"{name} or null" if optional else name


class ParamError(ValueError):
    """A setting's value cannot be converted to its type."""


_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0"}


def coerce(tp: Any, value: Any) -> Any:
    """``value`` (a Python value or a string from the command line) as a ``tp``; ParamError
    when it is not one."""
    inner, optional = unwrap_optional(tp)
    if value is None or (optional and isinstance(value, str) and value.lower() in ("none", "null")):
        if optional:
            return None
        raise ParamError("may not be null")
    origin = typing.get_origin(inner)
    if origin is Literal:
        allowed = typing.get_args(inner)
        for a in allowed:
            if value == a or (isinstance(value, str) and str(a) == value):
                return a
        raise ParamError(f"must be one of {', '.join(map(repr, allowed))}")
    if origin in (Union, types.UnionType):
        for alt in typing.get_args(inner):
            try:
                return coerce(alt, value)
            except ParamError:
                continue
        raise ParamError(f"must be {type_name(inner)}")
    if origin in (tuple, list):
        (item,) = typing.get_args(inner)[:1]
        items = value.split(",") if isinstance(value, str) else list(value)
        out = [coerce(item, v) for v in items if v != ""]
        return tuple(out) if origin is tuple else out
    if inner is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in _TRUE | _FALSE:
            return value.lower() in _TRUE
        raise ParamError("must be true or false")
    if inner is int:
        if isinstance(value, bool):
            raise ParamError("must be an integer")
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        try:
            return int(str(value))
        except ValueError:
            raise ParamError("must be an integer") from None
    if inner is float:
        if isinstance(value, bool):
            raise ParamError("must be a number")
        try:
            return float(value)
        except (TypeError, ValueError):
            raise ParamError("must be a number") from None
    if inner is str:
        if isinstance(value, str | int | float) and not isinstance(value, bool):
            return str(value)
        raise ParamError("must be a string")
    if inner is Path:
        return Path(value)
    return value


def defaults(cls: type) -> dict[str, Any]:
    """{field: default} of a parameter dataclass (fields without a default left out)."""
    out = {}
    for f in fields(cls):
        if f.default is not dataclasses.MISSING:
            out[f.name] = f.default
        elif f.default_factory is not dataclasses.MISSING:
            out[f.name] = f.default_factory()
    return out


def convert(types_: dict[str, Any], values: dict[str, Any], source: str = "setting") -> dict:
    """``values`` converted to ``types_`` (name -> type); an unknown name (with the close
    matches and the valid names) or a bad value (with the type expected) is a ParamError."""
    unknown = sorted(set(values) - set(types_))
    if unknown:
        named = []
        for u in unknown:
            close = difflib.get_close_matches(u, types_, n=2)
            named.append(
                f"{u!r} (did you mean {', '.join(map(repr, close))}?)" if close else repr(u)
            )
        raise ParamError(f"unknown {source} {', '.join(named)}; valid: {', '.join(sorted(types_))}")
    out = {}
    for name, value in values.items():
        try:
            out[name] = coerce(types_[name], value)
        except ParamError as e:
            raise ParamError(
                f"{source} {name}={value!r}: {e} (expected {type_name(types_[name])})"
            ) from None
    return out


def build(cls: type, values: dict[str, Any], *, source: str = "setting") -> Any:
    """``cls(**values)`` with every value converted to its field's type (see ``convert``)."""
    types_ = hints(cls)
    return cls(**convert({f.name: types_[f.name] for f in fields(cls)}, values, source))


def args_doc(cls: type, indent: str = "    ") -> str:
    """An ``Args:`` docstring section for the fields of ``cls`` (Prefect shows it as the
    parameters' descriptions), from their help texts."""
    import textwrap

    out = []
    for f in fields(cls):
        text = f"{f.name}: {f.metadata.get('help', '')}".rstrip()
        out += textwrap.wrap(text, 88, initial_indent=indent, subsequent_indent=indent * 2)
    return "\n".join(out) + "\n"


def as_dict(obj: Any) -> dict[str, Any]:
    """A parameter dataclass as plain JSON-able values (tuples as lists, paths as str)."""

    def plain(v: Any) -> Any:
        if isinstance(v, tuple | list):
            return [plain(x) for x in v]
        if isinstance(v, Path):
            return str(v)
        return v

    return {f.name: plain(getattr(obj, f.name)) for f in fields(obj)}
