"""Properties of an fcc element's crystal (the pair setup's element) by a potential in LAMMPS, for the learned
and the reference potential alike.

Lattice constant and cohesive energy (box relaxation), C11/C12/C44 (central differences of the stress under
+-0.5 % strains), the vacancy formation energy (relaxed, 256-atom cell), (100)/(110)/(111) surface energies
(relaxed slabs) and the intrinsic stacking-fault energy (a (111) stack whose periodic image is shifted by
a/sqrt(6) along [11-2], relaxed along [111]). The learned potential runs through native ``pair_style snap``
with its exported coefficients (identical to its mliappy model to 1e-10); the reference through its own
pair style.
"""

from __future__ import annotations

import numpy as np
from ase.build import bulk, fcc100, fcc110, fcc111
from ase.lattice.cubic import FaceCenteredCubic

from lammps_al.core.units import BAR_TO_GPA, EV_PER_A2_TO_J_PER_M2
from lammps_al.train.lammps_calc import Calc, PairSetup, learned_pair, reference_pair  # noqa: F401 (re-exported)


def element_of(calc: Calc) -> str:
    return calc.pair.element


def lattice_and_cohesion(calc: Calc, element: str | None = None) -> tuple[float, float]:
    """fcc lattice constant (A) and energy per atom (eV) of ``element`` (default: the pair setup's first), box
    relaxed in a 108-atom cell."""
    from lammps_al.core.elements import element_data

    element = element or element_of(calc)
    atoms = bulk(element, "fcc", a=element_data(element).fcc_a, cubic=True).repeat(3)
    e = calc.energy(atoms, relax="box")
    boxlo, boxhi, *_ = calc.lmp.extract_box()
    return (boxhi[0] - boxlo[0]) / 3, e / len(atoms)


def elastic_constants(calc: Calc, a0: float, delta: float = 0.005) -> dict:
    base = bulk(element_of(calc), "fcc", a=a0, cubic=True).repeat(2)
    stresses = {}
    for name, strain in (("xx", np.diag([1, 0, 0])), ("xy", np.array([[0, 0.5, 0], [0.5, 0, 0], [0, 0, 0]]))):
        for sign in (1, -1):
            atoms = base.copy()
            atoms.set_cell(base.cell.array @ (np.eye(3) + sign * delta * strain), scale_atoms=True)
            calc.energy(atoms)
            stresses[(name, sign)] = -calc.pressure() * BAR_TO_GPA     # stress, GPa (xx yy zz yz xz xy)
    d_xx = (stresses[("xx", 1)] - stresses[("xx", -1)]) / (2 * delta)
    d_xy = (stresses[("xy", 1)] - stresses[("xy", -1)]) / (2 * delta)
    return {"C11": float(d_xx[0]), "C12": float(d_xx[1]), "C44": float(d_xy[5])}


def vacancy_formation(calc: Calc, a0: float, reps: int = 4) -> float:
    """Relaxed vacancy formation energy (eV) in a cubic cell of ``4 reps^3`` sites at fixed volume."""
    perfect = bulk(element_of(calc), "fcc", a=a0, cubic=True).repeat(reps)
    e_perfect = calc.energy(perfect)
    vac = perfect.copy()
    del vac[0]
    e_vac = calc.energy(vac, relax="atoms")
    return e_vac - e_perfect * (len(vac) / len(perfect))


def surface_energies(calc: Calc, a0: float, e_coh: float) -> dict:
    out = {}
    for name, builder, size in (("100", fcc100, (2, 2, 10)), ("110", fcc110, (2, 2, 14)), ("111", fcc111, (2, 2, 10))):
        slab = builder(element_of(calc), size=size, a=a0, vacuum=8.0, periodic=True)
        e = calc.energy(slab, relax="atoms")
        area = np.linalg.norm(np.cross(slab.cell[0], slab.cell[1]))
        out[name] = (e - len(slab) * e_coh) / (2 * area) * EV_PER_A2_TO_J_PER_M2
    return out


def stacking_fault(calc: Calc, a0: float) -> float:
    perfect = FaceCenteredCubic(directions=[[1, -1, 0], [1, 1, -2], [1, 1, 1]], size=(1, 1, 8), symbol=element_of(calc),
                                latticeconstant=a0, pbc=True)
    e_perfect = calc.energy(perfect)
    faulted = perfect.copy()
    cell = faulted.cell.array.copy()
    cell[2] = cell[2] + np.array([0.0, a0 / np.sqrt(6.0), 0.0])   # image shifted by a partial along [11-2]
    faulted.set_cell(cell, scale_atoms=False)
    e_fault = calc.energy(faulted, relax="z")
    area = np.linalg.norm(np.cross(cell[0], cell[1]))
    return (e_fault - e_perfect) / area * EV_PER_A2_TO_J_PER_M2 * 1e3       # mJ/m^2


def properties(pair: PairSetup) -> dict:
    calc = Calc(pair)
    try:
        a0, e_coh = lattice_and_cohesion(calc)
        out = {"lattice_constant_A": a0, "cohesive_energy_eV": -e_coh, **{f"{k}_GPa": v for k, v in
                                                                         elastic_constants(calc, a0).items()},
               "vacancy_formation_eV": vacancy_formation(calc, a0)}
        out.update({f"surface_{k}_J_m2": v for k, v in surface_energies(calc, a0, e_coh).items()})
        out["stacking_fault_mJ_m2"] = stacking_fault(calc, a0)
        return out
    finally:
        calc.close()
