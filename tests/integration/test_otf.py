"""On-the-fly learning inside one LAMMPS run (in_files/lammps_al_otf.lammps): labels, in-place updates on every
rank, the store, resuming, and bad input."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from lammps_al.core import runtime
from lammps_al.core.potential import COEFFICIENTS, COVARIANCE, load

ROOT = Path(__file__).resolve().parents[2]
CONFIG = (ROOT / "in_files" / "al_otf.toml").read_text()


def otf_run(tmp_path: Path, name: str, nprocs: int = 1, steps: int = 300, config: str = CONFIG,
            extra: dict | None = None, check: bool = True, env: dict | None = None):
    work = tmp_path / name
    work.mkdir(exist_ok=True)
    (work / "otf.toml").write_text(config)
    args = [str(runtime.find_lmp()), "-nocite", "-log", "log.lammps", "-in", str(ROOT / "in_files" / "al_otf.in")]
    variables = {"lal_otf_config": "otf.toml", "steps": steps, "reps": 3, "t_start": 600, "t_stop": 1200,
                 **(extra or {})}
    for key, value in variables.items():
        args += ["-var", key, str(value)]
    proc = subprocess.run(runtime.mpi_command(nprocs, *args), cwd=work, env=runtime.lammps_env({**os.environ,
                                                                                                 **(env or {})}),
                          capture_output=True,
                          text=True, timeout=600, stdin=subprocess.DEVNULL)
    if check:
        assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    return work, proc


def actions(work: Path) -> list[tuple[int, str]]:
    with open(work / "otf" / "otf.csv") as fh:
        return [(int(r["step"]), r["action"]) for r in csv.DictReader(fh) if r["action"] != "none"]


@pytest.mark.mpi
def test_serial_and_two_ranks_label_the_same_steps_and_end_with_the_same_model(tmp_path, lammps_install):
    serial, _ = otf_run(tmp_path, "serial", nprocs=1)
    parallel, _ = otf_run(tmp_path, "mpi", nprocs=2)
    updates = actions(serial)
    assert [a for _, a in updates].count("update") >= 2, updates
    assert actions(parallel) == updates
    a, b = load(serial / "otf/potential/otf.npz"), load(parallel / "otf/potential/otf.npz")
    for key in (COEFFICIENTS, COVARIANCE):       # the trajectories differ by rounding (sums in another order)
        difference = np.linalg.norm(b.arrays[key] - a.arrays[key]) / np.linalg.norm(a.arrays[key])
        assert difference < 1e-8, (key, difference)
    assert (serial / "otf" / "otf.png").stat().st_size > 1000
    assert (serial / "otf" / "potential" / "otf.snapcoeff").is_file()         # the final model, every file


def test_the_store_refits_to_the_in_run_model_and_a_second_run_resumes_from_it(tmp_path, lammps_install):
    """lammps-al fit OTF_DIR/fit.toml (the run writes it: the store, the same [fit] and candidates, the crystal
    check's group weights, model chosen by the evidence) gives the final in-run model; a second run in the
    same folder starts from every label of the first and labels nothing twice."""
    from lammps_al.core.records import read_label_records
    from lammps_al.cli import main

    work, _ = otf_run(tmp_path, "run")
    store = work / "otf" / "training"
    final = load(work / "otf/potential/otf.npz")
    model = final.settings["otf"]["model"]
    kind, twojmax = model.split(":")
    fit_config = work / "otf" / "fit.toml"         # written by the run: the store's batch fit
    assert main(["fit", str(fit_config), "--no-progress"]) == 0
    batch = load(work / "otf" / "refit" / "otf_refit.npz")
    assert f"{batch.model}:{batch.descriptor.twojmax}" == model
    from lammps_al.train.fitters import Candidate, column_index

    idx = column_index(final.descriptor.with_quadratic(final.model == "quadratic"), Candidate(kind, int(twojmax)))
    mine, theirs = final.arrays[COEFFICIENTS].ravel()[idx], batch.arrays[COEFFICIENTS].ravel()
    # the in-run posterior comes from the 496 x 496 Gram matrix, the batch fit's from an SVD of the rows: with
    # the crystal check's heavy rows the quadratic system is ill-conditioned enough that the two routes'
    # coefficients agree to ~1e-3 along directions no configuration sees; what the models predict for every
    # labelled configuration agrees to the rounding of the normal equations (measured with two vacancy cells
    # at x100 energy weight: energies 4.4e-8, forces 1.9e-5, relative; a row left out or counted twice moves
    # them by far more: 3 % less weight on those two cells alone gives 3.9e-7 and 1.2e-4)
    from lammps_al.train.descriptors import compute_blocks, design_matrix
    from lammps_al.train.store import LabelledStore

    configs = LabelledStore(store).load()
    assert {c.info["group"] for c in configs} >= {"start", "otf", "elastic", "vacancy"}    # the check labelled
    dm = design_matrix(configs, compute_blocks(configs, final.descriptor, final.reference), final.descriptor)
    for k in (0, 1):                              # energies (eV/atom) and forces (eV/A)
        rows = dm.A[dm.kind == k][:, idx]
        difference = np.sqrt(np.mean((rows @ (mine - theirs)) ** 2)) / np.sqrt(np.mean((rows @ theirs) ** 2))
        print(f"kind {k}: relative RMS difference of the predictions {difference:.2e}")
        assert difference < (1e-6, 5e-5)[k]
    assert "elastic" in (work / "otf" / "fit.toml").read_text()
    labels = [r for r in read_label_records(store / "manifest.jsonl") if r.status == "ok"]
    again, _ = otf_run(tmp_path, "run", steps=100)
    after = [r for r in read_label_records(store / "manifest.jsonl") if r.status == "ok"]
    assert after[:len(labels)] == labels
    assert len({r.hash for r in after}) == len(after)                    # nothing labelled twice


FAILING_ORACLE = """
import os

from ase.calculators.lammpslib import LAMMPSlib


class FailsOnBigCells(LAMMPSlib):
    \"\"\"The EAM oracle for the starting set's small cells; raises on anything bigger (a DFT run that does not
    converge).\"\"\"

    def __init__(self):
        path = os.path.join(os.environ["LAMMPS_POTENTIALS"], "Al_mm.eam.fs")
        super().__init__(lmpcmds=["pair_style eam/fs", f"pair_coeff * * {path} Al"], atom_types={"Al": 1},
                         keep_alive=True, log_file=None)

    def calculate(self, atoms=None, properties=("energy",), system_changes=()):
        if atoms is not None and len(atoms) > 8:
            raise RuntimeError("SCF did not converge")
        super().calculate(atoms, properties, system_changes)
