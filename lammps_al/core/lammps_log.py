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


def block_error(x, blocks: int = 5) -> float:
    """Standard error of the mean of a correlated series from ``blocks`` block averages."""
    import numpy as np

    x = np.asarray(x, dtype=float)
    n = len(x) // blocks
    if n < 1:
        return float("nan")
    means = x[: n * blocks].reshape(blocks, n).mean(axis=1)
    return float(means.std(ddof=1) / np.sqrt(blocks))


def read_coexistence(log_text: str, series: Path) -> dict | None:
    """What a coexistence run (``in_files/coexistence.in``) ended with: its state ("coexistence", "melted" or
    "frozen": the share of the cell still crystalline at the end), the mean temperature (K), its block error,
    the mean pressure (bar) of the averaged part, and the crystalline shares. None if the run did not get as
    far as its averaging (it halted or crashed)."""
    import numpy as np

    marks: dict[str, str] = {}
    for line in log_text.splitlines():
        if line.startswith("LAL_COEX"):
            words = line.split()[1:]
            marks.update(zip(words[0::2], words[1::2]))
    if "end_fraction" not in marks or not Path(series).is_file():
        return None
    data = np.loadtxt(series, comments="#", ndmin=2)
    prod = data[data[:, 0] >= float(marks["avg_from_step"])]
    if not len(prod):
        return None
    solid = float(marks["solid_fraction"])
    share = float(marks["end_fraction"]) / solid if solid > 0 else float("nan")
    state = "melted" if share < 0.15 else ("frozen" if share > 0.85 else "coexistence")
    return {"state": state, "temperature_K": float(prod[:, 1].mean()), "temperature_stderr_K": block_error(prod[:, 1]),
            "pressure_bar": float(prod[:, 2].mean()),
            "solid_share_start": float(marks["start_fraction"]) / solid if solid > 0 else float("nan"),
            "solid_share_end": share}
