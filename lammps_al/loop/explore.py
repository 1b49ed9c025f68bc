"""Exploration: every ``[[explore]]`` input run with the iteration's potential and the uncertainty fix,
the runs of one iteration at once on the executor (each its own ``mpirun -np P lmp`` job).

Every run gets what the current model says of the element (:mod:`lammps_al.loop.material`): ``element``,
``mass``, ``lattice``, ``a0`` and ``tm``; an ``[[explore]]`` variable may be an expression in ``tm``, ``a0``,
``mass``, ``bulk`` (the bulk modulus, GPa) and ``tm_guess`` (where a coexistence run starts), such as
``temperature = "1.2*tm"``. A run that halted in the previous iteration continues from its halting
configuration (``-var start FILE``: positions and velocities; a heating ramp from the temperature it halted
at). A run's outcome comes from the fix's records (:class:`~lammps_al.core.records.RunStatus` says whether it
halted and why; the run log gives sigma, temperature and the structure along the trajectory) and its exit
code: halted, completed or crashed (with the tail of its log). Each run works in its own folder
``iter_NNN/explore/NAME/``.

Each run is its own process group (``mpirun`` and its ranks), recorded in ``NAME/run.pid`` while it runs. A
loop stopped by an exception or SIGTERM stops its runs; a loop killed outright (SIGKILL of its process group,
or of the loop alone, which leaves ``mpirun`` running) leaves them behind, and the resumed loop stops the
ones still running before it starts the iteration's exploration again in cleared folders: no orphan writes
into a folder the resumed loop writes, and no half-finished attempt's flagged files are selected.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from lammps_al.core import runtime
from lammps_al.core.errors import LammpsAlError, LoopError
from lammps_al.core.io import atomic_write_text
from lammps_al.core.lammps_log import read_coexistence
from lammps_al.core.progress import ProgressBar
from lammps_al.core.records import (ExploreRecord, ExploreRunResult, MaterialRecord, RunLogRow, read_marker,
                                    read_run_log, read_run_status, run_log_path, run_status_path)
from lammps_al.core.resources import find_file
from lammps_al.executors import make_executor
from lammps_al.loop.config import LoopConfig, evaluate, iter_dir

log = logging.getLogger(__name__)

# candidates = "trajectory" (and the random-selection baseline) draw from everything the MD visits: the fix
# writes every lal_min_write_interval steps, whatever the sigma
POOL_VARIABLES = {"lal_flag": 1e-12, "lal_max_writes": 100000, "lal_dedup": 0}


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
    flag_threshold: float | None = None   # writing a pool (every write interval): what "the run flagged" means


def command(task: ExploreTask, prefix: list[str] | None = None) -> list[str]:
    args = [str(runtime.find_lmp()), "-nocite", "-in", task.input, "-log", str(Path(task.workdir) / "log.lammps"),
            "-screen", "none", "-var", "potential", task.snippet, "-var", "lal_potdir", task.potdir,
            "-var", "lal_fix_outdir", task.flagged, "-var", "lal_run_id", task.name, "-var", "seed", str(task.seed)]
    for name, value in task.variables.items():
        args += ["-var", str(name), str(value)]
    if prefix:
        return [*prefix, *args]
    return runtime.mpi_command(task.nprocs, *args)


RUN_PID = "run.pid"
_live_groups: set[int] = set()          # process groups of this process's running explorations
_live_lock = threading.Lock()
_stopping = threading.Event()           # set when the loop stops its runs: no new one starts


def _process_start(pid: int) -> str | None:
    """The start time of process ``pid`` (clock ticks since boot, /proc/PID/stat field 22) and the boot it
    belongs to: with the pid, an identity that a reused pid does not share. None where it is not running."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return None
    return f"{boot}:{stat.rsplit(')', 1)[1].split()[19]}"


def _stop_group(pgid: int, grace: float = 5.0) -> None:
    """SIGTERM to the process group, SIGKILL to what is left after ``grace`` seconds."""
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 10.0)):
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            try:
                os.killpg(pgid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.05)


def stop_live_runs() -> None:
    """Stop every exploration this process started that is still running (the loop is ending early), and
    start no more. Runs on other hosts (Parsl, mpi4py.futures workers) end with their workers."""
    _stopping.set()
    with _live_lock:
        groups = list(_live_groups)
    for pgid in groups:
        _stop_group(pgid, grace=2.0)


