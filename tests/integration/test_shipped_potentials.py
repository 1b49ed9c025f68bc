"""The shipped aluminium potentials, through both include snippets (mliappy: lammps_al's Python model; native:
LAMMPS's own pair_style snap with the exported .snapcoeff), serial and -np 2, against answers computed here:

- every atom's energy is E_i = b0 + b . B_i + 1/2 B_i^T M B_i with B_i from LAMMPS's ``compute sna/atom`` in the
  same run and b0, b, M read straight from the potential file (this pins down the quadratic coefficient layout
  shared by compute snap, pair_style snap and QuadraticSNAP);
- forces are minus the central finite differences of LAMMPS's own total energy;
- the fit's own prediction A @ coefficients is the energy LAMMPS computes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from ase.build import bulk

from lammps_al.core.potential import load
from lammps_al.core.records import read_training_scores
from lammps_al.train.descriptors import SnapWorker, design_matrix

ROOT = Path(__file__).resolve().parents[2]
POTENTIALS = ROOT / "potentials"

INPUT = """\
units metal
atom_style atomic
atom_modify map array
read_data cell.lmp
mass 1 26.9815
include ${snippet}
compute pe all pe/atom
compute b all sna/atom ${sna}
thermo_style custom step pe
thermo_modify format float %20.15g
dump d all custom 1 atoms.dump id c_pe fx fy fz c_b[*]
dump_modify d sort id format float %20.15g
run 0
"""


def rattled_cell():
    atoms = bulk("Al", "fcc", a=4.05, cubic=True).repeat(3)
    atoms.rattle(0.1, seed=7)
    return atoms


def sna_arguments(potential) -> str:
    d = potential.descriptor
    return (f"{d.rcutfac!r} {d.rfac0!r} {d.twojmax} {' '.join(map(repr, d.radelem))} {' '.join(map(repr, d.wj))} "
            f"rmin0 {d.rmin0!r} bzeroflag {d.bzeroflag} switchflag {d.switchflag}")


def run_snippet(runner, snippet: Path, nprocs: int, atoms=None):
    """(total energy, per-atom energies, forces, descriptors B) by atom ID."""
    (atoms if atoms is not None else rattled_cell()).write(runner.workdir / "cell.lmp", format="lammps-data",
                                                            specorder=["Al"])
    (runner.workdir / "in.pot").write_text(INPUT)
    potential = load(snippet.with_name(snippet.name.split(".")[0] + ".npz"))
    proc = runner.lmp("in.pot", nprocs=nprocs, extra=["-log", "none", "-var", "snippet", str(snippet),
                                                      "-var", "lal_potdir", str(snippet.parent),
                                                      "-var", "sna", sna_arguments(potential)])
    lines = proc.stdout.splitlines()
    energy = float(lines[[i for i, l in enumerate(lines) if l.split()[:2] == ["Step", "PotEng"]][0] + 1].split()[1])
    rows = np.loadtxt(runner.workdir / "atoms.dump", skiprows=9)
    assert np.array_equal(rows[:, 0], np.arange(1, len(rows) + 1))
    return energy, rows[:, 1], rows[:, 2:5], rows[:, 5:]


def explicit_energies(potential, B: np.ndarray) -> np.ndarray:
    """b0 + b . B + 1/2 B^T M B, term by term, from the coefficient layout of a quadratic .snapcoeff file."""
    c = potential.coefficients[0]
    d = B.shape[1]
    out = c[0] + B @ c[1:1 + d]
    if potential.model == "quadratic":
        k = 1 + d
        for i in range(d):
            for j in range(i, d):
                out = out + (0.5 * B[:, i] * B[:, i] if i == j else B[:, i] * B[:, j]) * c[k]
                k += 1
        assert k == len(c)
    return out


@pytest.mark.parametrize("nprocs", [1, pytest.param(2, marks=pytest.mark.mpi)])
@pytest.mark.parametrize("snippet", ["mliappy", "snap"])
@pytest.mark.parametrize("name", ["Al_linear", "Al_quadratic"])
def test_per_atom_energies_are_the_coefficients_times_the_descriptors(runner, name, snippet, nprocs):
    potential = load(POTENTIALS / f"{name}.npz")
    energy, energies, _, B = run_snippet(runner, POTENTIALS / f"{name}.{snippet}.lammps", nprocs)
    np.testing.assert_allclose(energies, explicit_energies(potential, B), rtol=1e-10, atol=1e-10)
    assert energy == pytest.approx(energies.sum(), rel=1e-12)


@pytest.mark.parametrize("snippet", ["mliappy", "snap"])
@pytest.mark.parametrize("name", ["Al_linear", "Al_quadratic"])
def test_forces_are_minus_the_energy_gradient(runner, name, snippet):
    atoms = rattled_cell()
    path = POTENTIALS / f"{name}.{snippet}.lammps"
    _, _, forces, _ = run_snippet(runner, path, 1, atoms)
    h = 1e-4
    for i, a in ((0, 0), (50, 1), (97, 2)):
        energies = []
        for sign in (1, -1):
            moved = atoms.copy()
            moved.positions[i, a] += sign * h
            energies.append(run_snippet(runner, path, 1, moved)[0])
        assert forces[i, a] == pytest.approx(-(energies[0] - energies[1]) / (2 * h), abs=2e-6)


@pytest.mark.parametrize("name", ["Al_linear", "Al_quadratic"])
def test_fit_prediction_equals_lammps_energy(runner, lammps_install, name):
    """A @ coefficients (the fit's own view) equals the energy LAMMPS computes with the exported files."""
    potential = load(POTENTIALS / f"{name}.npz")
    atoms = rattled_cell()
    atoms.info["REF_energy"] = 0.0
    worker = SnapWorker(potential.descriptor, potential.reference)
    block = worker.compute(atoms)
    worker.close()
    dm = design_matrix([atoms], [block], potential.descriptor, force=False, stress=False)
    predicted_total = float(dm.A[0] @ potential.coefficients.ravel()) * len(atoms)
    energy = run_snippet(runner, POTENTIALS / f"{name}.snap.lammps", 1)[0]
    assert predicted_total == pytest.approx(energy, rel=1e-10)


@pytest.mark.parametrize("name", ["Al_linear", "Al_quadratic"])
def test_shipped_potential_records_how_it_was_made(name):
    potential = load(POTENTIALS / f"{name}.npz")
    assert "lammps-al fit" in potential.command and potential.training_set_hash
    assert potential.covariance is not None
    assert read_training_scores(potential, "bayes").count > 1000
    assert set(potential.extra["training_scores"]) == {"bayes", "committee", "grade"}
    assert potential.elements == ("Al",)
