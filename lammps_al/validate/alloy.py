"""Properties of a binary A-B (A the host, the potential's first element) by a potential in LAMMPS, for the
learned and the reference potential alike.

- each element as fcc: lattice constant and energy per atom (box relaxed), the reference states below;
- formation energies of ordered compounds, per atom against the fcc elements, every cell relaxed (box axes
  and atoms): C16 A2B (theta-Al2Cu's structure), B2 AB, L1_0 AB, L1_2 A3B and AB3;
- the solution energy of one B atom in A (256-site cell at A's lattice constant, atoms relaxed):
  E(A_255 B) - 255 e_A - e_B, with e the fcc energies per atom;
- the B-vacancy binding energy at nearest neighbour, E(B) + E(vac) - E(B + vac) - E(perfect) (positive:
  they attract), same cell;
- the mixing enthalpy of the liquid at a few compositions: NPT at zero pressure and ``liquid_temperature``
  (default 1400 K, above both Al's and Cu's melting points) of 108-atom random cells, melted first at 1.4x
  that, each averaged over 3 ps: H(x) - (1-x) H(0) - x H(1) per atom.
"""

from __future__ import annotations

import numpy as np
from ase import Atoms
from ase.build import bulk

from lammps_al.train.lammps_calc import Calc, PairSetup

COMPOUNDS = ("C16", "B2", "L10", "L12-A3B", "L12-AB3")
LIQUID_X = (0.0, 0.25, 0.5, 0.75, 1.0)


def compound_cell(name: str, a_el: str, b_el: str, a_a: float, a_b: float) -> Atoms:
    """The compound's conventional cell at Vegard's volume (a first guess: it is relaxed)."""
    from lammps_al.train.structures import c16_cell

    va, vb = a_a**3 / 4, a_b**3 / 4
    if name == "C16":
        scale = (12 * (2 * va + vb) / 3 / (6.067**2 * 4.877)) ** (1 / 3)
        return c16_cell(a_el, b_el, 6.067 * scale, 4.877 * scale, conventional_cell=True)
    if name == "B2":
        a = (va + vb) ** (1 / 3)
        return Atoms([a_el, b_el], scaled_positions=[(0, 0, 0), (.5, .5, .5)], cell=[a, a, a], pbc=True)
    n_b = {"L10": 2, "L12-A3B": 1, "L12-AB3": 3}[name]
    cell = bulk(a_el, "fcc", a=(4 * ((4 - n_b) * va + n_b * vb) / 4) ** (1 / 3), cubic=True)
    cell.symbols[:] = {"L10": [a_el, b_el, b_el, a_el], "L12-A3B": [b_el, a_el, a_el, a_el],
                       "L12-AB3": [a_el, b_el, b_el, b_el]}[name]
    return cell


def _nearest_neighbour(atoms: Atoms, i: int) -> int:
    d = atoms.get_distances(i, range(len(atoms)), mic=True)
    d[i] = np.inf
    return int(np.argmin(d))


def solute_energies(calc: Calc, a_el: str, b_el: str, a0: float, e_a: float, e_b: float, reps: int = 4) -> dict:
    perfect = bulk(a_el, "fcc", a=a0, cubic=True).repeat(reps)
    n = len(perfect)
    e_perfect = calc.energy(perfect)
    solute = perfect.copy()
    solute.symbols[0] = b_el
    e_solute = calc.energy(solute, relax="atoms")
    vac = perfect.copy()
    del vac[0]
    e_vac = calc.energy(vac, relax="atoms")
    pair = perfect.copy()
    pair.symbols[0] = b_el
    del pair[_nearest_neighbour(perfect, 0)]
    e_pair = calc.energy(pair, relax="atoms")
    return {f"solution_energy_{b_el}_in_{a_el}_eV": e_solute - (n - 1) * e_a - e_b,
            f"{b_el}_vacancy_binding_eV": e_solute + e_vac - e_pair - e_perfect}


def liquid_enthalpy(calc: Calc, x: float, a_el: str, b_el: str, a_a: float, a_b: float, temperature: float,
                    seed: int, steps: int = 1500) -> float:
    """Mean enthalpy per atom (eV, the potential part: the kinetic 3/2 kT cancels in a mixing enthalpy) of a
    108-atom liquid with fraction x of B at ``temperature`` and P = 0: melted at 1.4x the temperature for 2 ps
    (hot enough to melt, not so hot that a learned potential leaves what it was trained on), 2 ps at the
    temperature, then averaged over ``steps`` steps."""
    rng = np.random.default_rng(seed)
    atoms = bulk(a_el, "fcc", a=(1 - x) * a_a + x * a_b, cubic=True).repeat(3)
    atoms.symbols[rng.choice(len(atoms), size=int(round(x * len(atoms))), replace=False)] = b_el
    calc.load(atoms)
    hot = 1.4 * temperature
    calc.lmp.commands_list([
        "timestep 0.002", f"velocity all create {hot:.1f} {seed} mom yes rot yes loop geom",
        f"fix t all npt temp {hot:.1f} {hot:.1f} 0.1 iso 0 0 1.0", "run 1000", "unfix t",
        f"fix t all npt temp {temperature:.1f} {temperature:.1f} 0.1 iso 0 0 1.0", "run 1000",
        "thermo_style custom step temp pe press vol", "variable h equal pe+press*vol*6.241509074e-7",  # bar A^3 -> eV
        "fix avg all ave/time 10 1 10 v_h ave running", f"run {steps}"])
    return float(calc.lmp.extract_fix("avg", 0, 0)) / len(atoms)


def alloy_properties(pair: PairSetup, liquid_temperature: float = 1400.0, liquid: bool = True,
                     seed: int = 4321) -> dict:
    """The binary's properties by ``pair`` (a PairSetup of two elements, the host first)."""
    from lammps_al.validate.properties import lattice_and_cohesion

    a_el, b_el = pair.elements[:2]
    calc = Calc(pair)
    try:
        a_a, e_a = lattice_and_cohesion(calc, a_el)
        a_b, e_b = lattice_and_cohesion(calc, b_el)
        out = {f"lattice_constant_{a_el}_A": a_a, f"cohesive_energy_{a_el}_eV": -e_a,
               f"lattice_constant_{b_el}_A": a_b, f"cohesive_energy_{b_el}_eV": -e_b}
        for name in COMPOUNDS:
            cell = compound_cell(name, a_el, b_el, a_a, a_b)
            e = calc.energy(cell, relax="aniso")
            n_b = cell.get_chemical_symbols().count(b_el)
            label = name.replace("A", a_el).replace("B", b_el) if name.startswith("L12") else name
            out[f"formation_{label}_eV_atom"] = (e - (len(cell) - n_b) * e_a - n_b * e_b) / len(cell)
        out.update(solute_energies(calc, a_el, b_el, a_a, e_a, e_b))
        if liquid:
            h = {x: liquid_enthalpy(calc, x, a_el, b_el, a_a, a_b, liquid_temperature, seed + i)
                 for i, x in enumerate(LIQUID_X)}
            for x in LIQUID_X[1:-1]:
                out[f"liquid_mixing_x{b_el}_{x:.2f}_eV_atom"] = h[x] - (1 - x) * h[0.0] - x * h[1.0]
        return out
    finally:
        calc.close()
