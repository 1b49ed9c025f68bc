"""The config machinery: one TOML file -> frozen dataclasses, validated on load.

Each section is a frozen dataclass whose annotations say what its keys take (:mod:`lammps_al.core.schema`);
:func:`section` builds one and turns every problem into a :class:`~lammps_al.core.errors.ConfigError` that
names the file, the key, the value and what would be right. Unknown keys are rejected with the allowed
ones. Relative paths are resolved against the config file's folder by :func:`resolve`.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

from lammps_al.core.errors import ConfigError
from lammps_al.core.schema import SchemaError, from_mapping


def read_toml(path: Path) -> dict:
    """The TOML file as a dict; a missing, unreadable or malformed file is a ConfigError naming it."""
    path = Path(path)
    try:
        return tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except IsADirectoryError:
        raise ConfigError(f"config file {path} is a folder; give a .toml file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"config file {path} cannot be read: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from None


def section(cls, raw: dict, name: str, source: Path | str, **extra):
    """Section ``[name]`` of the config at ``source`` as dataclass ``cls`` (``extra``: values set by the
    caller, not the file)."""
    where = name if name.startswith("[") else f"[{name}]"
    try:
        return from_mapping(cls, raw if raw is not None else {}, where, **extra)
    except SchemaError as exc:
        raise ConfigError(f"{source}: {exc}") from None


def check_sections(raw: dict, allowed, source: Path | str) -> None:
    unknown = sorted(set(raw) - set(allowed))
    if unknown:
        raise ConfigError(f"{source}: unknown section(s) or top-level key(s) {unknown}; allowed: {sorted(allowed)}")


def resolve(path, base: Path) -> Path:
    """``path`` made absolute against the config file's folder ``base`` (``~`` expanded)."""
    p = Path(path).expanduser()
    return p if p.is_absolute() else Path(base) / p
