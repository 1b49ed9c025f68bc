"""Units and conventions shared by every stage.

Energies are eV, forces eV/A, lengths A. Stress labels follow ASE (eV/A^3, positive is tensile, Voigt order
``xx yy zz yz xz xy``); LAMMPS and FitSNAP rows use the pressure-signed tensor in bar.
"""

from __future__ import annotations

import numpy as np

# LAMMPS metal units: pressure (bar) = NKTV2P * energy/volume (eV/A^3); FitSNAP uses the same constant.
NKTV2P = 1.6021765e6
VOIGT = ((0, 0), (1, 1), (2, 2), (1, 2), (0, 2), (0, 1))
EV_PER_A2_TO_J_PER_M2 = 16.021766
BAR_TO_GPA = 1e-4
EV_PER_A3_TO_GPA = 160.21766


def stress_to_voigt(stress) -> np.ndarray:
    s = np.asarray(stress, dtype=float)
    if s.shape == (6,):
        return s.copy()
    if s.shape == (3, 3):
        return np.array([s[i, j] for i, j in VOIGT])
    if s.shape == (9,):
        return stress_to_voigt(s.reshape(3, 3))
    raise ValueError(f"stress must have shape (6,), (9,) or (3, 3), got {s.shape}")