"""


def test_stresses_of_an_oracle_whose_crystal_fails_born_are_not_weighed_up(tmp_path, lammps_install, user_oracles):
    """The crystal check reads the oracle's own C11/C12/C44 from the strained cells it labelled: when they fail
    Born's conditions it says so with the values, and their stress weight is (back at) x1."""
    config = CONFIG.replace('[oracle]\nname = "eam"\n[oracle.settings]\npotential = "Al_mm.eam.fs"\n',
                            '[oracle]\nname = "unstable_oracle:UnconvergedStress"\n')
    work, proc = otf_run(tmp_path, "unstable", config=config, steps=300, extra={"vacuum": 0})
    assert "not a stable cubic crystal's (C11 - C12 = -" in proc.stderr
    factors = json.loads((work / "otf" / "crystal.json").read_text())["factors"] \
        if (work / "otf" / "crystal.json").is_file() else {}
    assert factors.get("elastic", 1.0) == 1.0


RANK_ZERO_LABELS = """
import sys

from ase.build import bulk
from mpi4py import MPI

from lammps_al.train.oracles import OracleSpec, make_calculator

if MPI.COMM_WORLD.rank == 0:          # as the on-the-fly learner does: one rank labels, the others wait
    calc = make_calculator(OracleSpec("unstable_oracle:UnconvergedStress", {}), serial=True)
    atoms = bulk("Al", "fcc", a=4.05, cubic=True)
    atoms.calc = calc
    print("energy", atoms.get_potential_energy(), flush=True)
MPI.COMM_WORLD.barrier()
"""


