"""The executors labelling and exploration share: local processes/threads, and Parsl's local provider. The
tasks here are plain functions and the EMT oracle (no LAMMPS)."""

from __future__ import annotations

import os
import time

import numpy as np
import pytest
from ase.build import bulk

from lammps_al.core.errors import ConfigError
from lammps_al.executors import ExecutorConfig, ParslSettings, make_executor
from lammps_al.train.label import label_configurations
from lammps_al.train.oracles import OracleSpec
from lammps_al.train.store import LabelledStore

parsl = pytest.importorskip("parsl", reason="Parsl is an optional extra: pip install 'lammps_al[parsl]'")


def cells(n=3):
    out = []
    for i in range(n):
        a = bulk("Cu", "fcc", a=3.6, cubic=True)
        a.rattle(0.05, seed=i)
        a.info["source"] = f"cell{i}"
        out.append(a)
    return out


@pytest.mark.parametrize("kind, purpose", [("local", "tasks"), ("local", "mpi"), ("parsl", "tasks"), ("parsl", "mpi")])
def test_two_tasks_run_at_once_in_other_processes_or_threads(tmp_path, kind, purpose):
    """Two one-second sleeps on two workers take about one second, not two."""
    with make_executor(ExecutorConfig(kind=kind), 2, purpose, workdir=tmp_path) as pool:
        warm = [pool.submit(os.getpid) for _ in range(2)]
        [f.result(timeout=120) for f in warm]                # workers up (Parsl starts its blocks lazily)
        start = time.perf_counter()
        futures = [pool.submit(time.sleep, 1.0) for _ in range(2)]
        for f in pool.as_completed(futures):
            f.result(timeout=120)
        elapsed = time.perf_counter() - start
    assert elapsed < 1.8, f"two 1 s tasks took {elapsed:.2f} s on two workers"


@pytest.mark.parametrize("kind", ["local", "parsl"])
def test_labels_from_an_executor_equal_labels_made_here(tmp_path, kind):
    configs = cells()
    store = LabelledStore(tmp_path / kind)
    summary = label_configurations(configs, OracleSpec("emt"), store, group="g", workers=2, show_progress=False,
                                   executor=ExecutorConfig(kind=kind), workdir=tmp_path)
    assert summary.labelled == 3 and not summary.failed
    here = LabelledStore(tmp_path / "here")
    label_configurations(configs, OracleSpec("emt"), here, group="g", workers=1, show_progress=False)
    by_source = {a.info["source"]: a for a in here.load()}
    for atoms in store.load():
        other = by_source[atoms.info["source"]]
        assert atoms.info["REF_energy"] == pytest.approx(other.info["REF_energy"], abs=1e-12)
        np.testing.assert_allclose(atoms.arrays["REF_forces"], other.arrays["REF_forces"], atol=1e-12)


def test_parsl_keeps_its_files_under_the_workdir(tmp_path):
    with make_executor(ExecutorConfig(kind="parsl"), 1, "tasks", workdir=tmp_path) as pool:
        assert pool.submit(os.getpid).result(timeout=120) != os.getpid()
    assert (tmp_path / "parsl").is_dir()


