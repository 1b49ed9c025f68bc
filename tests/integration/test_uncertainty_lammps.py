"""Per-atom uncertainty inside LAMMPS, the ASE twin, empty MPI ranks, and bad potential input.

Cells are written as LAMMPS data files and run with a plain input script that includes a shipped snippet
and dumps ``id pe/atom fx fy fz d_lal_sigma`` sorted by atom ID.
"""

from __future__ import annotations

import itertools
import re
from pathlib import Path

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk, fcc100

from lammps_al.core.potential import load, save
from lammps_al.core.units import NKTV2P
from lammps_al.train.calculator import SNAPCalculator

ROOT = Path(__file__).resolve().parents[2]
POTENTIALS = ROOT / "potentials"

INPUT = """\
units metal
atom_style atomic
atom_modify map array
boundary ${bnd}
include procs.in
read_data cell.lmp
mass 1 26.9815
include ${snippet}
compute pe all pe/atom
thermo_style custom step pe pxx pyy pzz pyz pxz pxy c_lal_max_sigma
thermo_modify format float %20.15g
dump d all custom ${dumpevery} atoms.dump id c_pe fx fy fz d_lal_sigma
dump_modify d sort id format float %20.15g
include md.in
run ${steps}
"""


def run_cell(runner, atoms: Atoms, snippet: Path, nprocs: int = 1, scorer: str = "bayes", steps: int = 0,
             md: str = "", procs: str = "", boundary: str = "p p p", check: bool = True, every: int = 1):
    atoms.write(runner.workdir / "cell.lmp", format="lammps-data", specorder=["Al"])
    (runner.workdir / "in.cell").write_text(INPUT)
    (runner.workdir / "md.in").write_text(md + "\n")
    (runner.workdir / "procs.in").write_text(procs + "\n")
    extra = ["-log", "log.lammps", "-var", "snippet", str(snippet), "-var", "lal_potdir", str(snippet.parent),
             "-var", "lal_scorer", scorer, "-var", "lal_score_every", str(every), "-var", "steps", str(steps),
             "-var", "bnd", boundary,
             "-var", "dumpevery", str(max(steps, 1))]
    proc = runner.lmp("in.cell", nprocs=nprocs, extra=extra, check=check, timeout=300)
    if not check:
        return proc
    lines = proc.stdout.splitlines()
    header = [i for i, l in enumerate(lines) if l.split()[:2] == ["Step", "PotEng"]][0]
    end = next(i for i in range(header, len(lines)) if lines[i].startswith("Loop time"))
    thermo = [float(x) for x in lines[end - 1].split()]   # the last step's row
    text = (runner.workdir / "atoms.dump").read_text().split("ITEM: ATOMS")[-1].splitlines()[1:]
    table = np.array([[float(x) for x in line.split()] for line in text if line.strip()])
    return {"energy": thermo[1], "pressure": np.array(thermo[2:8]), "max_sigma": thermo[8],
            "id": table[:, 0].astype(int), "energies": table[:, 1], "forces": table[:, 2:5], "sigma": table[:, 5]}


def rattled(seed=0, reps=3, amp=0.1):
    atoms = bulk("Al", "fcc", a=4.05, cubic=True).repeat(reps)
    atoms.rattle(amp, seed=seed)
    return atoms


@pytest.mark.parametrize("scorer", ["bayes", "bayes_force"])
@pytest.mark.parametrize("name", ["Al_linear", "Al_quadratic"])
def test_sigma_by_atom_id_is_the_same_serial_and_mpi_in_both_modes(runner, name, scorer):
    """mliappy and native modes, 1 and 2 ranks: identical per-atom sigma by ID, written by dump custom."""
    atoms = rattled(seed=2)
    results = {(mode, n): run_cell(runner, atoms, POTENTIALS / f"{name}.{mode}.lammps", nprocs=n, scorer=scorer)
               for mode in ("mliappy", "snap") for n in (1, 2)}
    reference = results[("mliappy", 1)]
    assert np.array_equal(reference["id"], np.arange(1, len(atoms) + 1))
    assert reference["sigma"].min() > 0
    for key, r in results.items():
        np.testing.assert_allclose(r["sigma"], reference["sigma"], rtol=1e-9, err_msg=str(key))
        assert r["max_sigma"] == pytest.approx(reference["sigma"].max(), rel=1e-9)


