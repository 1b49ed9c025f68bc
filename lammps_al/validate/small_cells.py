"""Properties of an fcc element's crystal in cells small enough for DFT, with any ASE calculator.

For an oracle LAMMPS cannot run (DFT), the reference's properties can only come from the oracle itself, in
cells it can afford; the learned potential is computed in the same cells (its ASE twin) so that the two
columns differ by the potential alone, and in converged cells by LAMMPS (:mod:`~lammps_al.validate.properties`)
so that the finite-size error shows.

- lattice constant and bulk modulus: a Birch-Murnaghan fit of E(V) of the 1-atom primitive cell at seven
  lattice constants within +-1 % (:func:`~lammps_al.train.crystal.fcc_equation_of_state`);
- C11, C12, C44: central differences of the stress of the 4-atom cubic cell under +-0.5 % strains (skipped,
  with the reason, for a calculator without stress);
- the vacancy formation energy in the 32-site cubic cell (2x2x2), atoms relaxed at fixed volume;
- the (111) surface energy of a 6-layer, 1x1 slab with 14 A of vacuum, atoms relaxed.
"""

from __future__ import annotations

import logging
from typing import Callable

import numpy as np
from ase.build import bulk, fcc111

from lammps_al.core.units import EV_PER_A2_TO_J_PER_M2
from lammps_al.train.crystal import fcc_equation_of_state

log = logging.getLogger(__name__)

STRAIN = 0.005
VACANCY_REPS = 2          # 4 * 2^3 = 32 sites
SLAB_LAYERS = 6
SLAB_VACUUM = 7.0         # each side


def _has_stress(calc) -> bool:
    return "stress" in getattr(calc, "implemented_properties", ())


def _relax(atoms, fmax: float = 0.01, steps: int = 200) -> float:
    from ase.optimize import BFGS

    BFGS(atoms, logfile=None).run(fmax=fmax, steps=steps)
    return float(atoms.get_potential_energy())


def small_cell_properties(make_calc: Callable[[], object], element: str, a_guess: float) -> dict:
    """The properties above with calculators made by ``make_calc`` (one per structure). Returns the values
    and, under ``"skipped"``, the properties left out and why."""
    from ase.units import GPa

    out: dict = {}
    skipped: dict[str, str] = {}
    eos = fcc_equation_of_state(make_calc, element, a_guess)
    a0 = eos["a0"]
    out["lattice_constant_A"] = a0
    out["bulk_modulus_GPa"] = eos["bulk_modulus_GPa"]

    cubic = bulk(element, "fcc", a=a0, cubic=True)
    calc = make_calc()
    if _has_stress(calc):
        stresses = {}
        for name, strain in (("xx", np.diag([1.0, 0, 0])), ("xy", np.array([[0, 0.5, 0], [0.5, 0, 0], [0, 0, 0]]))):
            for sign in (1, -1):
                atoms = cubic.copy()
                atoms.set_cell(cubic.cell.array @ (np.eye(3) + sign * STRAIN * strain), scale_atoms=True)
                atoms.calc = calc
                stresses[(name, sign)] = atoms.get_stress(voigt=True) / GPa      # xx yy zz yz xz xy
        d_xx = (stresses[("xx", 1)] - stresses[("xx", -1)]) / (2 * STRAIN)
        d_xy = (stresses[("xy", 1)] - stresses[("xy", -1)]) / (2 * STRAIN)
        out.update({"C11_GPa": float(d_xx[0]), "C12_GPa": float(d_xx[1]), "C44_GPa": float(d_xy[5])})
        born = {"C11 - C12": d_xx[0] - d_xx[1], "C11 + 2 C12": d_xx[0] + 2 * d_xx[1], "C44": d_xy[5]}
        unstable = {k: float(v) for k, v in born.items() if not v > 0}
        if unstable:                    # a cubic crystal at its own equilibrium is stable: the stresses are off
            failed = ", ".join(f"{k} = {v:.1f} GPa" for k, v in unstable.items())
            out["warnings"] = [f"the elastic constants fail Born's stability conditions ({failed}): stresses this "
                               f"coarse (k-points, plane-wave cutoff, smearing) cannot be trusted; converge the "
                               f"calculator's settings before reading these columns"]
    else:
        for key in ("C11_GPa", "C12_GPa", "C44_GPa"):
            skipped[key] = f"the calculator ({type(calc).__name__}) does not compute stress"
        log.warning("elastic constants skipped: %s does not compute stress", type(calc).__name__)

    perfect = cubic.repeat(VACANCY_REPS)
    perfect.calc = make_calc()
    e_perfect = float(perfect.get_potential_energy())
    e_bulk = e_perfect / len(perfect)
    vacancy = perfect.copy()
    del vacancy[0]
    vacancy.calc = make_calc()
    out["vacancy_formation_eV"] = _relax(vacancy) - e_bulk * len(vacancy)

    slab = fcc111(element, size=(1, 1, SLAB_LAYERS), a=a0, vacuum=SLAB_VACUUM, periodic=True)
    slab.calc = make_calc()
    area = float(np.linalg.norm(np.cross(slab.cell[0], slab.cell[1])))
    out["surface_111_J_m2"] = (_relax(slab) - e_bulk * len(slab)) / (2 * area) * EV_PER_A2_TO_J_PER_M2
    out["skipped"] = skipped
    out["cells"] = {"eos": "1-atom primitive, 7 volumes", "elastic": "4-atom cubic",
                    "vacancy": f"{4 * VACANCY_REPS ** 3} sites", "surface_111": f"{SLAB_LAYERS}-layer 1x1 slab"}
    return out