def stop_orphans(folder: Path) -> list[str]:
    """Stop the runs recorded in ``folder/*/run.pid`` that are still running on this machine (left by a loop
    that was killed); returns the names of those stopped. A run on another host is refused with a message:
    it cannot be checked from here."""
    stopped = []
    for pidfile in sorted(Path(folder).glob(f"*/{RUN_PID}")):
        try:
            rec = json.loads(pidfile.read_text())
            pgid, host, ident = int(rec["pgid"]), str(rec["host"]), str(rec["start"])
        except (OSError, ValueError, KeyError, TypeError):
            continue                      # torn or foreign: the process it named was never confirmed
        if host != socket.gethostname():
            raise LoopError(f"exploration run {pidfile.parent.name} of an interrupted attempt ran on {host} "
                            f"(process group {pgid}, {pidfile}); make sure it has stopped, delete {pidfile} "
                            f"and continue with --resume")
        if _process_start(pgid) == ident:
            _stop_group(pgid)
            stopped.append(pidfile.parent.name)
    return stopped


def clear_interrupted(cfg: LoopConfig, k: int) -> None:
    """Before iteration k's exploration starts: stop what an interrupted attempt left running and remove its
    outputs (run folders, flagged files, run logs), so that the attempt is redone from a clean start."""
    d = iter_dir(cfg.loop, k)
    explore_dir, flagged = d / "explore", d / "flagged"
    if not explore_dir.exists() and not flagged.exists():
        return
    stopped = stop_orphans(explore_dir) if explore_dir.exists() else []
    log.warning("iteration %d: an interrupted exploration found%s; its outputs are removed and the runs start "
                "again", k, f" (runs still going, now stopped: {', '.join(stopped)})" if stopped else "")
    for path in (explore_dir, flagged):
        shutil.rmtree(path, ignore_errors=True)
        if path.exists():
            raise LoopError(f"cannot remove {path}, left by an interrupted exploration of iteration {k}: "
                            f"remove it by hand and continue with --resume")


