"""Exploration: every ``[[explore]]`` input run with the iteration's potential and the uncertainty fix,
the runs of one iteration at once on the executor (each its own ``mpirun -np P lmp`` job).

A run's outcome comes from the fix's records (:class:`~lammps_al.core.records.RunStatus` says whether it
halted and why; the run log gives sigma along the trajectory) and its exit code: halted, completed or
crashed (with the tail of its log). Each run works in its own folder ``iter_NNN/explore/NAME/``.
"""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from lammps_al.core import runtime
from lammps_al.core.errors import LammpsAlError
from lammps_al.core.progress import ProgressBar
from lammps_al.core.records import (ExploreRecord, ExploreRunResult, read_run_log, read_run_status, run_log_path,
                                    run_status_path)
from lammps_al.executors import make_executor
from lammps_al.loop.config import LoopConfig, iter_dir

log = logging.getLogger(__name__)

# the random-selection baseline draws from everything the MD visits: the fix writes every
# lal_min_write_interval steps, whatever the sigma
RANDOM_POOL_VARIABLES = {"lal_flag": 1e-12, "lal_max_writes": 100000, "lal_dedup": 0}


@dataclass(frozen=True)
class ExploreTask:
    """Everything one exploration run needs (plain data: it travels to the executor's workers)."""

    name: str
    kind: str
    input: str
    workdir: str              # the run's own folder: log and cwd
    flagged: str              # the fix's output folder (shared by the iteration's runs)
    snippet: str
    potdir: str
    seed: int
    nprocs: int
    variables: dict = field(default_factory=dict)
    timeout: float = 7200.0


def command(task: ExploreTask, prefix: list[str] | None = None) -> list[str]:
    args = [str(runtime.find_lmp()), "-nocite", "-in", task.input, "-log", str(Path(task.workdir) / "log.lammps"),
            "-screen", "none", "-var", "potential", task.snippet, "-var", "lal_potdir", task.potdir,
            "-var", "lal_fix_outdir", task.flagged, "-var", "lal_run_id", task.name, "-var", "seed", str(task.seed)]
    for name, value in task.variables.items():
        args += ["-var", str(name), str(value)]
    if prefix:
        return [*prefix, *args]
    return runtime.mpi_command(task.nprocs, *args)


def run_exploration(task: ExploreTask) -> ExploreRunResult:
    """Run one exploration (on an executor's worker) and read what the fix recorded."""
    Path(task.workdir).mkdir(parents=True, exist_ok=True)
    parsl_prefix = os.environ.get("PARSL_MPI_PREFIX")   # set by Parsl's MPIExecutor on a cluster
    cmd = command(task, parsl_prefix.split() if parsl_prefix else None)
    env = runtime.without_mpi_state(runtime.lammps_env())
    started = time.time()
    start = time.perf_counter()
    try:
        proc = subprocess.run(cmd, cwd=task.workdir, env=env, capture_output=True, text=True,
                              stdin=subprocess.DEVNULL, timeout=task.timeout)
        returncode, output = proc.returncode, proc.stdout + proc.stderr
    except subprocess.TimeoutExpired as exc:
        returncode = -9
        output = f"stopped after the run timeout of {task.timeout:.0f} s ([loop] run_timeout)\n{exc.stderr or ''}"
    seconds = time.perf_counter() - start
    rows = read_run_log(run_log_path(task.flagged, task.name))
    status = read_run_status(run_status_path(task.flagged, task.name))
    if status is not None and status.status == "halted":
        state, reason = "halted", status.reason
    elif returncode == 0:
        state, reason = "completed", ""
    else:
        state, reason = "crashed", ""
    error = ""
    if state == "crashed":
        log_text = _read(Path(task.workdir) / "log.lammps")
        error = "\n".join((log_text + "\n" + output).strip().splitlines()[-15:])
    sigmas = [r.max_sigma for r in rows]
    return ExploreRunResult(
        name=task.name, kind=task.kind, status=state, seconds=seconds, seed=task.seed, returncode=returncode,
        scoring_steps=len(rows), flagged=any(r.action != "none" for r in rows),
        mean_max_sigma=float(np.mean(sigmas)) if sigmas else None, max_sigma=sigmas,
        temperature=[r.temp_K for r in rows], halt_reason=reason, error=error,
        log=str(Path(task.workdir) / "log.lammps"), started=started, finished=time.time(), host=socket.gethostname())


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""


def tasks(cfg: LoopConfig, k: int) -> list[ExploreTask]:
    s = cfg.loop
    d = iter_dir(s, k)
    potdir = d / "potential"
    out = []
    for j, run in enumerate(s.explore):
        variables = {**s.lammps_variables, **run.variables}
        if s.selection == "random":
            variables.update(RANDOM_POOL_VARIABLES)
        out.append(ExploreTask(
            name=run.name, kind=run.kind, input=str(run.input), workdir=str(d / "explore" / run.name),
            flagged=str(d / "flagged"), snippet=str(potdir / f"{s.potential_name}.{s.model_snippet}.lammps"),
            potdir=str(potdir), seed=1000 * (s.seed + 1) + 37 * k + j + 1, nprocs=s.nprocs, variables=variables,
            timeout=s.run_timeout))
    return out


def explore(cfg: LoopConfig, k: int, show_progress: bool = True) -> ExploreRecord:
    """Every exploration run of iteration k, at most ``[loop] concurrent_runs`` at once."""
    s = cfg.loop
    t0 = time.perf_counter()
    todo = tasks(cfg, k)
    (iter_dir(s, k) / "flagged").mkdir(parents=True, exist_ok=True)
    results: dict[str, ExploreRunResult] = {}
    bar = ProgressBar(len(todo), f"exploring (iteration {k})", enabled=show_progress)
    try:
        with make_executor(cfg.fit.executor, min(s.runs_at_once, len(todo)), "mpi", s.workdir, s.nprocs) as pool:
            futures = {pool.submit(run_exploration, task): task for task in todo}
            for fut in pool.as_completed(futures):
                task = futures[fut]
                try:
                    result = fut.result()
                except LammpsAlError:
                    raise
                except Exception as exc:  # noqa: BLE001 - the worker running it died: report the run as crashed
                    result = ExploreRunResult(name=task.name, kind=task.kind, status="crashed", seconds=0.0,
                                              seed=task.seed, returncode=-1,
                                              error=f"its executor task failed: {type(exc).__name__}: {exc}")
                results[task.name] = result
                if result.status == "crashed":
                    log.warning("exploration run %s crashed (exit %d); its log: %s", task.name, result.returncode,
                                result.log)
                bar.update()
    finally:
        bar.close()
    runs = {task.name: results[task.name] for task in todo}       # in config order, whatever finished first
    sig = [r.mean_max_sigma for r in runs.values() if r.mean_max_sigma is not None]
    return ExploreRecord(runs=runs, trajectory_sigma=float(np.mean(sig)) if sig else None,
                         flag_fraction=float(np.mean([r.flagged for r in runs.values()])) if runs else 0.0,
                         crashed=[n for n, r in runs.items() if r.status == "crashed"],
                         halted=[n for n, r in runs.items() if r.status == "halted"],
                         seconds=time.perf_counter() - t0)
