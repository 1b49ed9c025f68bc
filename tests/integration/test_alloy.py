"""A binary (Al-Cu) end to end: a potential fitted from the binary minimal start labelled by the Cai-Ye EAM, run
inside LAMMPS serial and under mpirun with any type map, checked against its ASE twin, refused with clear
errors for type maps and masses that contradict it; the alloy properties of validation; one loop iteration
through every alloy exploration input."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from ase.build import bulk

from lammps_al.core.elements import element_data

ROOT = Path(__file__).resolve().parents[2]
ALCU = {"potential": "AlCu.eam.alloy", "elements": ["Al", "Cu"]}

FIT_CONFIG = """\
[training]
dir = "training"
[oracle]
name = "eam"
workers = 1
[oracle.settings]
potential = "AlCu.eam.alloy"
elements = ["Al", "Cu"]
[label]
inputs = ["structures"]
[descriptor]
elements = ["Al", "Cu"]
twojmax = 4
rcutfac = 4.5
radelem = [0.5, 0.5]
wj = [1.0, 0.8]
bzeroflag = 1
switchflag = 1
[fit]
model = "quadratic"
solver = "bayes"
workers = 1
output_dir = "pots"
name = "AlCu_test"
[groups.default]
energy_weight = 100.0
force_weight = 1.0
stress_weight = 1.0e-4
"""


def random_alloy(x: float, seed: int, reps: int = 3, rattle: float = 0.08):
    atoms = bulk("Al", "fcc", a=(1 - x) * 4.05 + x * 3.615, cubic=True).repeat(reps)
    rng = np.random.default_rng(seed)
    atoms.symbols[rng.choice(len(atoms), size=int(round(x * len(atoms))), replace=False)] = "Cu"
    atoms.rattle(rattle, seed=seed)
    return atoms


def fitted(folder: Path, config: str) -> Path:
    """The binary minimal start and four rattled random solid solutions, labelled by the Cai-Ye EAM and fitted
    through `lammps-al label` and `lammps-al fit` with ``config``."""
    from lammps_al.train.structures import binary_minimal_set, write_set

    cells = binary_minimal_set(("Al", "Cu"), seed=1)
    for i, x in enumerate((0.1, 0.3, 0.6, 0.85)):
        atoms = random_alloy(x, seed=10 + i, reps=2)
        atoms.info["kind"] = "solution"
        cells.append(atoms)
    write_set(cells, folder / "structures")
    (folder / "fit.toml").write_text(config)
    for command in ("label", "fit"):
        subprocess.run([sys.executable, "-m", "lammps_al.cli", command, "fit.toml", "--no-progress"], cwd=folder,
                       check=True, stdin=subprocess.DEVNULL, timeout=600)
    return folder / "pots"


@pytest.fixture(scope="module")
def alcu(tmp_path_factory, lammps_install) -> Path:
    """A quadratic 2J=4 Al-Cu potential (folder of AlCu_test.*)."""
    return fitted(tmp_path_factory.mktemp("alcu"), FIT_CONFIG)


@pytest.fixture(scope="module")
def alcu_chem(tmp_path_factory, lammps_install) -> Path:
    """A linear 2J=4 Al-Cu potential with the chemistry-aware bispectrum (chemflag): 8 x 14 components."""
    config = FIT_CONFIG.replace("switchflag = 1\n", "switchflag = 1\nchemflag = 1\n").replace(
        'model = "quadratic"', 'model = "linear"')
    return fitted(tmp_path_factory.mktemp("alcu_chem"), config)


INPUT = """\
units metal
atom_style atomic
atom_modify map array
read_data cell.lmp
${masses}
include ${snippet}
compute pe all pe/atom
thermo_style custom step pe c_lal_max_sigma
thermo_modify format float %20.15g
dump d all custom 1 atoms.dump id type c_pe fx fy fz d_lal_sigma
dump_modify d sort id format float %20.15g
run 0
"""


def run_binary(runner, atoms, snippet: Path, types: list[str], nprocs: int = 1, scorer: str = "bayes",
               masses: list[float] | None = None, check: bool = True):
    """``atoms`` as a data file with one LAMMPS type per entry of ``types`` (an element may come twice: its
    atoms alternate between its types), run 0 with the snippet and lal_elements = types."""
    symbols = atoms.get_chemical_symbols()
    seen: dict[str, int] = {}
    type_of = []
    for s in symbols:
        choices = [t for t, e in enumerate(types, 1) if e == s]
        type_of.append(choices[seen.get(s, 0) % len(choices)])
        seen[s] = seen.get(s, 0) + 1
    cell = atoms.cell.array
    lines = ["binary cell", "", f"{len(atoms)} atoms", f"{len(types)} atom types", "",
             f"0 {cell[0, 0]:.12f} xlo xhi", f"0 {cell[1, 1]:.12f} ylo yhi", f"0 {cell[2, 2]:.12f} zlo zhi", "",
             "Atoms # atomic", ""]
    lines += [f"{i + 1} {t} {x:.12f} {y:.12f} {z:.12f}" for i, (t, (x, y, z)) in enumerate(zip(type_of, atoms.positions))]
    (runner.workdir / "cell.lmp").write_text("\n".join(lines) + "\n")
    (runner.workdir / "in.cell").write_text(INPUT)
    masses = masses or [element_data(e).mass for e in types]
    mass_lines = "\n".join(f"mass {t} {m}" for t, m in enumerate(masses, 1))
    (runner.workdir / "masses.in").write_text(mass_lines + "\n")
    extra = ["-log", "log.lammps", "-var", "snippet", str(snippet), "-var", "lal_potdir", str(snippet.parent),
             "-var", "lal_scorer", scorer, "-var", "lal_elements", " ".join(types),
             "-var", "masses", "include masses.in"]
    proc = runner.lmp("in.cell", nprocs=nprocs, extra=extra, check=check, timeout=300)
    if not check:
        return proc
    text = (runner.workdir / "atoms.dump").read_text().split("ITEM: ATOMS")[-1].splitlines()[1:]
    table = np.array([[float(x) for x in line.split()] for line in text if line.strip()])
    return {"id": table[:, 0].astype(int), "type": table[:, 1].astype(int), "energies": table[:, 2],
            "forces": table[:, 3:6], "sigma": table[:, 6]}


@pytest.mark.parametrize("chem", [False, True])
@pytest.mark.parametrize("scorer", ["bayes", "bayes_force"])
def test_a_binary_cell_is_the_same_serial_and_under_mpirun_in_both_modes(runner, request, scorer, chem):
    """mliappy and native snap, 1 and 2 ranks: identical per-atom energies, forces and sigma by atom ID; the
    ASE twin agrees; sigma is positive on both elements. Plain and chemistry-aware (chemflag) bispectrum."""
    from lammps_al.core.potential import load
    from lammps_al.train.calculator import SNAPCalculator

    alcu = request.getfixturevalue("alcu_chem" if chem else "alcu")
    assert load(alcu / "AlCu_test.npz").descriptor.chemflag == int(chem)
    atoms = random_alloy(0.35, seed=5)
    results = {(mode, n): run_binary(runner, atoms, alcu / f"AlCu_test.{mode}.lammps", ["Al", "Cu"], n, scorer)
               for mode in ("mliappy", "snap") for n in (1, 2)}
    ref = results[("mliappy", 1)]
    assert set(ref["type"]) == {1, 2}
    for key, r in results.items():
        np.testing.assert_array_equal(r["id"], ref["id"])
        np.testing.assert_allclose(r["energies"], ref["energies"], rtol=1e-9, atol=1e-10, err_msg=str(key))
        np.testing.assert_allclose(r["forces"], ref["forces"], rtol=1e-8, atol=1e-9, err_msg=str(key))
        np.testing.assert_allclose(r["sigma"], ref["sigma"], rtol=1e-9, err_msg=str(key))
    for t in (1, 2):
        assert ref["sigma"][ref["type"] == t].min() > 0
    calc = SNAPCalculator(alcu / "AlCu_test.npz", scorer=scorer)
    atoms.calc = calc
    np.testing.assert_allclose(ref["energies"], atoms.get_potential_energies(), rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(ref["forces"], atoms.get_forces(), rtol=1e-8, atol=1e-9)
    calc.close()


@pytest.mark.parametrize("mode", ["mliappy", "snap"])
def test_two_atom_types_of_the_same_element_give_the_same_physics(runner, alcu_chem, mode):
    """lal_elements "Al Cu Al": aluminium split over types 1 and 3 gives what "Al Cu" gives, atom by atom (with
    chemflag, whose per-type element map must follow lal_elements too)."""
    atoms = random_alloy(0.25, seed=7)
    two = run_binary(runner, atoms, alcu_chem / f"AlCu_test.{mode}.lammps", ["Al", "Cu"])
    three = run_binary(runner, atoms, alcu_chem / f"AlCu_test.{mode}.lammps", ["Al", "Cu", "Al"], nprocs=2)
    assert set(three["type"]) == {1, 2, 3}
    np.testing.assert_allclose(three["energies"], two["energies"], rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(three["forces"], two["forces"], rtol=1e-8, atol=1e-9)
    np.testing.assert_allclose(three["sigma"], two["sigma"], rtol=1e-9)


@pytest.mark.parametrize("nprocs", [1, 2])
def test_type_maps_and_masses_that_contradict_the_potential_stop_at_setup(runner, alcu, nprocs):
    atoms = random_alloy(0.3, seed=3, reps=2)
    snippet = alcu / "AlCu_test.mliappy.lammps"

    def failing(types, expected, masses=None, data_types=None):
        proc = run_binary(runner, atoms, snippet, data_types or types, nprocs, masses=masses, check=False)
        if data_types:        # lal_elements differs from the data file's types
            proc = runner.lmp("in.cell", nprocs=nprocs, check=False, timeout=300, extra=[
                "-log", "log.lammps", "-var", "snippet", str(snippet), "-var", "lal_potdir", str(alcu),
                "-var", "lal_elements", " ".join(types), "-var", "masses", "include masses.in"])
        assert proc.returncode == 2, proc.stdout[-3000:]
        assert proc.stdout.count("ERROR (lammps_al): ") == nprocs, proc.stdout[-3000:]
        assert expected in proc.stdout, proc.stdout[-3000:]
        assert "Traceback" not in proc.stdout

    failing(["Al", "Mg"], "lal_elements names element 'Mg', but", data_types=["Al", "Cu"])
    failing(["Al"], "the box has 2 atom type(s) but lal_elements = 'Al' names 1", data_types=["Al", "Cu"])
    failing(["Al", "Cu", "Cu"], "the box has 2 atom type(s) but lal_elements = 'Al Cu Cu' names 3",
            data_types=["Al", "Cu"])
    failing(["Al", "Cu"], "atom type 2 has mass 26.9815 g/mol but lal_elements maps it to Cu (63.55 g/mol; 26.9815 "
                          "g/mol is the mass of Al): set 'mass 2 63.5460'", masses=[26.9815, 26.9815])


def test_chemflag_columns_of_a_smaller_model_are_its_own_descriptors(lammps_install):
    """The evidence compares 2J=2 and 2J=4 from one design matrix: with chemflag the 2J=2 columns picked out of
    the 2J=4 matrix (per element triple) equal compute snap's own 2J=2 chemistry-aware descriptors."""
    from lammps_al.core.descriptor import SNAPSettings
    from lammps_al.train.descriptors import SnapWorker
    from lammps_al.train.fitters import linear_subset

    base = dict(elements=["Al", "Cu"], twojmax=4, rcutfac=4.5, radelem=[0.5, 0.5], wj=[1.0, 0.8], bzeroflag=1,
                switchflag=1, chemflag=1)
    big = SNAPSettings.from_dict(base)
    small = SNAPSettings.from_dict({**base, "twojmax": 2})
    assert big.n_descriptors == 14 * 8 and small.n_descriptors == 5 * 8
    atoms = random_alloy(0.4, seed=2, reps=2)
    blocks = []
    for s in (big, small):
        worker = SnapWorker(s)
        try:
            blocks.append(worker.compute(atoms).per_atom)
        finally:
            worker.close()
    picked = blocks[0][:, linear_subset(4, 2, big.n_triples)]
    np.testing.assert_allclose(picked, blocks[1][:, :small.n_descriptors], rtol=1e-10, atol=1e-12)
    assert np.abs(blocks[1]).max() > 0