def test_a_slurm_configuration_builds_the_executors_a_cluster_needs(tmp_path):
    """The Slurm example shipped with lammps_al: oracle calls on a HighThroughputExecutor fed by Slurm jobs
    (srun launcher), exploration runs on Parsl's MPIExecutor (srun prefix inside a block)."""
    from lammps_al.executors.parsl import build_config
    from lammps_al.loop.config import load_loop_config
    from lammps_al.core.resources import find_file

    cfg = load_loop_config(find_file("al_demo_slurm.toml", "in_files"), workdir=tmp_path / "state")
    settings = cfg.fit.executor.parsl
    assert cfg.fit.executor.kind == "parsl" and settings.provider == "slurm"
    tasks = build_config(settings, "tasks", 8, tmp_path / "run")
    [htex] = tasks.executors
    assert type(htex).__name__ == "HighThroughputExecutor" and type(htex.provider).__name__ == "SlurmProvider"
    assert type(htex.provider.launcher).__name__ == "SrunLauncher"
    assert htex.provider.nodes_per_block == settings.nodes_per_block and htex.provider.partition == settings.partition
    mpi = build_config(settings, "mpi", 2, tmp_path / "run", nprocs=cfg.loop.nprocs)
    [mpiex] = mpi.executors
    assert type(mpiex).__name__ == "MPIExecutor" and mpiex.mpi_launcher == "srun"
    assert type(mpiex.provider.launcher).__name__ == "SimpleLauncher"
    assert "activate" in mpiex.provider.worker_init


def test_executor_settings_are_checked():
    with pytest.raises(ConfigError, match="kind must be one of"):
        ExecutorConfig(kind="slurm")
    with pytest.raises(ConfigError, match="nodes_per_block must be >= 1"):
        ParslSettings(nodes_per_block=0)
    with pytest.raises(ConfigError, match="cannot import"):
        make_executor(ExecutorConfig(kind="no.such:Executor"), 1)


KILLER = """
import os
from ase.calculators.emt import EMT

class Killer(EMT):
    def calculate(self, atoms=None, properties=("energy",), system_changes=None):
        if atoms.info.get("source") == "the-killer":
            os._exit(9)          # the worker dies as if killed (out of memory, a crash in native code)
        super().calculate(atoms, properties, system_changes or [])
"""


def test_a_worker_that_dies_is_an_oracle_error_and_keeps_the_labels_before_it(tmp_path, monkeypatch):
    """A calculator that kills its worker process: an OracleError naming the configuration (no
    BrokenProcessPool traceback), every label finished before it kept."""
    from lammps_al.core.errors import OracleError

    (tmp_path / "killer_oracle.py").write_text(KILLER)
    monkeypatch.syspath_prepend(str(tmp_path))
    configs = cells(3)
    configs[2].info["source"] = "the-killer"
    store = LabelledStore(tmp_path / "store")
    with pytest.raises(OracleError, match=r"oracle worker \(killer_oracle:Killer\) died .* while labelling one of: "
                                          r".*the-killer.*kept in .*manifest.jsonl; run again"):
        label_configurations(configs, OracleSpec("killer_oracle:Killer"), store, group="g", workers=2,
                             show_progress=False)
    assert {a.info["source"] for a in store.load()} <= {"cell0", "cell1"}


PARENT = """
import sys, time
from pathlib import Path
from lammps_al.executors import ExecutorConfig, make_executor

def task(path):
    import os, time
    Path(path).write_text(str(os.getpid()))
    time.sleep(120)

if __name__ == "__main__":
    ex = make_executor(ExecutorConfig(), 2, purpose="tasks")
    ex.submit(task, sys.argv[1])
    time.sleep(120)
"""


def test_workers_end_when_the_process_that_started_them_is_killed(tmp_path):
    """SIGKILL of the labelling process (a killed loop) leaves no worker computing for nobody."""
    import signal
    import subprocess
    import sys

    script, pid_file = tmp_path / "parent.py", tmp_path / "worker.pid"
    script.write_text(PARENT)
    parent = subprocess.Popen([sys.executable, str(script), str(pid_file)])
    try:
        for _ in range(300):
            if pid_file.is_file() and pid_file.read_text():
                break
            time.sleep(0.1)
        worker = int(pid_file.read_text())
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait()
        for _ in range(100):                   # the watch polls every 2 s
            try:
                os.kill(worker, 0)
            except ProcessLookupError:
                break
            time.sleep(0.1)
        else:
            os.kill(worker, signal.SIGKILL)
            pytest.fail(f"worker {worker} outlived its killed parent by 10 s")
    finally:
        parent.kill()