@pytest.mark.parametrize("scorer", ["bayes", "committee", "grade", "bayes_force"])
def test_lammps_and_the_ase_twin_agree(runner, scorer):
    """Per-atom energies, forces, stress and uncertainty of LAMMPS (mliappy) equal the ASE calculator's."""
    atoms = rattled(seed=4, reps=2)
    lmp = run_cell(runner, atoms, POTENTIALS / "Al_quadratic.mliappy.lammps", scorer=scorer)
    calc = SNAPCalculator(POTENTIALS / "Al_quadratic.npz", scorer=scorer)
    atoms.calc = calc
    np.testing.assert_allclose(lmp["energies"], atoms.get_potential_energies(), rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(lmp["forces"], atoms.get_forces(), rtol=1e-8, atol=1e-9)
    np.testing.assert_allclose(lmp["sigma"], calc.results["energies_uncertainty"], rtol=1e-8)
    ase_stress = atoms.get_stress()
    np.testing.assert_allclose(-lmp["pressure"] / NKTV2P, ase_stress, rtol=1e-5, atol=1e-7)
    calc.close()


def test_quadratic_forces_are_minus_the_energy_gradient(runner):
    """Central finite differences of the LAMMPS (mliappy) quadratic energy equal its forces."""
    atoms = rattled(seed=5, reps=2)
    snippet = POTENTIALS / "Al_quadratic.mliappy.lammps"
    base = run_cell(runner, atoms, snippet)
    h = 1e-4
    for i, k in [(0, 0), (9, 1), (17, 2)]:
        energies = []
        for sign in (1, -1):
            moved = atoms.copy()
            moved.positions[i, k] += sign * h
            energies.append(run_cell(runner, moved, snippet)["energy"])
        assert base["forces"][i, k] == pytest.approx(-(energies[0] - energies[1]) / (2 * h), abs=2e-6)


@pytest.mark.parametrize("nprocs", [1, pytest.param(2, marks=pytest.mark.mpi)])
def test_displaced_atom_has_the_largest_sigma(runner, nprocs):
    """One atom of a perfect fcc cell moved by 0.8 A: that atom (by ID) scores highest."""
    atoms = bulk("Al", "fcc", a=4.05, cubic=True).repeat(3)
    moved_id = 14
    atoms.positions[moved_id - 1] += np.array([0.8, 0.0, 0.0])
    for mode in ("mliappy", "snap"):
        r = run_cell(runner, atoms, POTENTIALS / f"Al_quadratic.{mode}.lammps", nprocs=nprocs)
        assert r["id"][np.argmax(r["sigma"])] == moved_id


def test_out_of_domain_cells_score_far_above_training_like_ones(runner):
    """A 25 % compressed cell and a 2500 K liquid score >= 10x the median of thermal fcc cells."""
    snippet = POTENTIALS / "Al_quadratic.mliappy.lammps"
    thermal = [run_cell(runner, rattled(seed=s, amp=0.05), snippet)["sigma"] for s in range(3)]
    median = float(np.median(np.concatenate(thermal)))
    compressed = bulk("Al", "fcc", a=4.05 * 0.75, cubic=True).repeat(3)
    compressed.rattle(0.05, seed=1)
    assert run_cell(runner, compressed, snippet)["max_sigma"] >= 10 * median
    liquid_md = "velocity all create 5000 4 mom yes rot yes\nfix hot all nvt temp 2500 2500 0.05\ntimestep 0.002"
    liquid = run_cell(runner, rattled(seed=9, amp=0.0), POTENTIALS / "Al_quadratic.snap.lammps",
                      steps=1500, md=liquid_md, every=1500)
    assert liquid["max_sigma"] == pytest.approx(liquid["sigma"].max(), rel=1e-9)
    assert liquid["max_sigma"] >= 10 * median, (liquid["max_sigma"], median)


def empty_ranks_match_serial(runner, size: tuple[int, int, int], height: float, shift: float, nprocs: int,
                             forces: bool = False, modes=(("mliappy", "bayes"),)) -> None:
    """A slab at the bottom of a tall box on a 1x1xN grid (the upper ranks own no atoms): MD runs to the end
    with the serial energies and sigma (and forces) by atom ID, for both shipped potentials, in each
    (snippet mode, scorer)."""
    slab = fcc100("Al", size=size, a=4.05, vacuum=0.0, periodic=True)
    cell = slab.cell.array.copy()
    cell[2, 2] = height
    slab.set_cell(cell)
    slab.positions[:, 2] += shift
    md = "velocity all create 300 5 mom yes\nfix nve all nve"
    for name, (mode, scorer) in itertools.product(("Al_linear", "Al_quadratic"), modes):
        snippet = POTENTIALS / f"{name}.{mode}.lammps"
        serial = run_cell(runner, slab, snippet, steps=20, md=md, scorer=scorer)
        parallel = run_cell(runner, slab, snippet, nprocs=nprocs, steps=20, md=md, scorer=scorer,
                            procs=f"processors 1 1 {nprocs}")
        assert f"1 by 1 by {nprocs} MPI processor grid" in (runner.workdir / "log.lammps").read_text()
        assert parallel["energy"] == pytest.approx(serial["energy"], rel=1e-10)
        if forces:
            np.testing.assert_allclose(parallel["forces"], serial["forces"], rtol=1e-7, atol=1e-9)
        np.testing.assert_allclose(parallel["sigma"], serial["sigma"], rtol=1e-8)


def test_empty_rank_runs_to_the_end_with_the_serial_energies(runner):
    """A slab in the lower half of a tall box on a 1x1x2 grid: rank 1 owns no atoms, and MD still runs, in
    both snippet modes and with the force-feature scorer (its compute snad/atom communicates: a rank without
    atoms that skipped it hung the run)."""
    empty_ranks_match_serial(runner, (3, 3, 4), 40.0, 2.0, nprocs=2,
                             modes=(("mliappy", "bayes"), ("mliappy", "bayes_force"), ("snap", "bayes"),
                                    ("snap", "bayes_force")))


def lammps_error(proc) -> str:
    return "\n".join(l for l in proc.stdout.splitlines() if "ERROR" in l)


@pytest.mark.parametrize("nprocs", [1, pytest.param(2, marks=pytest.mark.mpi)])
def test_bad_potential_input_stops_lammps_with_a_clear_error(runner, tmp_path, nprocs):
    """Missing file, wrong element, mismatched descriptor, wrong covariance shape, no committee: clear errors."""
    atoms = rattled(seed=1, reps=2)
    pot_dir = tmp_path / "pots"
    pot_dir.mkdir()
    for f in POTENTIALS.glob("Al_quadratic.*"):
        (pot_dir / f.name).write_bytes(f.read_bytes())
    snippet = pot_dir / "Al_quadratic.mliappy.lammps"

    def failing(expected: str, scorer: str = "bayes"):
        proc = run_cell(runner, atoms, snippet, nprocs=nprocs, scorer=scorer, check=False)
        assert proc.returncode == 2, proc.stdout[-3000:]
        assert proc.stdout.count("ERROR (lammps_al): ") == nprocs, proc.stdout[-3000:]    # every rank says it
        assert expected in proc.stdout, proc.stdout[-3000:]
        assert "Traceback" not in proc.stdout, proc.stdout[-3000:]

    (pot_dir / "Al_quadratic.npz").rename(pot_dir / "moved.npz")
    failing(f"potential Al_quadratic: {pot_dir / 'Al_quadratic.npz'} does not exist")
    (pot_dir / "moved.npz").rename(pot_dir / "Al_quadratic.npz")

    good = load(pot_dir / "Al_quadratic.npz")
    desc = (pot_dir / "Al_quadratic.mliap.descriptor").read_text()
    (pot_dir / "Al_quadratic.mliap.descriptor").write_text(desc.replace("twojmax 6", "twojmax 4"))
    failing("has twojmax ['4'], but the potential was fitted with twojmax ['6']")
    (pot_dir / "Al_quadratic.mliap.descriptor").write_text(desc.replace("elems Al", "elems Cu"))
    failing("has elems ['Cu'], but the potential was fitted with elems ['Al']")
    (pot_dir / "Al_quadratic.mliap.descriptor").write_text(desc)
    snippet_text = snippet.read_text()
    snippet.write_text(snippet_text.replace('variable lal_elements index "Al"', 'variable lal_elements index "Cu"'))
    failing("lal_elements names element 'Cu', but")
    snippet.write_text(snippet_text.replace('variable lal_elements index "Al"', 'variable lal_elements index "Al Al"'))
    failing("the box has 1 atom type(s) but lal_elements = 'Al Al' names 2")
    snippet.write_text(snippet_text)

    import json

    with np.load(pot_dir / "Al_quadratic.npz", allow_pickle=False) as data:
        arrays = {k: np.array(data[k]) for k in data.files}
    arrays["posterior.covariance"] = arrays["posterior.covariance"][:10, :10]
    np.savez(pot_dir / "Al_quadratic.npz", **arrays)
    failing("covariance has shape (10, 10), expected (496, 496)")

    del good.arrays["committee.samples"]
    save(good, pot_dir / "Al_quadratic.npz")
    failing("scorer 'committee' needs ['committee.samples'] in the potential file", scorer="committee")
    assert json.loads(str(np.load(pot_dir / "Al_quadratic.npz")["metadata"]))["elements"] == ["Al"]


def zbl_overlaid(tmp_path: Path, name: str) -> Path:
    """The shipped potential with ZBL overlaid (as the published Ta06A SNAP has): both snippets written anew."""
    import dataclasses

    from lammps_al.core.descriptor import ReferencePotential
    from lammps_al.train.lammps_files import write_all

    p = load(POTENTIALS / f"{name}.npz")
    p = dataclasses.replace(p, reference=ReferencePotential("zbl 2.0 3.0", ("* * 13 13",)))
    folder = tmp_path / "zbl"
    save(p, folder / f"{name}.npz")
    write_all(p, folder, name)
    return folder


@pytest.mark.mpi
@pytest.mark.parametrize("name", ["Al_linear", "Al_quadratic"])
def test_four_ranks_on_a_triclinic_cell_with_zbl_overlaid_match_serial(runner, tmp_path, name):
    """mpirun -np 4 on 2 cores (oversubscribed, for correctness): a sheared, rattled triclinic cell with
    hybrid/overlay ZBL, both snippets; energies, forces, pressure and per-atom sigma equal serial by atom ID.
    Close pairs (1.9 A) put the ZBL inside its switching range."""
    atoms = bulk("Al", "fcc", a=4.05).repeat((4, 4, 4))     # the primitive cell: a triclinic box
    atoms.rattle(0.15, seed=11)
    atoms.positions[1] = atoms.positions[0] + [1.9, 0.0, 0.0]
    folder = zbl_overlaid(tmp_path, name)
    md = "velocity all create 600 3 mom yes\nfix nve all nve\ntimestep 0.001"
    for mode in ("mliappy", "snap"):
        snippet = folder / f"{name}.{mode}.lammps"
        assert "hybrid/overlay zbl 2.0 3.0" in snippet.read_text()
        serial = run_cell(runner, atoms, snippet, steps=10, md=md)
        parallel = run_cell(runner, atoms, snippet, nprocs=4, steps=10, md=md)
        log = (runner.workdir / "log.lammps").read_text()
        grid = re.search(r"(\d+) by (\d+) by (\d+) MPI processor grid", log)
        assert "triclinic box" in log and np.prod([int(g) for g in grid.groups()]) == 4
        np.testing.assert_array_equal(parallel["id"], serial["id"])
        assert parallel["energy"] == pytest.approx(serial["energy"], rel=1e-10)
        np.testing.assert_allclose(parallel["forces"], serial["forces"], rtol=1e-7, atol=1e-9)
        np.testing.assert_allclose(parallel["pressure"], serial["pressure"], rtol=1e-7, atol=1e-6)
        np.testing.assert_allclose(parallel["sigma"], serial["sigma"], rtol=1e-8)
        assert np.all(np.isfinite(parallel["sigma"])) and parallel["sigma"].min() > 0


@pytest.mark.mpi
def test_four_ranks_with_three_empty_match_serial(runner):
    """A small slab at the bottom of a tall box on a 1x1x4 grid: three of four ranks own no atoms."""
    empty_ranks_match_serial(runner, (2, 2, 3), 60.0, 1.0, nprocs=4, forces=True)