@pytest.mark.mpi
def test_a_users_lammpslib_oracle_labels_on_one_rank_of_an_mpi_job(tmp_path, lammps_install, user_oracles):
    """A "package.module:Class" oracle that is an ASE LAMMPSlib given no comm: its LAMMPS would start on
    MPI_COMM_WORLD from rank 0 alone and wait forever for rank 1; the oracle gets MPI_COMM_SELF instead."""
    (tmp_path / "label_on_rank0.py").write_text(RANK_ZERO_LABELS)
    env = runtime.lammps_env(dict(os.environ))
    proc = subprocess.run(runtime.mpi_command(2, sys.executable, "label_on_rank0.py"), cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    energy = float(proc.stdout.split("energy")[1].split()[0])
    assert -3.5 * 4 < energy < -3.2 * 4                   # Mendelev's Al: -3.36 eV/atom at 4.05 A


def test_big_runs_label_the_flagged_atoms_local_environments(tmp_path, lammps_install):
    """Above lal_local_above atoms the fix writes the most uncertain atoms' neighbourhoods, cut into small
    cells: those are what the oracle labels and the posterior takes in (their buffer atoms' forces unfitted)."""
    from lammps_al.core.records import BUFFER_COLUMN, LOCAL_ENVIRONMENT
    from lammps_al.train.store import LabelledStore

    work, _ = otf_run(tmp_path, "local", steps=200, extra={"lal_local_above": 50, "lal_max_envs": 2})
    assert [a for _, a in actions(work)].count("update") >= 1, actions(work)
    learnt = [c for c in LabelledStore(work / "otf" / "training").load() if c.info["group"] == "otf"]
    assert learnt
    for cell in learnt:
        assert cell.info[LOCAL_ENVIRONMENT] and len(cell) < 126          # not the whole 126-atom slab
        assert 0 < np.count_nonzero(cell.arrays[BUFFER_COLUMN]) < len(cell)
    assert load(work / "otf" / "potential" / "otf.npz").settings["otf"]["rows"] > 0


def test_an_oracle_that_fails_is_recorded_and_the_run_goes_on(tmp_path, lammps_install):
    """Every flagged cell makes the oracle raise: each failure is recorded in the store and the CSV, and the
    run ends normally with the model it had."""
    from lammps_al.core.records import read_label_records

    (tmp_path / "failing_oracle.py").write_text(FAILING_ORACLE)
    config = CONFIG.replace('[oracle]\nname = "eam"\n[oracle.settings]\npotential = "Al_mm.eam.fs"\n',
                            '[oracle]\nname = "failing_oracle:FailsOnBigCells"\n')
    env = {"PYTHONPATH": os.pathsep.join(p for p in (str(tmp_path), os.environ.get("PYTHONPATH", "")) if p)}
    # the bulk crystal (the demo's slab is far enough out of the start set's domain to halt at once)
    work, proc = otf_run(tmp_path, "fails", config=config, steps=300, env=env, check=False, extra={"vacuum": 0})
    records = read_label_records(work / "otf" / "training" / "manifest.jsonl")
    failed = [r for r in records if r.status == "failed"]
    assert failed and all("SCF did not converge" in r.error for r in failed)
    ok = [r for r in records if r.status == "ok"]
    assert len([r for r in ok if r.group == "start"]) == 10 and not [r for r in ok if r.group == "otf"]
    assert "failed" in {a for _, a in actions(work)} and "update" not in {a for _, a in actions(work)}
    assert "the oracle failed" in proc.stderr
    # the old model went on until it was far out of its domain with nothing learnt: a clean halt, no garbage
    if proc.returncode != 0:
        assert actions(work)[-1][1] == "halt" and "no label could be learnt from it" in proc.stderr
        assert "Non-numeric" not in proc.stdout + proc.stderr


@pytest.mark.parametrize("config, message", [
    (CONFIG.replace("[oracle]\nname = \"eam\"\n[oracle.settings]\npotential = \"Al_mm.eam.fs\"\n", ""),
     "has no [oracle] section: on-the-fly learning labels with the oracle it names"),
    (CONFIG.replace('solver = "bayes"', 'solver = "ridge"'), "on-the-fly learning updates a Bayesian posterior"),
    (CONFIG.replace("target = 0.05", "target = -1"), "[otf] target must be > 0"),
    (CONFIG.replace("crystal_tolerance = 0.05", "crystal_tolerance = 5"), "[otf] crystal_tolerance must be in [0, 1)"),
])
def test_bad_otf_configs_stop_at_setup_with_the_file_and_the_value(tmp_path, lammps_install, config, message):
    work, proc = otf_run(tmp_path, "bad", config=config, steps=10, check=False)
    text = proc.stdout + proc.stderr
    assert proc.returncode != 0 and message in text and "Traceback" not in text, text[-2000:]


def test_a_potential_without_a_posterior_is_refused(tmp_path, lammps_install):
    from lammps_al.core.potential import save

    folder = tmp_path / "pot"
    shutil.copytree(ROOT / "potentials", folder, ignore=shutil.ignore_patterns("*.toml", "*.md"))
    p = load(folder / "Al_quadratic.npz")
    p.arrays.pop(COVARIANCE)
    for name in list(p.arrays):
        if not name.startswith("model."):
            p.arrays.pop(name)
    save(p, folder / "Al_quadratic.npz")
    work, proc = otf_run(tmp_path, "nocov", steps=10, check=False,
                         extra={"potential": folder / "Al_quadratic.mliappy.lammps", "lal_scorer": "none"})
    text = proc.stdout + proc.stderr
    assert proc.returncode != 0 and "on-the-fly learning" in text and "Traceback" not in text, text[-2000:]


KILL_AT_POTENTIAL = """
import os, signal
_real_replace = os.replace


def _replace(src, dst, *args, **kwargs):
    if str(dst).endswith("potential/otf.npz") and os.path.exists(str(dst)):
        os.kill(os.getpid(), signal.SIGKILL)        # a label stored, its update not yet written
    return _real_replace(src, dst, *args, **kwargs)


os.replace = _replace
"""


def test_sigkill_in_the_middle_of_an_update_loses_no_label_and_the_next_run_resumes(tmp_path, lammps_install):
    """SIGKILL (from inside LAMMPS's Python) just before the first update's potential file is renamed: the
    label is in the store; the next run in the same folder starts from all of them, labels nothing twice, and
    ends normally."""
    from lammps_al.core.records import read_label_records

    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(KILL_AT_POTENTIAL)
    env = {"PYTHONPATH": os.pathsep.join(p for p in (str(hook), os.environ.get("PYTHONPATH", "")) if p)}
    work, proc = otf_run(tmp_path, "killed", env=env, check=False)
    assert proc.returncode != 0
    manifest = work / "otf" / "training" / "manifest.jsonl"
    before = [r for r in read_label_records(manifest) if r.status == "ok"]
    # the starting set (with the crystal check's cells) and the label of the killed update
    assert len([r for r in before if r.group == "start"]) == 10 and len([r for r in before if r.group == "otf"]) == 1
    work, proc = otf_run(tmp_path, "killed", steps=100)
    after = [r for r in read_label_records(manifest) if r.status == "ok"]
    assert after[:len(before)] == before and len({r.hash for r in after}) == len(after)
    at_start = [r for r in after[len(before):] if r.group in ("elastic", "vacancy") and "/step000/" in r.source]
    assert f"{len(before) + len(at_start)} labels in the store" in proc.stderr      # the check's, if any
