"""Measured properties of the elements (``lammps_al/core/data/experiment.json``), each with its source:
printed by ``lammps-al validate`` as a third column beside the learned potential and its reference."""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

DATA = Path(__file__).resolve().parents[1] / "core" / "data" / "experiment.json"


@lru_cache(maxsize=None)
def _table() -> dict:
    return json.loads(DATA.read_text())["elements"]


def experiment(element: str) -> dict[str, dict]:
    """The measured properties of ``element`` by property name ({} for an element without a table): each a
    mapping with ``value`` (0 K where it depends on temperature), optionally ``value_300K``, ``source``,
    ``status`` and ``note``."""
    return dict(_table().get(element, {}))


def elements() -> list[str]:
    return sorted(_table())
