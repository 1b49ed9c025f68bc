"""The uncertainty fix under LAMMPS: flagging, writing, halting, aborting, killing, local environments."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
from ase.build import bulk
from ase.io import read

from lammps_al.core import runtime
from lammps_al.core.records import (FlaggedEntry, read_flagged, read_run_log, read_run_status, run_log_path,
                                    run_status_path)

ROOT = Path(__file__).resolve().parents[2]
POTENTIALS = ROOT / "potentials"
QUADRATIC = POTENTIALS / "Al_quadratic.mliappy.lammps"

CELL_INPUT = """\
units metal
atom_style atomic
atom_modify map array
read_data cell.lmp
mass 1 26.9815
include ${potential}
include ${fixsnippet}
timestep 0.0
run ${steps}
"""


def lmp_args(runner, script: str, outdir: Path, **variables) -> list[str]:
    args = [str(runtime.find_lmp()), "-nocite", "-log", "none", "-in", script,
            "-var", "lal_fix_outdir", str(outdir), "-var", "lal_potdir", str(POTENTIALS),
            "-var", "fixsnippet", str(ROOT / "in_files" / "lammps_al_fix.lammps")]
    for name, value in variables.items():
        args += ["-var", name, str(value)]
    return args


def run_in_file(runner, name: str, outdir: Path, nprocs: int = 1, check: bool = True, timeout: float = 600, **variables):
    """Run in_files/NAME as a user would, from a folder of their own (the inputs find lammps_al's files)."""
    args = [str(runtime.find_lmp()), "-nocite", "-log", "none", "-in", str(ROOT / "in_files" / name),
            "-var", "lal_fix_outdir", str(outdir)]
    for key, value in variables.items():
        args += ["-var", key, str(value)]
    cmd = runtime.mpi_command(nprocs, *args)
    proc = subprocess.run(cmd, cwd=runner.workdir, env=runtime.lammps_env(), capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} exited {proc.returncode}:\n{proc.stdout[-3000:]}{proc.stderr[-3000:]}")
    return proc


def manifest(outdir: Path) -> list[FlaggedEntry]:
    return read_flagged(outdir)


def test_serial_and_mpi_flag_the_same_steps_and_write_the_same_configurations(runner, tmp_path):
    outputs = {}
    for n in (1, 2):
        out = tmp_path / f"np{n}"
        run_in_file(runner, "explore_heating.in", out, nprocs=n, reps=3, steps=400, lal_score_every=10,
                    lal_flag=0.005, lal_halt=1.0, lal_min_write_interval=100, lal_max_writes=10, lal_run_id="run")
        outputs[n] = out
    serial, parallel = manifest(outputs[1]), manifest(outputs[2])
    assert len(serial) >= 2, "the test needs a run that writes more than once"
    assert [e.step for e in serial] == [e.step for e in parallel]
    assert {e.nranks for e in parallel} == {2}
    for a, b in zip(serial, parallel):
        x, y = read(outputs[1] / a.file), read(outputs[2] / b.file)
        assert np.array_equal(x.arrays["id"], y.arrays["id"])
        np.testing.assert_allclose(x.positions, y.positions, atol=1e-6)
        np.testing.assert_allclose(x.arrays["per_atom_sigma"], y.arrays["per_atom_sigma"], rtol=1e-5)
    actions = [[r.action for r in read_run_log(run_log_path(outputs[n], "run"))] for n in (1, 2)]
    assert actions[0] == actions[1] and "write" in actions[0]  # same action on every scoring step


@pytest.mark.parametrize("nprocs", [1, pytest.param(2, marks=pytest.mark.mpi)])
def test_the_displaced_atom_is_the_flagged_atom_in_the_file(runner, tmp_path, nprocs):
    atoms = bulk("Al", "fcc", a=4.05, cubic=True).repeat(3)
    atoms.positions[13] += [0.8, 0.0, 0.0]            # atom ID 14
    atoms.write(runner.workdir / "cell.lmp", format="lammps-data", specorder=["Al"])
    (runner.workdir / "in.cell").write_text(CELL_INPUT)
    out = tmp_path / "flagged"
    # 0.8 A in a perfect lattice scores 0.023 eV here, below the calibrated flag (0.035): flag at 0.01
    cmd = runtime.mpi_command(nprocs, *lmp_args(runner, "in.cell", out, potential=QUADRATIC, steps=1,
                                                lal_score_every=1, lal_flag=0.01, lal_halt=1.0))
    proc = subprocess.run(cmd, cwd=runner.workdir, env=runtime.lammps_env(), capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:]
    [entry] = manifest(out)
    assert entry.max_sigma_id == 14
    written = read(out / entry.file)
    flagged_ids = written.arrays["id"][written.arrays["flagged"]]
    assert 14 in flagged_ids
    assert written.arrays["id"][np.argmax(written.arrays["per_atom_sigma"])] == 14


def test_heating_into_the_melt_flags_then_halts(runner, tmp_path):
    out = tmp_path / "melt"
    proc = run_in_file(runner, "explore_melt.in", out, nprocs=2, check=False, reps=3, steps=3000,
                       lal_halt_factor=4.0, lal_run_id="melt")
    assert proc.returncode != 0                      # halt stops LAMMPS (lal_halt_action hard)
    assert "lammps_al: HALT" in proc.stderr and "left its training domain" in proc.stderr
    entries = manifest(out)
    assert entries and entries[-1].halt is True
    assert any(not e.halt for e in entries) or len(entries) == 1
    status = read_run_status(run_status_path(out, "melt"))
    assert status.status == "halted" and "left its training domain" in status.reason
    last = read_run_log(run_log_path(out, "melt"))[-1]
    assert last.action == "halt" and last.max_sigma >= entries[-1].halt_threshold
    assert status.step == last.step and status.max_sigma == pytest.approx(last.max_sigma, rel=1e-8)


def test_a_run_inside_the_training_domain_flags_nothing(runner, tmp_path):
    out = tmp_path / "calm"
    run_in_file(runner, "explore_heating.in", out, nprocs=2, reps=3, steps=300, t_start=300, t_stop=300,
                lal_run_id="calm")
    assert manifest(out) == []
    rows = read_run_log(run_log_path(out, "calm"))
    assert len(rows) == 30 and all(r.action == "none" for r in rows)
    assert read_run_status(run_status_path(out, "calm")).status == "started"      # never halted


def test_an_exception_on_one_rank_stops_the_whole_job_quickly(runner, tmp_path):
    start = time.monotonic()
    proc = run_in_file(runner, "explore_heating.in", tmp_path / "fault", nprocs=2, check=False, timeout=120, reps=3,
                       steps=2000, lal_fault_rank=1)
    elapsed = time.monotonic() - start
    text = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert elapsed < 60, f"the job took {elapsed:.0f} s to stop"
    records = list((tmp_path / "fault" / "runs").glob("*.error-rank1.txt"))   # the durable record
    assert len(records) == 1
    recorded = records[0].read_text()
    assert "Traceback" in recorded and "fault injected on rank 1" in recorded
    assert "fault injected on rank 1" in text and "on rank 1" in text


def test_sigkill_while_writing_leaves_every_named_file_complete(runner, tmp_path):
    out = tmp_path / "killed"
    args = lmp_args(runner, str(ROOT / "in_files" / "explore_heating.in"), out, reps=4, steps=100000,
                    lal_score_every=1, lal_flag=1e-6, lal_halt=100.0, lal_min_write_interval=0,
                    lal_max_writes=100000, lal_dedup=0)
    for delay in (4.0, 6.5):
        proc = subprocess.Popen(runtime.mpi_command(2, *args), cwd=runner.workdir, env=runtime.lammps_env(),
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        time.sleep(delay)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    entries = manifest(out)
    assert len(entries) > 5
    for e in entries:
        frames = read(out / e.file, index=":")
        assert len(frames) == 1 and len(frames[0]) == e.natoms == 256


def test_local_environment_is_the_same_in_a_replicated_cell(runner, tmp_path):
    """A 32,000-atom cell replicated from a 4,000-atom one gives the same neighbourhood of the same atom."""
    base = bulk("Al", "fcc", a=4.05, cubic=True).repeat(10)
    base.rattle(0.02, seed=3)
    base.positions[1234] += [0.7, 0.2, 0.0]
    base.write(runner.workdir / "cell.lmp", format="lammps-data", specorder=["Al"])
    envs = {}
    for reps, label in ((1, "small"), (2, "big")):
        script = CELL_INPUT.replace("read_data cell.lmp", f"read_data cell.lmp\nreplicate {reps} {reps} {reps}")
        (runner.workdir / f"in.{label}").write_text(script)
        out = tmp_path / label
        cmd = runtime.mpi_command(2, *lmp_args(runner, f"in.{label}", out, potential=QUADRATIC, steps=1,
                                               lal_score_every=1, lal_local_above=1000, lal_max_envs=1,
                                               lal_flag=0.01, lal_halt=1.0))
        proc = subprocess.run(cmd, cwd=runner.workdir, env=runtime.lammps_env(), capture_output=True, text=True,
                              timeout=600)
        assert proc.returncode == 0, proc.stdout[-3000:]
        [entry] = manifest(out)
        assert entry.kind == "local_environment" and entry.source_natoms == 4000 * reps**3
        envs[label] = read(out / entry.file)
    small, big = envs["small"], envs["big"]
    assert len(small) == len(big) < 200
    for env in (small, big):
        assert env.arrays["flagged"].sum() == 1 and env.arrays["buffer"].any() and not env.arrays["buffer"].all()

    def relative(env):
        center = env.positions[env.arrays["flagged"]][0]
        d = env.positions - center
        return d[np.lexsort(np.round(d, 6).T)]

    np.testing.assert_allclose(relative(small), relative(big), atol=1e-6)


@pytest.mark.parametrize("variables, message", [
    ({"lal_flag": -1.0, "lal_halt": 1.0}, "thresholds must be > 0"),
    ({"lal_flag": 0.5, "lal_halt": 0.1}, "must be above the flag threshold"),
    ({"lal_scorer": "none"}, "the fix needs per-atom uncertainty"),
    ({"lal_score_every": 0}, "lal_score_every must be a positive number of steps"),
])
@pytest.mark.parametrize("nprocs", [1, pytest.param(2, marks=pytest.mark.mpi)])
def test_bad_settings_stop_lammps_at_setup(runner, tmp_path, variables, message, nprocs):
    proc = run_in_file(runner, "explore_heating.in", tmp_path / "out", nprocs=nprocs, check=False, timeout=120, reps=3,
                       steps=100, **variables)
    assert proc.returncode != 0
    assert message in proc.stdout + proc.stderr
    assert "Step" not in proc.stdout.split("lammps_al")[0] or "Loop time" not in proc.stdout


def test_unwritable_output_folder_stops_lammps_at_setup(runner, tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    proc = run_in_file(runner, "explore_heating.in", blocker / "flagged", nprocs=2, check=False, timeout=120, reps=3,
                       steps=100)
    assert proc.returncode != 0
    assert "is not writable" in proc.stdout + proc.stderr and "lal_fix_outdir" in proc.stdout + proc.stderr
    assert "Loop time" not in proc.stdout


FULL_DISK = """
import errno, os
_real_fsync = os.fsync

def _fsync(fd):
    name = os.readlink(f"/proc/self/fd/{fd}")
    if name.endswith(".tmp") and ".extxyz." in name:
        raise OSError(errno.ENOSPC, "No space left on device")
    return _real_fsync(fd)

os.fsync = _fsync
"""


@pytest.mark.parametrize("nprocs", [1, 2])
def test_a_full_disk_while_the_fix_writes_stops_the_run_with_the_path(runner, tmp_path, nprocs):
    """Every flagged file's fsync fails with ENOSPC (a sitecustomize in LAMMPS's Python): the run stops at
    the first write with the file, the free space and what to do, not a traceback; no file named in the
    manifest is incomplete and no temporary file is left."""
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(FULL_DISK)
    env = runtime.lammps_env()
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(hook), env.get("PYTHONPATH", "")) if p)
    out = tmp_path / "full"
    args = [str(runtime.find_lmp()), "-nocite", "-log", "none", "-in", str(ROOT / "in_files" / "explore_heating.in"),
            "-var", "lal_fix_outdir", str(out), "-var", "reps", "3", "-var", "steps", "2000", "-var", "lal_flag",
            "1e-6", "-var", "lal_halt", "100", "-var", "lal_run_id", "full"]
    proc = subprocess.run(runtime.mpi_command(nprocs, *args), cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=300, stdin=subprocess.DEVNULL)
    text = proc.stdout + proc.stderr
    assert proc.returncode != 0, text[-3000:]
    assert re.search(r"ERROR \(lammps_al\) on rank 0: cannot write \S+\.extxyz: No space left on device \([\d.]+ MB free "
                     r"there, this write needs [\d.]+ MB\); free space there", text), text[-3000:]
    assert "Traceback" not in text
    assert manifest(out) == []
    assert not list(out.rglob("*.tmp"))


@pytest.mark.parametrize("variables, fragment", [
    ({"lal_score_every": "2.5"}, "2.5"),                      # LAMMPS converts it before lammps_al sees it
    ({"lal_in_files": "/nonexistent/in_files"}, "/nonexistent/in_files/explore_common.lammps"),
    ({"reps": "abc"}, "abc"),                                  # an exploration input's own variable
    ({"t_start": "hot"}, "hot"),
])
def test_inputs_lammps_itself_checks_stop_with_the_value_and_no_traceback(runner, tmp_path, variables, fragment):
    """Values only LAMMPS reads (lammps_al does not see them first): LAMMPS's own ERROR line names the value
    or the file; no Python traceback, no crash signal."""
    proc = run_in_file(runner, "explore_heating.in", tmp_path / "out", check=False, timeout=120, steps=10,
                       **variables)
    text = proc.stdout + proc.stderr
    errors = [line for line in text.splitlines() if "ERROR" in line]
    assert proc.returncode > 0 and errors and any(fragment in line for line in errors), text[-2000:]
    assert "Traceback" not in text