def run_exploration(task: ExploreTask) -> ExploreRunResult:
    """Run one exploration (on an executor's worker) and read what the fix recorded."""
    workdir = Path(task.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    parsl_prefix = os.environ.get("PARSL_MPI_PREFIX")   # set by Parsl's MPIExecutor on a cluster
    cmd = command(task, parsl_prefix.split() if parsl_prefix else None)
    env = runtime.without_mpi_state(runtime.lammps_env())
    started = time.time()
    start = time.perf_counter()
    with _live_lock:
        if _stopping.is_set():
            raise LoopError(f"exploration run {task.name} not started: the loop is stopping")
        proc = subprocess.Popen(cmd, cwd=workdir, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True, stdin=subprocess.DEVNULL, start_new_session=True)
        _live_groups.add(proc.pid)
    pidfile = workdir / RUN_PID
    try:
        atomic_write_text(pidfile, json.dumps({"pgid": proc.pid, "host": socket.gethostname(),
                                               "start": _process_start(proc.pid) or ""}))
        try:
            output, _ = proc.communicate(timeout=task.timeout)
            returncode = proc.returncode
        except subprocess.TimeoutExpired:
            _stop_group(proc.pid)
            output = proc.communicate()[0] or ""
            returncode = -9
            output = f"stopped after the run timeout of {task.timeout:.0f} s ([loop] run_timeout)\n{output}"
    finally:
        if proc.poll() is None:           # leaving early (an exception in this thread): stop the whole job
            _stop_group(proc.pid, grace=2.0)
            proc.wait()
        with _live_lock:
            _live_groups.discard(proc.pid)
        pidfile.unlink(missing_ok=True)
    seconds = time.perf_counter() - start
    rows = read_run_log(run_log_path(task.flagged, task.name))
    status = read_run_status(run_status_path(task.flagged, task.name))
    halt_step = None
    if status is not None and status.status == "halted":
        state, reason, halt_step = "halted", status.reason, status.step
    elif returncode == 0:
        state, reason = "completed", ""
    else:
        state, reason = "crashed", ""
    error = ""
    if state == "crashed":
        log_text = _read(Path(task.workdir) / "log.lammps")
        error = "\n".join((log_text + "\n" + output).strip().splitlines()[-15:])
    sigmas = [r.max_sigma for r in rows]
    melting = read_coexistence(_read(Path(task.workdir) / "log.lammps"), Path(task.workdir) / COEXISTENCE_SERIES)
    return ExploreRunResult(
        name=task.name, kind=task.kind, status=state, seconds=seconds, seed=task.seed, returncode=returncode,
        scoring_steps=len(rows), flagged=any(r.action != "none" for r in rows) if task.flag_threshold is None
        else any(r.max_sigma >= task.flag_threshold for r in rows),
        mean_max_sigma=float(np.mean(sigmas)) if sigmas else None, max_sigma=sigmas,
        rms_sigma=[r.rms_sigma for r in rows],
        temperature=[r.temp_K for r in rows], halt_reason=reason, halt_step=halt_step, error=error,
        log=str(Path(task.workdir) / "log.lammps"), started=started, finished=time.time(), host=socket.gethostname(),
        reached=reached(rows), continued_from=task.variables.get("start", ""), melting=melting or {})


COEXISTENCE_SERIES = "coexistence.txt"


def reached(rows: list[RunLogRow]) -> list[str]:
    """The structure kinds a run visited, from the fix's per-step classification (common neighbour analysis
    and coordination): crystal (> 95 % of the atoms in fcc/hcp/bcc surroundings), crystal with defects (> 50 %),
    partly crystalline (> 15 %: a solid-liquid interface, a small molten region), liquid or amorphous, free
    surface (> 5 % of the atoms with fewer than 4/5 of the bulk's neighbours); each with the temperature range it
    was seen at."""
    kinds: dict[str, list[float]] = {}
    for r in rows:
        if r.crystalline < 0:
            continue
        if r.crystalline > 0.95:
            kind = "crystal"
        elif r.crystalline > 0.5:
            kind = "crystal with defects"
        elif r.crystalline > 0.15:
            kind = "partly crystalline"
        else:
            kind = "liquid or amorphous"
        labels = [kind] + (["free surface"] if r.undercoordinated > 0.05 else [])
        for label in labels:
            kinds.setdefault(label, []).append(r.temp_K)
    return [f"{k} {min(t):.0f}-{max(t):.0f} K" for k, t in kinds.items()]


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""


def material_variables(m: MaterialRecord | None) -> dict:
    """The -var values every exploration run gets from the model's view of the element."""
    if m is None:
        return {}
    lattice = m.structure if m.structure in ("fcc", "bcc", "hcp", "sc", "diamond") else "fcc"
    cna_cutoff = (0.8536 if lattice == "fcc" else 1.2071) * m.a0 * 1.02
    elements = m.elements or [m.element]
    out = {"element": m.element, "mass": round(m.mass, 6), "lattice": lattice, "a": round(m.a0, 6),
           "a0": round(m.a0, 6), "tm": round(m.tm_K, 2), "lal_elements": " ".join(elements),
           "ntypes": len(elements), "lal_cna_cutoff": round(cna_cutoff, 4),
           "lal_bulk_coordination": 14 if lattice == "bcc" else 12}
    if len(elements) > 1:                   # a binary: type 2's element, mass and fcc lattice constant
        second = elements[1]
        out.update({"element2": second, "mass2": round(m.masses[1], 6), "a1": round(m.fcc_a[m.element], 6),
                    "a2": round(m.fcc_a[second], 6)})
    return out


def continuation(cfg: LoopConfig, k: int, name: str, workdir: Path) -> dict:
    """When run ``name`` halted in iteration k-1 on a configuration the fix wrote whole: the -var values that
    continue it from there (a data file with positions and velocities, and for a heating ramp the
    temperature it had reached)."""
    if k == 0:
        return {}
    previous = read_marker(iter_dir(cfg.loop, k - 1), ExploreRecord)
    if previous is None or name not in previous.runs or previous.runs[name].status != "halted":
        return {}
    status = read_run_status(run_status_path(iter_dir(cfg.loop, k - 1) / "flagged", name))
    if status is None or not status.halt_configuration or not Path(status.halt_configuration).is_file():
        return {}
    from ase.io import read

    from lammps_al.loop.select import close_contact

    atoms = read(status.halt_configuration)
    why = close_contact(atoms)
    if why:                 # the MD had blown up before the fix saw it: start afresh instead
        log.info("exploration run %s starts afresh: its halting configuration has %s", name, why)
        return {}
    workdir.mkdir(parents=True, exist_ok=True)
    data = workdir / "start.data"
    data.write_text(lammps_data(atoms, list(cfg.fit.descriptor.elements)))
    out = {"start": str(data)}
    if status.temperature_K is not None and status.temperature_K > 1.0:
        out["t_start"] = round(status.temperature_K, 2)
    return out


def lammps_data(atoms, elements: list[str] | None = None) -> str:
    """A LAMMPS data file (atom_style atomic, one type per element of ``elements``, in order) of a flagged
    configuration, with its velocities."""
    from lammps_al.core.records import ID_COLUMN, VELOCITY_COLUMN

    elements = list(elements or sorted(set(atoms.get_chemical_symbols())))
    symbols = atoms.get_chemical_symbols()
    unknown = sorted(set(symbols) - set(elements))
    if unknown:
        raise LoopError(f"a halting configuration holds {unknown}, which the potential's elements {elements} lack")
    types = [elements.index(x) + 1 for x in symbols]
    cell = atoms.cell.array
    ids = atoms.arrays.get(ID_COLUMN, np.arange(1, len(atoms) + 1))
    velocities = atoms.arrays.get(VELOCITY_COLUMN, np.zeros((len(atoms), 3)))
    lines = ["lammps_al: a halting configuration to continue from", "", f"{len(atoms)} atoms", f"{len(elements)} atom types", "",
             f"0 {cell[0, 0]:.10f} xlo xhi", f"0 {cell[1, 1]:.10f} ylo yhi", f"0 {cell[2, 2]:.10f} zlo zhi",
             f"{cell[1, 0]:.10f} {cell[2, 0]:.10f} {cell[2, 1]:.10f} xy xz yz", "", "Atoms # atomic", ""]
    lines += [f"{int(i)} {t} {x:.10f} {y:.10f} {z:.10f}" for i, t, (x, y, z) in zip(ids, types, atoms.positions)]
    lines += ["", "Velocities", ""]
    lines += [f"{int(i)} {vx:.10g} {vy:.10g} {vz:.10g}" for i, (vx, vy, vz) in zip(ids, velocities)]
    return "\n".join(lines) + "\n"


def tasks(cfg: LoopConfig, k: int) -> list[ExploreTask]:
    s = cfg.loop
    d = iter_dir(s, k)
    potdir = d / "potential"
    m = read_marker(d, MaterialRecord)
    names = {"tm": m.tm_K, "tm_guess": m.tm_guess_K or m.tm_K, "a0": m.a0, "mass": m.mass,
             "bulk": m.bulk_modulus_GPa} if m else {}
    fix_snippet = find_file("lammps_al_fix.lammps", "in_files", what="the fix snippet")
    out = []
    for j, run in enumerate(s.explore):
        variables = {**material_variables(m), "fix_snippet": str(fix_snippet)}
        for key, value in {**s.exploration_variables(), **run.variables}.items():
            variables[key] = evaluate(value, names, f"[[explore]] {run.name}: {key}")
        flag_threshold = None
        if s.selection == "random" or s.candidates == "trajectory":
            flag_threshold = number_or_none(variables.get("lal_flag"))
            halt = number_or_none(variables.get("lal_halt"))
            # a halt threshold at or below the flag threshold: leave the fix its settings, so that it refuses
            # them at setup on every rank with its own message (the pool's tiny flag threshold would hide it)
            if flag_threshold is None or halt is None or halt > flag_threshold:
                variables.update(POOL_VARIABLES)
        if run.input.name == "coexistence.in":
            variables.update({"pair": str(potdir / f"{s.potential_name}.{s.model_snippet}.lammps"),
                              "out": COEXISTENCE_SERIES})
        variables.update(continuation(cfg, k, run.name, d / "explore" / run.name))
        out.append(ExploreTask(
            name=run.name, kind=run.kind, input=str(run.input), workdir=str(d / "explore" / run.name),
            flagged=str(d / "flagged"), snippet=str(potdir / f"{s.potential_name}.{s.model_snippet}.lammps"),
            potdir=str(potdir), seed=1000 * (s.seed + 1) + 37 * k + j + 1, nprocs=s.nprocs, variables=variables,
            timeout=s.run_timeout, flag_threshold=flag_threshold))
    return out


def number_or_none(value) -> float | None:
    """A fix variable's value as a number (``lal_flag = 0.15``), or None (``"auto"``, not given)."""
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def halted_at_start(run: ExploreRunResult) -> bool:
    return run.status == "halted" and run.scoring_steps <= 1


def check_not_stuck(cfg: LoopConfig, k: int, runs: dict[str, ExploreRunResult]) -> None:
    """Two ways an iteration can give the loop nothing to learn from, which another iteration would repeat:
    every run crashed (a setting every run shares, most often), or every run halted at its first scoring
    step in this iteration and the one before (whose halting configurations were labelled): the model is
    not trusted anywhere the exploration starts. Stop with what to change; the labels stay in the store, and
    ``--resume`` runs this exploration again with the changed settings."""
    if not runs:
        return
    if all(r.status == "crashed" for r in runs.values()):
        first = next(iter(runs.values()))
        lines = first.error.splitlines()
        said = [line for line in lines if line.startswith("ERROR")] or lines[-5:]
        raise LoopError(f"{cfg.source}: every exploration run of iteration {k} crashed; the first, {first.name}, "
                        f"ended with: {said[-1] if said else f'exit code {first.returncode}'} (its log: {first.log})."
                        f" Fix what it names, then continue with --resume (labels so far are kept)")
    if k == 0 or not all(halted_at_start(r) for r in runs.values()):
        return
    previous = read_marker(iter_dir(cfg.loop, k - 1), ExploreRecord)
    if previous is None or not previous.runs or not all(halted_at_start(r) for r in previous.runs.values()):
        return
    s = cfg.loop
    worst = max((r.max_sigma[0] for r in runs.values() if r.max_sigma), default=float("nan"))
    halts = set()
    for name in runs:
        status = read_run_status(run_status_path(iter_dir(s, k) / "flagged", name))
        if status is not None and "halt" in status.settings:
            halts.add(f"{status.settings['halt']:g}")
    rule = (f"[loop] force_target, now {s.force_target} eV/A: runs halt at 20x; " if s.force_target > 0 else "")
    raise LoopError(
        f"{cfg.source}: every exploration run halted at its first scoring step in iterations {k - 1} and {k} "
        f"(largest predicted error there {worst:.3g}, halt threshold {', '.join(sorted(halts)) or 'unknown'}): "
        f"the potential is not trusted anywhere the runs start, and labelling those configurations did not "
        f"change that. Raise the halt threshold ({rule}or lal_halt in [loop] lammps_variables or in a run's "
        f"variables), start the runs closer to what was labelled (lower temperatures, [loop] start_size = "
        f"\"small\"), or check the oracle's labels of {iter_dir(s, k - 1) / 'flagged'}; then continue with "
        f"--resume (labels so far are kept)")


def explore(cfg: LoopConfig, k: int, show_progress: bool = True) -> ExploreRecord:
    """Every exploration run of iteration k, at most ``[loop] concurrent_runs`` at once."""
    s = cfg.loop
    t0 = time.perf_counter()
    clear_interrupted(cfg, k)
    todo = tasks(cfg, k)
    (iter_dir(s, k) / "flagged").mkdir(parents=True, exist_ok=True)
    results: dict[str, ExploreRunResult] = {}
    bar = ProgressBar(len(todo), f"exploring (iteration {k})", enabled=show_progress)
    _stopping.clear()
    try:
        with make_executor(cfg.fit.executor, min(s.runs_at_once, len(todo)), "mpi", s.workdir, s.nprocs) as pool:
            futures = {pool.submit(run_exploration, task): task for task in todo}
            try:
                for fut in pool.as_completed(futures):
                    task = futures[fut]
                    results[task.name] = _outcome(task, fut)
                    bar.update()
            except BaseException:
                stop_live_runs()      # ended by an exception or a signal (SIGTERM, Ctrl-C): stop the runs now,
                raise                 # so that the executor's shutdown does not wait for them
    finally:
        bar.close()
    runs = {task.name: results[task.name] for task in todo}       # in config order, whatever finished first
    check_not_stuck(cfg, k, runs)
    if s.statistic == "rms":
        sig = [float(np.mean(r.rms_sigma)) for r in runs.values() if r.rms_sigma]
    else:
        sig = [r.mean_max_sigma for r in runs.values() if r.mean_max_sigma is not None]
    return ExploreRecord(runs=runs, trajectory_sigma=float(np.mean(sig)) if sig else None,
                         flag_fraction=float(np.mean([r.flagged for r in runs.values()])) if runs else 0.0,
                         crashed=[n for n, r in runs.items() if r.status == "crashed"],
                         halted=[n for n, r in runs.items() if r.status == "halted"],
                         seconds=time.perf_counter() - t0)


def _outcome(task: ExploreTask, fut) -> ExploreRunResult:
    try:
        result = fut.result()
    except LammpsAlError:
        raise
    except Exception as exc:  # noqa: BLE001 - the worker running it died: report the run as crashed
        result = ExploreRunResult(name=task.name, kind=task.kind, status="crashed", seconds=0.0, seed=task.seed,
                                  returncode=-1, error=f"its executor task failed: {type(exc).__name__}: {exc}")
    if result.status == "crashed":
        log.warning("exploration run %s crashed (exit %d); its log: %s", task.name, result.returncode, result.log)
    return result
