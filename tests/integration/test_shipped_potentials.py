"""The shipped aluminium potentials: mliappy (Python model) = native pair_style snap, serial and -np 2.

Each potential in potentials/ comes as a plain-data .npz plus exported .snapcoeff/.snapparam. Running the
same rattled Al cell through both include snippets must give the same energy and per-atom forces (by
atom ID) to 1e-10 relative; this pins down the quadratic coefficient layout shared by compute snap,
pair_style snap and lammps_al's QuadraticSNAP. The fit's own prediction must match too.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from ase.build import bulk

from lammps_al.core.potential import load
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
thermo_style custom step pe
thermo_modify format float %20.15g
dump forces all custom 1 forces.dump id fx fy fz c_pe
dump_modify forces sort id format float %20.15g
run 0
"""


def rattled_cell():
    atoms = bulk("Al", "fcc", a=4.05, cubic=True).repeat(3)
    atoms.rattle(0.1, seed=7)
    return atoms


def run_snippet(runner, snippet: Path, nprocs: int) -> tuple[float, np.ndarray, np.ndarray]:
    rattled_cell().write(runner.workdir / "cell.lmp", format="lammps-data", specorder=["Al"])
    (runner.workdir / "in.pot").write_text(INPUT)
    proc = runner.lmp("in.pot", nprocs=nprocs, extra=["-log", "none", "-var", "snippet", str(snippet),
                                                      "-var", "lal_potdir", str(snippet.parent)])
    lines = proc.stdout.splitlines()
    energy = float(lines[[i for i, l in enumerate(lines) if l.split()[:2] == ["Step", "PotEng"]][0] + 1].split()[1])
    rows = np.loadtxt(runner.workdir / "forces.dump", skiprows=9)
    assert np.array_equal(rows[:, 0], np.arange(1, len(rows) + 1))
    return energy, rows[:, 1:4], rows[:, 4]


@pytest.mark.parametrize("nprocs", [1, pytest.param(2, marks=pytest.mark.mpi)])
@pytest.mark.parametrize("name", ["Al_linear", "Al_quadratic"])
def test_mliappy_equals_native_snap(runner, name, nprocs):
    native = run_snippet(runner, POTENTIALS / f"{name}.snap.lammps", nprocs)
    python = run_snippet(runner, POTENTIALS / f"{name}.mliappy.lammps", nprocs)
    assert python[0] == pytest.approx(native[0], rel=1e-10)
    scale = np.abs(native[1]).max()
    assert np.abs(python[1] - native[1]).max() <= 1e-10 * scale
    np.testing.assert_allclose(python[2], native[2], rtol=1e-10)


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
    energy, _, _ = run_snippet(runner, POTENTIALS / f"{name}.snap.lammps", 1)
    assert predicted_total == pytest.approx(energy, rel=1e-10)


@pytest.mark.parametrize("name", ["Al_linear", "Al_quadratic"])
def test_shipped_potential_records_how_it_was_made(name):
    potential = load(POTENTIALS / f"{name}.npz")
    assert "lammps-al fit" in potential.command and potential.training_set_hash
    assert potential.covariance is not None
    assert potential.extra["training_scores"]["bayes"]["count"] > 1000
    assert set(potential.extra["training_scores"]) == {"bayes", "committee", "grade"}
    assert potential.elements == ("Al",)
