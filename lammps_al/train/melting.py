"""The melting point by solid-liquid coexistence at constant enthalpy and zero pressure
(``in_files/coexistence.in``, Morris et al., PRB 49, 3109 (1994)).

Half a crystal is melted, the cell is left at constant enthalpy, and the temperature settles where the two
phases coexist. Both potentials run the same protocol, so its finite-size offset cancels in the comparison.
If the interface is lost (the cell melted or froze completely), the run is repeated from a start
temperature 150 K lower or higher.
"""

from __future__ import annotations

import logging
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lammps_al.core import runtime
from lammps_al.core.errors import LammpsRunError
from lammps_al.core.lammps_log import read_coexistence
from lammps_al.core.resources import find_file
from lammps_al.train.lammps_calc import PairSetup

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Coexistence:
    """Settings of the coexistence run (``in_files/coexistence.in`` variables). The defaults: 640 atoms (4 x 4
    x 10 cells), 12 ps of NPH at a 4 fs step averaged over the last 10 ps; the 4 fs step gives the same average
    as 2 and 3 fs (measured with the EAM). One run's block error underestimates the spread between runs with
    other seeds: a melting point with an error bar takes several seeds (:func:`melting_statistics`)."""

    nx: int = 4
    nz: int = 10
    dt: float = 0.004
    steps_solid: int = 300
    steps_melt: int = 400
    steps_cool: int = 200
    steps_nph: int = 3000
    steps_avg: int = 2500
    t_guess: float = 930.0
    seed: int = 8123
    nprocs: int = 2
    retry_shift: float = 150.0
    melt_factor: float = 2.0       # the upper half melts at this times the start temperature

    def variables(self) -> dict:
        return {k: getattr(self, k) for k in ("nx", "nz", "dt", "steps_solid", "steps_melt", "steps_cool",
                                               "steps_nph", "steps_avg", "t_guess", "seed")}


def coexistence_input() -> Path:
    return find_file("coexistence.in", "in_files", what="the coexistence input")


def coexistence_run(pair: PairSetup, workdir: Path, settings: Coexistence, t_guess: float,
                    lattice: dict | None = None) -> dict:
    """One coexistence run; the temperature and phase fractions it ended with. ``lattice``: the crystal's
    ``lattice``, ``a`` and ``mass`` (default: the input's, fcc aluminium)."""
    lattice = lattice or {}
    workdir.mkdir(parents=True, exist_ok=True)
    tag = f"T{t_guess:.0f}"
    pair_file = workdir / "pair.lammps"
    pair_file.write_text("\n".join(pair.commands) + "\n")
    out, logfile = workdir / f"coexistence_{tag}.txt", workdir / f"coexistence_{tag}.log"
    # twice the start is far above any crystal's superheating limit (1.2-1.3 Tm) and where the loop's
    # interface runs melt theirs; at 2.7x (2500 K for Al) a learned potential never asked about so hot a
    # liquid blew up (lost atoms in the demo's validation, one run of four)
    variables = {**settings.variables(), "t_melt": round(settings.melt_factor * t_guess), **lattice,
                 "t_guess": t_guess, "pair": pair_file, "out": out}
    if len(pair.elements) > 1:          # a binary potential: the crystal is of its first element, type 2 unused
        from lammps_al.core.elements import element_data

        variables.update({"ntypes": len(pair.elements), "mass2": element_data(pair.elements[1]).mass})
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
    result = read_coexistence(text, out)
    if result is None:
        raise LammpsRunError(f"the coexistence run for {pair.name} ended without its averages; log {logfile}")
    return {"t_guess_K": t_guess, **result, "natoms": 4 * settings.nx * settings.nx * settings.nz,
            "nph_ps": settings.steps_nph * settings.dt, "averaged_ps": settings.steps_avg * settings.dt,
            "log": str(logfile)}


def melting_point(pair: PairSetup, workdir: Path, settings: Coexistence = Coexistence(),
                  t_guess: float | None = None, lattice: dict | None = None, tries: int = 4) -> dict:
    """The melting point by coexistence; up to ``tries`` runs, each after a lost interface starting
    ``retry_shift`` lower (the cell melted) or higher (it froze) than the last."""
    t = settings.t_guess if t_guess is None else t_guess
    attempts = []
    for _ in range(tries):
        run = coexistence_run(pair, Path(workdir), settings, t, lattice)
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


def melting_statistics(pair: PairSetup, workdir: Path, seeds: tuple[int, ...] = (8123, 8124, 8125),
                       settings: Coexistence = Coexistence(), t_guess: float | None = None,
                       lattice: dict | None = None) -> dict:
    """The melting point from independent coexistence runs (one per seed): their mean, the standard deviation
    between them (the error bar: one run's block error is not), and each run. A seed whose run crashes is
    warned about and kept in ``runs`` with its ``error``; the mean is over the seeds that gave a value."""
    import dataclasses

    runs, values = [], []
    for seed in seeds:
        try:
            result = melting_point(pair, Path(workdir) / f"seed{seed}", dataclasses.replace(settings, seed=seed),
                                   t_guess=t_guess, lattice=lattice)
        except LammpsRunError as exc:       # one seed's crash (a potential that blew up): the others still count
            log.warning("melting point of %s, seed %d: %s", pair.name, seed, str(exc).splitlines()[0])
            result = {"melting_point_K": None, "stderr_K": None, "attempts": [], "error": str(exc)}
        runs.append({"seed": seed, **result})
        if result["melting_point_K"] is not None:
            values.append(result["melting_point_K"])
            t_guess = t_guess if t_guess is not None else result["melting_point_K"]
    mean = float(np.mean(values)) if values else None
    spread = float(np.std(values, ddof=1)) if len(values) > 1 else None
    return {"melting_point_K": mean, "spread_K": spread, "stderr_K": spread / np.sqrt(len(values)) if spread else None,
            "runs_ok": len(values), "seeds": list(seeds), "runs": runs}
