"""Where lammps_al's shipped files are: the LAMMPS inputs (``in_files/``) and the potentials
(``potentials/``).

They live at the top of the repository and travel in the wheel as package data (``lammps_al/in_files``,
``lammps_al/potentials``), so an installed package (``pip install .``) and a source checkout (editable
install) both find them. The search path, first match wins:

1. ``$LAMMPS_AL_DATA/<kind>`` when that variable is set (your own copies);
2. ``<site-packages>/lammps_al/<kind>`` (a normal install);
3. ``<checkout>/<kind>`` beside the ``lammps_al`` folder (a source checkout).

``lammps-al files`` prints the folders in use.
"""

from __future__ import annotations

import os
from pathlib import Path

from lammps_al.core.errors import ConfigError

KINDS = ("in_files", "potentials")
DATA_ENV = "LAMMPS_AL_DATA"
_PACKAGE = Path(__file__).resolve().parents[1]


def candidates(kind: str) -> list[Path]:
    if kind not in KINDS:
        raise ValueError(f"shipped file kind must be one of {KINDS}, got {kind!r}")
    out = []
    if os.environ.get(DATA_ENV):
        out.append(Path(os.environ[DATA_ENV]).expanduser() / kind)
    out += [_PACKAGE / kind, _PACKAGE.parent / kind]
    return out


def shipped_dir(kind: str) -> Path:
    """The folder of shipped ``kind`` ("in_files" or "potentials")."""
    for c in candidates(kind):
        if c.is_dir():
            return c
    raise ConfigError(f"lammps_al's shipped {kind} folder was not found (looked in "
                      f"{', '.join(str(c) for c in candidates(kind))}); reinstall lammps_al or set {DATA_ENV}")


def find_file(name: str | Path, kind: str, base: Path | None = None, what: str = "file") -> Path:
    """``name`` as given if absolute; else relative to ``base`` (the config file's folder) if it exists
    there; else the shipped ``kind`` folder's file of that name (a leading ``kind/`` is dropped)."""
    p = Path(name).expanduser()
    if p.is_absolute():
        if p.is_file():
            return p
        raise ConfigError(f"{what} {p} does not exist")
    looked = []
    if base is not None:
        looked.append(Path(base) / p)
    parts = p.parts[1:] if p.parts and p.parts[0] == kind else p.parts
    try:
        looked.append(shipped_dir(kind).joinpath(*parts))
    except ConfigError:
        pass
    for c in looked:
        if c.is_file():
            return c.resolve()
    raise ConfigError(f"{what} {name} not found (looked in {', '.join(str(c) for c in looked)})")