def test_alloy_properties_of_the_reference_match_what_it_was_fitted_to(lammps_install):
    """Cai and Ye's EAM (PRB 54, 8398 (1996)) is fitted to the measured pure metals: the reference column of an
    alloy validation must give back the lattice constants (Al 4.05 A, Cu 3.615 A; to 0.5 %) and the cohesive
    energies (Kittel: Al 3.39 eV, Cu 3.49 eV; to 3 %); the ordered compounds bind (negative formation
    energies) and the liquid mixes exothermically, as Al-Cu does."""
    from lammps_al.train.lammps_calc import oracle_pair
    from lammps_al.train.oracles import OracleSpec
    from lammps_al.validate.alloy import alloy_properties

    props = alloy_properties(oracle_pair(OracleSpec("eam", dict(ALCU))))
    assert props["lattice_constant_Al_A"] == pytest.approx(4.05, rel=5e-3)
    assert props["lattice_constant_Cu_A"] == pytest.approx(3.615, rel=5e-3)
    assert props["cohesive_energy_Al_eV"] == pytest.approx(3.39, rel=0.03)
    assert props["cohesive_energy_Cu_eV"] == pytest.approx(3.49, rel=0.03)
    formation = {k: v for k, v in props.items() if k.startswith("formation_")}
    assert len(formation) == 5 and all(-0.5 < v < 0 for v in formation.values()), formation
    mixing = [v for k, v in props.items() if k.startswith("liquid_mixing")]
    assert len(mixing) == 3 and all(-0.5 < v < 0 for v in mixing)
    assert props["solution_energy_Cu_in_Al_eV"] < 0


