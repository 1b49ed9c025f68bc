"""Faults: ``lammps-al loop`` killed with SIGKILL in each stage, then ``--resume``.

The loop runs as its own process (its own session, as from a shell). A small wrapper kills it with SIGKILL
at a chosen point, from inside: just before the n-th file rename whose destination matches a pattern (the
write of a label, a potential, a stage marker), i.e. with the temporary file written and the final name not
yet taken, the worst moment for a half-written file. During exploration the test kills it from outside,
the whole process group or the loop alone, while its ``mpirun`` job runs: the job is left behind (it is in
its own session), and the resumed loop must stop it before it explores again.

After each kill, ``--resume`` must end normally with: every label once (no two store records of the same
structure), every file the manifest names complete, no temporary file read as data, the learning curve
complete, and no orphan process.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lammps_al.core import runtime
from lammps_al.core.records import History, read_marker, read_run_log, run_log_path
from lammps_al.loop.config import iter_dir, load_loop_config
from lammps_al.train.store import LabelledStore

ROOT = Path(__file__).resolve().parents[2]
DEMO = (ROOT / "in_files" / "al_demo.toml").read_text()

KILLER = """
import os, re, signal, sys
pattern, nth, group = re.compile(sys.argv[1]), int(sys.argv[2]), sys.argv[3] == "group"
seen = [0]
real_replace = os.replace

def replace(src, dst, *args, **kwargs):
    if pattern.search(str(dst)):
        seen[0] += 1
        if seen[0] >= nth:
            if group:
                os.killpg(os.getpgid(0), signal.SIGKILL)
            os.kill(os.getpid(), signal.SIGKILL)
    return real_replace(src, dst, *args, **kwargs)

os.replace = replace
from lammps_al.cli import main
sys.exit(main(sys.argv[4:]))
"""


def loop_config(tmp_path: Path, steps: int, nprocs: int = 1, long: bool = False) -> Path:
    """The demo with one exploration run (a hot liquid) and one iteration: every stage, in about a minute.
    ``long``: a cool crystal that never halts, going on until it is killed."""
    temperature, halt = (300, ", lal_halt = 1e9") if long else (1600, "")
    text = DEMO.replace('workdir = "runs/al_demo"', 'workdir = "state"')
    text = re.sub(r"(?m)^iterations = \d+", "iterations = 1", text)
    text = re.sub(r"(?m)^nprocs = \d+", f"nprocs = {nprocs}", text)
    head, _, rest = text.partition("[[explore]]")
    tail = rest[rest.index("[oracle]"):]
    text = (head + '[[explore]]\nname = "melt"\nkind = "liquid"\ninput = "explore_melt.in"\n'
            f'variables = {{ reps = 2, steps = {steps}, temperature = {temperature}, lal_flag_factor = 0.5, '
            f'lal_min_write_interval = 20{halt} }}\n\n' + tail)
    path = tmp_path / "loop.toml"
    path.write_text(text)
    return path


def start_loop(tmp_path: Path, args: list[str], kill_at: tuple[str, int, str] | None = None) -> subprocess.Popen:
    env = runtime.lammps_env()
    if kill_at is None:
        cmd = [sys.executable, "-m", "lammps_al.cli", *args]
    else:
        pattern, nth, how = kill_at
        cmd = [sys.executable, "-c", KILLER, pattern, str(nth), how, *args]
    return subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            stdin=subprocess.DEVNULL, start_new_session=True)


def resume(tmp_path: Path, config: Path) -> str:
    proc = start_loop(tmp_path, ["loop", str(config), "--resume", "--no-progress"])
    out, _ = proc.communicate(timeout=900)
    assert proc.returncode == 0, out[-4000:]
    return out


def check_state(config: Path) -> None:
    """One label per structure, every named file complete, the history complete, no temporary file left
    where data is read."""
    cfg = load_loop_config(config)
    store = LabelledStore(cfg.fit.training.dir)
    ok = [r for r in store.records() if r.status == "ok"]
    keys = [(r.hash, r.oracle_hash) for r in ok]
    assert len(keys) == len(set(keys)), "a structure labelled twice"
    assert len(store.load()) == len(ok)
    history = read_marker(cfg.loop.workdir, History)
    assert history is not None and len(history.iterations) == 1 and history.final_potential
    assert Path(history.final_potential).is_file()
    assert history.iterations[0].labels_total == len(ok)
    assert not list(cfg.loop.workdir.rglob("run.pid"))


@pytest.mark.parametrize("pattern, nth, stage", [
    (r"training/.*\.extxyz$", 3, "labelling the starting set"),
    (r"iter_000/potential/Al\.npz$", 1, "writing the first potential"),
    (r"iter_000/fit\.json$", 1, "the first fit's marker"),
    (r"iter_000/select\.json$", 1, "selection's marker"),
    (r"training/.*\.extxyz$", 11, "labelling the first flagged configuration"),
    (r"iter_000/calibration\.json$", 1, "calibration's marker"),
    (r"iter_001/potential/Al\.npz$", 1, "writing the refit potential"),
    (r"history\.json$", 1, "the learning curve"),
])
def test_sigkill_in_a_stage_then_resume_loses_and_duplicates_nothing(tmp_path, lammps_install, pattern, nth, stage):
    config = loop_config(tmp_path, steps=300)
    proc = start_loop(tmp_path, ["loop", str(config), "--no-progress"], kill_at=(pattern, nth, "group"))
    out, _ = proc.communicate(timeout=900)
    assert proc.returncode == -signal.SIGKILL, f"not killed {stage}:\n{out[-3000:]}"
    resume(tmp_path, config)
    check_state(config)


def wait_until_exploring(tmp_path: Path, proc: subprocess.Popen, also: Path | None = None) -> Path:
    """The run.pid of the loop's exploration run once it exists (and ``also``), the loop still running."""
    pidfile = tmp_path / "state" / "iter_000" / "explore" / "melt" / "run.pid"
    deadline = time.monotonic() + 600
    while not (pidfile.is_file() and (also is None or also.is_file())) and time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()[0][-3000:]
        time.sleep(0.5)
    return pidfile


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
        return True
    except ProcessLookupError:
        return False


