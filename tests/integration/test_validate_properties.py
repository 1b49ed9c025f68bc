"""The property machinery of ``lammps-al validate`` (LAMMPS, stress finite differences, LAMMPS minimisers)
against an independent code and method: ASE's own EAM implementation reading the same Al_mm.eam.fs file,
with energy minimisation by scipy/ASE and elastic constants from the curvature of the energy."""

from __future__ import annotations

import numpy as np
import pytest
from ase.build import bulk, fcc111
from ase.calculators.eam import EAM
from ase.constraints import FixCartesian
from ase.lattice.cubic import FaceCenteredCubic
from ase.optimize import BFGS
from scipy.optimize import minimize_scalar

from lammps_al.core import runtime
from lammps_al.core.units import EV_PER_A2_TO_J_PER_M2
from lammps_al.validate.properties import Calc, properties, reference_pair, vacancy_formation

EV_PER_A3_TO_GPA = 160.21766


@pytest.fixture(scope="module")
def eam(lammps_install):
    return EAM(potential=str(runtime.potentials_dir() / "Al_mm.eam.fs"), form="fs")


@pytest.fixture(scope="module")
def lammps_properties(lammps_install):
    return properties(reference_pair())


@pytest.fixture(scope="module")
def ase_lattice(eam):
    def energy(a):
        atoms = bulk("Al", "fcc", a=a, cubic=True)
        atoms.calc = eam
        return atoms.get_potential_energy() / 4

    best = minimize_scalar(energy, bracket=(3.95, 4.05, 4.15), tol=1e-12)
    return best.x, -best.fun


def relaxed(atoms, eam, fmax=1e-4):
    atoms.calc = eam
    BFGS(atoms, logfile=None).run(fmax=fmax, steps=500)
    return atoms.get_potential_energy()


def test_lattice_constant_and_cohesive_energy(lammps_properties, ase_lattice):
    a0, e_coh = ase_lattice
    assert lammps_properties["lattice_constant_A"] == pytest.approx(a0, rel=2e-5)
    assert lammps_properties["cohesive_energy_eV"] == pytest.approx(e_coh, rel=1e-6)


def test_elastic_constants_from_the_curvature_of_the_energy(lammps_properties, ase_lattice, eam):
    """C11 = V^-1 d2E/de_xx^2, C11 + C12 = (2V)^-1 d2E/de^2 (e_xx = e_yy = e), C44 = V^-1 d2E/dg^2 (shear g)."""
    a0, _ = ase_lattice
    base = bulk("Al", "fcc", a=a0, cubic=True)
    volume, h = base.get_volume(), 1e-3

    def curvature(strain):
        energies = []
        for x in (-h, 0.0, h):
            atoms = base.copy()
            atoms.set_cell(base.cell.array @ (np.eye(3) + x * strain), scale_atoms=True)
            atoms.calc = eam
            energies.append(atoms.get_potential_energy())
        return (energies[0] - 2 * energies[1] + energies[2]) / h**2 / volume * EV_PER_A3_TO_GPA

    c11 = curvature(np.diag([1.0, 0.0, 0.0]))
    c12 = curvature(np.diag([1.0, 1.0, 0.0])) / 2 - c11
    c44 = curvature(np.array([[0, 0.5, 0], [0.5, 0, 0], [0, 0, 0]]))
    assert lammps_properties["C11_GPa"] == pytest.approx(c11, rel=0.01)
    assert lammps_properties["C12_GPa"] == pytest.approx(c12, rel=0.01)
    assert lammps_properties["C44_GPa"] == pytest.approx(c44, rel=0.01)


def test_relaxed_vacancy_formation_energy(lammps_install, ase_lattice, eam):
    a0, _ = ase_lattice
    perfect = bulk("Al", "fcc", a=a0, cubic=True).repeat(3)
    perfect.calc = eam
    e_perfect = perfect.get_potential_energy()
    vacancy = perfect.copy()
    del vacancy[0]
    expected = relaxed(vacancy, eam) - e_perfect * len(vacancy) / len(perfect)
    calc = Calc(reference_pair())
    try:
        assert vacancy_formation(calc, a0, reps=3) == pytest.approx(expected, abs=2e-3)
    finally:
        calc.close()


def test_relaxed_111_surface_energy(lammps_properties, ase_lattice, eam):
    a0, e_coh = ase_lattice
    slab = fcc111("Al", size=(2, 2, 10), a=lammps_properties["lattice_constant_A"], vacuum=8.0, periodic=True)
    area = np.linalg.norm(np.cross(slab.cell[0], slab.cell[1]))
    gamma = (relaxed(slab, eam) + len(slab) * e_coh) / (2 * area) * EV_PER_A2_TO_J_PER_M2
    assert lammps_properties["surface_111_J_m2"] == pytest.approx(gamma, rel=2e-3)


def test_intrinsic_stacking_fault_energy(lammps_properties, eam):
    a0 = lammps_properties["lattice_constant_A"]
    perfect = FaceCenteredCubic(directions=[[1, -1, 0], [1, 1, -2], [1, 1, 1]], size=(1, 1, 8), symbol="Al",
                                latticeconstant=a0, pbc=True)
    perfect.calc = eam
    e_perfect = perfect.get_potential_energy()
    faulted = perfect.copy()
    cell = faulted.cell.array.copy()
    cell[2] = cell[2] + np.array([0.0, a0 / np.sqrt(6.0), 0.0])
    faulted.set_cell(cell, scale_atoms=False)
    faulted.set_constraint(FixCartesian(range(len(faulted)), mask=(True, True, False)))   # relax along [111]
    area = np.linalg.norm(np.cross(cell[0], cell[1]))
    sfe = (relaxed(faulted, eam) - e_perfect) / area * EV_PER_A2_TO_J_PER_M2 * 1e3
    assert lammps_properties["stacking_fault_mJ_m2"] == pytest.approx(sfe, abs=1.0)


def test_the_properties_follow_the_element_of_the_reference(lammps_install):
    """Copper with Mishin et al.'s EAM (Cu_mishin1.eam.alloy, PRB 63, 224106 (2001), Table III): a0 3.615 A,
    Ec 3.54 eV, C11/C12/C44 169.9/122.6/76.2 GPa, vacancy formation 1.27 eV, stacking fault 44.4 mJ/m^2."""
    cu = properties(reference_pair("Cu_mishin1.eam.alloy", "Cu"))
    assert cu["lattice_constant_A"] == pytest.approx(3.615, abs=0.002)
    assert cu["cohesive_energy_eV"] == pytest.approx(3.54, abs=0.01)
    assert cu["C11_GPa"] == pytest.approx(169.9, rel=0.02)
    assert cu["C12_GPa"] == pytest.approx(122.6, rel=0.02)
    assert cu["C44_GPa"] == pytest.approx(76.2, rel=0.02)
    assert cu["vacancy_formation_eV"] == pytest.approx(1.27, abs=0.02)
    assert cu["stacking_fault_mJ_m2"] == pytest.approx(44.4, rel=0.05)
