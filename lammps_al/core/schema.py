"""Typed plain data: frozen dataclasses from TOML/JSON tables and back, with types checked on the way in.

One machinery serves the config files (:mod:`lammps_al.core.config`, :mod:`lammps_al.loop.config`) and the
records that cross stage boundaries (:mod:`lammps_al.core.records`). A field's annotation says what it
takes: ``int``, ``float`` (an integer is accepted), ``bool``, ``str``, ``Path`` (from a string), ``X | None``,
``Literal["a", "b"]`` (the allowed values), ``tuple[T, ...]`` and ``list[T]`` (from a list), ``dict[str, T]``
and a nested dataclass (from a table). A value of the wrong type is a :class:`SchemaError` that names where it
is, what it should be and what it was; a key the dataclass lacks is one that names the allowed keys.
"""

from __future__ import annotations

import dataclasses
import functools
import types
import typing
from pathlib import Path
from typing import Any


class SchemaError(ValueError):
    """A value that does not fit its field; callers add the file it came from and re-raise their own error."""


@functools.lru_cache(maxsize=None)
def type_hints(cls) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def describe(tp) -> str:
    """What a value of type ``tp`` looks like, in words."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        parts = [describe(a) for a in args if a is not type(None)]
        return " or ".join(parts) + (" (or left out)" if type(None) in args else "")
    if origin is typing.Literal:
        return "one of " + ", ".join(repr(a) for a in args)
    if origin in (tuple, list):
        inner = args[0] if args else Any
        return f"a list of {_plural(describe(inner))}"
    if origin is dict or tp is dict:
        return "a table"
    if dataclasses.is_dataclass(tp):
        return "a table"
    return {int: "an integer", float: "a number", bool: "true or false", str: "a string", Path: "a path (string)"
            }.get(tp, getattr(tp, "__name__", str(tp)))


def _plural(text: str) -> str:
    for article in ("an ", "a "):
        if text.startswith(article):
            text = text[len(article):]
            head, paren, rest = text.partition(" (")         # "path (string)" -> "paths (string)"
            return head + ("s" if not head.endswith("s") else "") + paren + rest
    return text


def coerce(value, tp, where: str):
    """``value`` as type ``tp``; a :class:`SchemaError` naming ``where`` when it is not one."""
    if tp is Any:
        return value
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        for option in args:
            if option is type(None):
                continue
            try:
                return coerce(value, option, where)
            except SchemaError:
                continue
        raise SchemaError(f"{where} must be {describe(tp)}, got {value!r}")
    if origin is typing.Literal:
        if value in args and not isinstance(value, bool):
            return value
        raise SchemaError(f"{where} must be {describe(tp)}, got {value!r}")
    if tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif tp is str:
        if isinstance(value, str):
            return value
    elif tp is Path:
        if isinstance(value, (str, Path)):
            return Path(value)
    elif origin in (tuple, list):
        if isinstance(value, (list, tuple)):
            if origin is tuple and args and not (len(args) == 2 and args[1] is Ellipsis):
                if len(value) != len(args):
                    raise SchemaError(f"{where} must have {len(args)} entries, got {len(value)}")
                items = [coerce(v, a, f"{where}[{i}]") for i, (v, a) in enumerate(zip(value, args))]
            else:
                inner = args[0] if args else Any
                items = [coerce(v, inner, f"{where}[{i}]") for i, v in enumerate(value)]
            return tuple(items) if origin is tuple else items
    elif origin is dict or tp is dict:
        if isinstance(value, dict):
            if args:
                return {str(k): coerce(v, args[1], f"{where}.{k}") for k, v in value.items()}
            return dict(value)
    elif dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        return from_mapping(tp, value, where)
    else:
        return value
    raise SchemaError(f"{where} must be {describe(tp)}, got {value!r}")


def field_names(cls) -> list[str]:
    return [f.name for f in dataclasses.fields(cls) if f.init]


def from_mapping(cls, data, where: str, unknown: str = "error", **extra):
    """An instance of dataclass ``cls`` from the table ``data`` (plus ``extra`` keyword values).

    ``unknown``: "error" (a key ``cls`` lacks is named with the allowed ones) or "ignore" (records written
    by a newer version may carry more keys). ``__post_init__`` may raise ``ValueError`` (or an error of
    lammps_al's) with a message that names the field; it comes back as a :class:`SchemaError` at ``where``.
    """
    if not isinstance(data, dict):
        raise SchemaError(f"{where} must be a table, got {type(data).__name__} {data!r:.60}")
    names = field_names(cls)
    hints = type_hints(cls)
    bad = sorted(set(data) - set(names))
    if bad and unknown == "error":
        raise SchemaError(f"unknown key(s) {bad} in {where}; allowed: {sorted(names)}")
    kwargs = {name: coerce(data[name], hints[name], f"{where}.{name}") for name in names if name in data}
    kwargs.update(extra)
    missing = [f.name for f in dataclasses.fields(cls) if f.init and f.name not in kwargs
               and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
    if missing:
        raise SchemaError(f"{where} lacks {', '.join(missing)}")
    try:
        return cls(**kwargs)
    except (ValueError, TypeError) as exc:
        raise SchemaError(f"{where}: {exc}") from exc
    except Exception as exc:  # lammps_al's own errors from __post_init__ checks
        from lammps_al.core.errors import LammpsAlError

        if isinstance(exc, LammpsAlError):
            raise SchemaError(f"{where}: {exc}") from exc
        raise


def to_mapping(obj):
    """Plain JSON/TOML data from a dataclass (recursively): paths as strings, tuples as lists."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_mapping(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, dict):
        return {str(k): to_mapping(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_mapping(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    try:
        import numpy as np

        if isinstance(obj, np.generic):
            return obj.item()
        if isinstance(obj, np.ndarray):
            return obj.tolist()
    except ImportError:  # pragma: no cover
        pass
    return obj