def test_one_loop_iteration_runs_every_alloy_exploration_input(tmp_path, lammps_install):
    """The demo's config, shortened: the binary minimal start is labelled, fitted, and every exploration input
    (pure host, solid solutions heated, solutes and vacancies, theta on fcc Al, a Cu-rich cluster,
    coexistence) runs with the binary potential to its end or a halt, none crashes; the held-out set holds
    both elements and several compositions."""
    import json
    import re
    import tomllib

    from lammps_al.core.records import ExploreRecord, read_marker

    text = (ROOT / "in_files" / "alcu_demo.toml").read_text().replace("iterations = 10", "iterations = 1")
    text = re.sub(r"steps = 2000", "steps = 200", text)
    text = text.replace("steps_nph = 1000, steps_avg = 700", "steps_nph = 200, steps_avg = 100")
    config = tomllib.loads(text)
    for name in {r["input"] for r in config["explore"]}:
        text = text.replace(f'input = "{name}"', f'input = "{ROOT / "in_files" / name}"')
    (tmp_path / "loop.toml").write_text(text)
    proc = subprocess.run([sys.executable, "-m", "lammps_al.cli", "loop", "loop.toml", "--workdir", "w",
                           "--no-progress"], cwd=tmp_path, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-4000:]
    explored = read_marker(tmp_path / "w" / "iter_000", ExploreRecord)
    assert set(explored.runs) == {r["name"] for r in config["explore"]}
    for name, run in explored.runs.items():
        assert run.status in ("completed", "halted"), (name, run.status, run.returncode)
    plan = json.loads((tmp_path / "w" / "held_out.plan.json").read_text())
    assert plan["elements"] == ["Al", "Cu"]
    held = json.loads((tmp_path / "w" / "iter_001" / "held_out.json").read_text())
    assert set(held["force_rmse_per_element"]) == {"Al", "Cu"}
    assert any(k.startswith("liquid-x0.55") for k in held["force_rmse_per_kind"])
    shutil.rmtree(tmp_path / "w" / "training", ignore_errors=True)


