"""The LAMMPS box as a cell (shared by the fix's writers and the structure builders)."""

from __future__ import annotations

import numpy as np


def box_cell(lmp) -> tuple[np.ndarray, np.ndarray, list[bool]]:
    """(origin, cell rows a b c, periodicity) of the LAMMPS box of instance ``lmp``."""
    boxlo, boxhi, xy, yz, xz, periodicity, _ = lmp.extract_box()
    lo, hi = np.asarray(boxlo), np.asarray(boxhi)
    cell = np.array([[hi[0] - lo[0], 0.0, 0.0], [xy, hi[1] - lo[1], 0.0], [xz, yz, hi[2] - lo[2]]])
    return lo, cell, [bool(p) for p in periodicity]
