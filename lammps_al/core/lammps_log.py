"""Reading LAMMPS log files: thermo tables."""

from __future__ import annotations

from pathlib import Path


def read_thermo(text_or_path: str | Path) -> list[list[dict[str, float]]]:
    """All thermo tables of a LAMMPS log, one list of rows (column name -> value) per ``run``."""
    text = Path(text_or_path).read_text() if isinstance(text_or_path, Path) else text_or_path
    runs: list[list[dict[str, float]]] = []
    header: list[str] | None = None
    for line in text.splitlines():
        tokens = line.split()
        if not tokens:
            continue
        if tokens[0] == "Step" and len(tokens) > 1:
            header = tokens
            runs.append([])
            continue
        if header is None:
            continue
        if tokens[0] in ("Loop", "ERROR", "WARNING:") or len(tokens) != len(header):
            if tokens[0] == "Loop":
                header = None
            continue
        try:
            runs[-1].append(dict(zip(header, map(float, tokens))))
        except ValueError:
            continue
    return runs
