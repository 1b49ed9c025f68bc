"""The fcc crystal of an element by any ASE calculator: lattice constant and bulk modulus from E(V) of the
1-atom primitive cell (used where only the calculator itself can say them: a DFT oracle)."""

from __future__ import annotations

import warnings
from typing import Callable

import numpy as np
from ase.build import bulk

EOS_RANGE = 0.01          # of the lattice constant: volumes within +-3 % (wider ranges bias B by the
#                           anharmonicity, by 8 % at +-3 % of a for Mendelev's Al EAM)


def fcc_equation_of_state(make_calc: Callable[[], object], element: str, a_guess: float,
                          points: int = 7) -> dict:
    """A Birch-Murnaghan fit of E(V) at ``points`` lattice constants within +-1 % of the centre, centred again
    on the fitted minimum while it falls outside the inner half (at most three passes). Returns the lattice
    constant (A), the volume per atom (A^3), the bulk modulus (GPa), the energy per atom (eV) and the number of
    calculator calls."""
    from ase.eos import EquationOfState
    from ase.units import GPa

    calc = make_calc()
    centre, calls = a_guess, 0
    for _ in range(3):
        volumes, energies = [], []
        for s in np.linspace(-EOS_RANGE, EOS_RANGE, points):
            atoms = bulk(element, "fcc", a=centre * (1 + s))
            atoms.calc = calc
            volumes.append(atoms.get_volume())
            energies.append(atoms.get_potential_energy())
            calls += 1
        with warnings.catch_warnings():       # a minimum outside the volumes: the next pass centres on it
            warnings.simplefilter("ignore", UserWarning)
            v0, e0, b = EquationOfState(volumes, energies, eos="birchmurnaghan").fit()
        a0 = float((4 * v0) ** (1 / 3))
        if abs(a0 / centre - 1) <= EOS_RANGE / 2:
            break
        centre = a0
    return {"a0": a0, "volume": float(v0), "bulk_modulus_GPa": float(b / GPa), "energy": float(e0), "calls": calls}