def test_the_shipped_alloy_potential_runs_the_same_in_both_snippets_serial_and_mpirun(runner):
    """potentials/AlCu.* (made by in_files/alcu_demo.toml): mliappy and native snap, 1 and 2 ranks, identical
    energies, forces and sigma by atom ID on a random Al-Cu cell; its potential file names the config."""
    from lammps_al.core.potential import load

    shipped = ROOT / "potentials"
    assert load(shipped / "AlCu.npz").elements == ("Al", "Cu")
    assert (shipped / "AlCu.loop.toml").read_text() == (ROOT / "in_files" / "alcu_demo.toml").read_text()
    atoms = random_alloy(0.3, seed=8)
    results = {(mode, n): run_binary(runner, atoms, shipped / f"AlCu.{mode}.lammps", ["Al", "Cu"], n)
               for mode in ("mliappy", "snap") for n in (1, 2)}
    ref = results[("mliappy", 1)]
    for key, r in results.items():
        np.testing.assert_allclose(r["energies"], ref["energies"], rtol=1e-9, atol=1e-10, err_msg=str(key))
        np.testing.assert_allclose(r["forces"], ref["forces"], rtol=1e-8, atol=1e-9, err_msg=str(key))
        np.testing.assert_allclose(r["sigma"], ref["sigma"], rtol=1e-9, err_msg=str(key))


@pytest.mark.parametrize("name", ["explore_alloy_heating", "explore_alloy_solute", "explore_alloy_cluster",
                                  "explore_theta"])
def test_each_alloy_input_runs_by_hand_with_its_defaults(runner, name):
    """`mpirun -np 2 lmp -in in_files/NAME.in` from any folder: the shipped AlCu potential, aluminium with copper
    by default; no two atoms closer than a bond would allow (the cells are built right)."""
    from ase.io import read

    from lammps_al.loop.select import close_contact

    proc = runner.lmp(str(ROOT / "in_files" / f"{name}.in"), nprocs=2, timeout=300,
                      extra=["-log", "none", "-var", "steps", "10", "-var", "lal_fix_outdir", "out",
                             "-var", "lal_flag", "1e-9", "-var", "lal_halt", "1e9"])
    assert "Loop time" in proc.stdout and "ERROR" not in proc.stdout
    written = sorted((runner.workdir / "out").glob("*.extxyz"))
    assert written, "the fix wrote nothing although it flags everything"
    atoms = read(written[0])
    assert {"Al", "Cu"} <= set(atoms.get_chemical_symbols())
    assert close_contact(atoms) == ""