@pytest.mark.parametrize("how", ["group", "parent"])
def test_sigkill_while_exploring_leaves_no_orphan_writing_into_the_resumed_loop(tmp_path, lammps_install, how):
    config = loop_config(tmp_path, steps=200000, nprocs=2, long=True)       # a run that would go on for many minutes
    proc = start_loop(tmp_path, ["loop", str(config), "--no-progress"])
    runlog = run_log_path(tmp_path / "state" / "iter_000" / "flagged", "melt")
    pidfile = wait_until_exploring(tmp_path, proc, also=runlog)
    assert runlog.is_file(), "the exploration run never started"
    orphan = json.loads(pidfile.read_text())["pgid"]
    if how == "group":
        os.killpg(proc.pid, signal.SIGKILL)
    else:
        os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    time.sleep(1.0)
    assert _group_alive(orphan), "the exploration job should outlive the killed loop (it is its own session)"
    try:
        loop_config(tmp_path, steps=300, nprocs=2)             # the resumed loop: a short run
        out = resume(tmp_path, config)
        assert not _group_alive(orphan), "the resumed loop left the earlier exploration job running"
        assert "interrupted exploration" in out
        steps = [row.step for row in read_run_log(runlog)]
        assert steps and steps == sorted(set(steps)) and steps[-1] <= 300, steps   # one attempt's rows
        check_state(config)
        cfg = load_loop_config(config)
        assert (iter_dir(cfg.loop, 0) / "explore.json").is_file()
    finally:
        if _group_alive(orphan):
            os.killpg(orphan, signal.SIGKILL)


def test_sigterm_stops_the_loop_and_its_exploration_jobs(tmp_path, lammps_install):
    config = loop_config(tmp_path, steps=200000, nprocs=2, long=True)
    proc = start_loop(tmp_path, ["loop", str(config), "--no-progress"])
    pidfile = wait_until_exploring(tmp_path, proc)
    job = json.loads(pidfile.read_text())["pgid"]
    time.sleep(2.0)
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=60)
    try:
        assert proc.returncode == 143, out[-3000:]
        assert "interrupted (SIGTERM)" in out
        assert not _group_alive(job), "SIGTERM left the exploration job running"
    finally:
        if _group_alive(job):
            os.killpg(job, signal.SIGKILL)


def test_a_second_loop_in_a_running_loop_s_workdir_is_refused(tmp_path, lammps_install):
    config = loop_config(tmp_path, steps=200000, nprocs=1, long=True)
    proc = start_loop(tmp_path, ["loop", str(config), "--no-progress"])
    try:
        wait_until_exploring(tmp_path, proc)
        second = start_loop(tmp_path, ["loop", str(config), "--resume", "--no-progress"])
        out, _ = second.communicate(timeout=120)
        assert second.returncode == 2, out
        assert f"another lammps-al loop (pid {proc.pid}) is running in" in out
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=60)
