"""The melting point by solid-liquid coexistence at constant enthalpy and zero pressure
(``in_files/al_coexistence.in``, Morris et al., PRB 49, 3109 (1994)).

Half a crystal is melted, the cell is left at constant enthalpy, and the temperature settles where the two
phases coexist. Both potentials run the same protocol, so its finite-size offset cancels in the comparison.
If the interface is lost (the cell melted or froze completely), the run is repeated from a start
temperature 150 K lower or higher.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lammps_al.core import runtime
from lammps_al.core.errors import LammpsRunError
from lammps_al.core.resources import find_file
from lammps_al.validate.properties import PairSetup


@dataclass(frozen=True)
class Coexistence:
    """Settings of the coexistence run (``in_files/al_coexistence.in`` variables). The defaults, 768 atoms and
    20 ps of NPH at a 4 fs step, give the reference EAM's melting point to about +-5 K (seed to seed spread);
    the 4 fs step gives the same average as 2 and 3 fs (measured with the EAM)."""

    nx: int = 4
    nz: int = 12
    dt: float = 0.004
    steps_solid: int = 300
    steps_melt: int = 400
    steps_cool: int = 200
    steps_nph: int = 5000
    steps_avg: int = 4000
    t_guess: float = 930.0
    seed: int = 8123
    nprocs: int = 2
    retry_shift: float = 150.0

    def variables(self) -> dict:
        return {k: getattr(self, k) for k in ("nx", "nz", "dt", "steps_solid", "steps_melt", "steps_cool",
                                               "steps_nph", "steps_avg", "t_guess", "seed")}


def coexistence_input() -> Path:
    return find_file("al_coexistence.in", "in_files", what="the coexistence input")


def _block_error(x: np.ndarray, blocks: int = 5) -> float:
    """Standard error of the mean of a correlated series from ``blocks`` block averages."""
    n = len(x) // blocks
    if n < 1:
        return float("nan")
    means = x[: n * blocks].reshape(blocks, n).mean(axis=1)
    return float(means.std(ddof=1) / np.sqrt(blocks))


def coexistence_run(pair: PairSetup, workdir: Path, settings: Coexistence, t_guess: float) -> dict:
    """One coexistence run; the temperature and phase fractions it ended with."""
    workdir.mkdir(parents=True, exist_ok=True)
    tag = f"T{t_guess:.0f}"
    pair_file = workdir / "pair.lammps"
    pair_file.write_text("\n".join(pair.commands) + "\n")
    out, logfile = workdir / f"coexistence_{tag}.txt", workdir / f"coexistence_{tag}.log"
    variables = {**settings.variables(), "t_guess": t_guess, "pair": pair_file, "out": out}
    cmd = runtime.mpi_command(settings.nprocs, str(runtime.find_lmp()), "-nocite", "-in", str(coexistence_input()),
                              "-log", str(logfile), "-screen", "none")
    for k, v in variables.items():
        cmd += ["-var", k, str(v)]
    proc = subprocess.run(cmd, cwd=workdir, env=runtime.without_mpi_state(runtime.lammps_env()),
                          capture_output=True, text=True, stdin=subprocess.DEVNULL)
    text = logfile.read_text(errors="replace") if logfile.is_file() else proc.stdout + proc.stderr
    if proc.returncode != 0:
        tail = "\n".join((text + proc.stderr).strip().splitlines()[-8:])
        raise LammpsRunError(f"the coexistence run for {pair.name} failed (exit {proc.returncode}); log {logfile}:\n{tail}")
    marks = {}
    for line in text.splitlines():
        if line.startswith("LAL_COEX"):
            words = line.split()[1:]
            marks.update(zip(words[0::2], words[1::2]))
    data = np.loadtxt(out, comments="#", ndmin=2)
    prod = data[data[:, 0] >= float(marks["avg_from_step"])]
    solid = float(marks["solid_fraction"])
    end = float(marks["end_fraction"])
    share = end / solid if solid > 0 else float("nan")       # fraction of the cell still crystalline at the end
    state = "melted" if share < 0.15 else ("frozen" if share > 0.85 else "coexistence")
    return {"t_guess_K": t_guess, "state": state, "temperature_K": float(prod[:, 1].mean()),
            "temperature_stderr_K": _block_error(prod[:, 1]), "pressure_bar": float(prod[:, 2].mean()),
            "solid_share_start": float(marks["start_fraction"]) / solid if solid > 0 else float("nan"),
            "solid_share_end": share, "natoms": 4 * settings.nx * settings.nx * settings.nz,
            "nph_ps": settings.steps_nph * settings.dt, "averaged_ps": settings.steps_avg * settings.dt,
            "log": str(logfile)}


def melting_point(pair: PairSetup, workdir: Path, settings: Coexistence = Coexistence(),
                  t_guess: float | None = None) -> dict:
    """The melting point by coexistence; one retry from a shifted start if the interface was lost."""
    t = settings.t_guess if t_guess is None else t_guess
    attempts = []
    for _ in range(2):
        run = coexistence_run(pair, Path(workdir), settings, t)
        attempts.append(run)
        if run["state"] == "coexistence":
            return {"melting_point_K": run["temperature_K"], "stderr_K": run["temperature_stderr_K"],
                    "attempts": attempts}
        # melted: the start was too hot for this potential; frozen: too cold
        t = t - settings.retry_shift if run["state"] == "melted" else t + settings.retry_shift
    starts = ", ".join(f"{a['t_guess_K']:.0f}" for a in attempts)
    return {"melting_point_K": None, "stderr_K": None, "attempts": attempts,
            "error": f"no solid-liquid interface survived (the cell {attempts[-1]['state']} from start "
                     f"temperatures {starts} K)"}
