"""The loop's TOML config: ``[loop]`` and ``[[explore]]`` on top of the fit's sections, through the same
machinery (frozen dataclasses, types checked and coerced, unknown keys named).

The loop keeps its labels in ``WORKDIR/training`` and names its potentials ``[loop] potential_name``, so a
loop config must not set ``[training] dir`` or ``[fit] name`` (an error says so, nothing is overridden
silently). Exploration inputs are found relative to the config file first, then in lammps_al's shipped
``in_files`` (:mod:`lammps_al.core.resources`). A relative ``[loop] workdir`` is taken relative to the config
file, except for the configs shipped with lammps_al (package data, no place to write): theirs is relative
to the folder the command runs in. ``lammps-al loop --workdir DIR`` sets it explicitly.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from lammps_al.core.config import read_toml, resolve, section
from lammps_al.core.errors import ConfigError
from lammps_al.core.resources import find_file
from lammps_al.train.config import Config, config_from_dict


# The -var variables of lammps_al's snippets (in_files/lammps_al_fix.lammps, the potential snippets and
# lammps_al.inrun.paths); a test checks this list against the shipped files.
LAMMPS_AL_VARIABLES = frozenset({
    "lal_fix_outdir", "lal_flag", "lal_halt", "lal_flag_factor", "lal_halt_factor", "lal_max_writes",
    "lal_min_write_interval", "lal_dedup", "lal_local_above", "lal_env_buffer", "lal_max_envs", "lal_run_id",
    "lal_halt_action", "lal_fault_rank", "lal_cna_cutoff", "lal_bulk_coordination", "lal_potdir", "lal_scorer",
    "lal_score_every", "lal_elements", "lal_in_files", "lal_potentials"})
# What the loop passes to every exploration run itself (LAMMPS keeps the first -var of a name: a second is ignored)
SET_BY_THE_LOOP = {"potential": "[loop] model_snippet and potential_name", "lal_potdir": "the iteration's folder",
                   "lal_fix_outdir": "the iteration's flagged/ folder", "lal_run_id": "the [[explore]] name",
                   "seed": "[loop] seed"}


def check_variables(variables: dict, where: str) -> None:
    """-var NAME VALUE pairs: LAMMPS variable names, numbers or strings, no misspelt lammps_al variable and none
    that the loop sets itself."""
    for name, value in variables.items():
        if not re.fullmatch(r"[A-Za-z0-9_]+", name):
            raise ConfigError(f"{where}: {name!r} is not a LAMMPS variable name (letters, digits and underscores)")
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            raise ConfigError(f"{where}: {name} must be a number or a string (an expression such as \"0.5*tm\"), got "
                              f"{value!r}")
        if name.startswith("lal_") and name not in LAMMPS_AL_VARIABLES:
            close = difflib.get_close_matches(name, sorted(LAMMPS_AL_VARIABLES), n=1)
            raise ConfigError(f"{where}: {name} is not a variable of lammps_al's snippets"
                              + (f" (did you mean {close[0]}?)" if close else "")
                              + f"; they are {sorted(LAMMPS_AL_VARIABLES)}")
        if name in SET_BY_THE_LOOP:
            raise ConfigError(f"{where}: {name} is set by the loop for every exploration run (from "
                              f"{SET_BY_THE_LOOP[name]}); remove it")


EXPRESSION_NAMES = ("tm", "tm_guess", "a0", "mass", "bulk")   # what a run's variables may be expressions in


def evaluate(value, names: dict[str, float], where: str):
    """A number as given, or an arithmetic expression in ``names`` (``"1.2*tm"``, ``"tm + 100"``)."""
    import ast
    import operator

    if not isinstance(value, str) or not any(name in value for name in names):
        return value
    ops = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
           ast.Pow: operator.pow, ast.USub: operator.neg, ast.UAdd: operator.pos}

    def walk(node):
        if isinstance(node, ast.Expression):
            return walk(node.body)
        if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) and not isinstance(node.value, bool):
            return node.value
        if isinstance(node, ast.Name) and node.id in names:
            return names[node.id]
        if isinstance(node, ast.BinOp) and type(node.op) in ops:
            return ops[type(node.op)](walk(node.left), walk(node.right))
        if isinstance(node, ast.UnaryOp) and type(node.op) in ops:
            return ops[type(node.op)](walk(node.operand))
        raise ValueError(ast.dump(node))

    try:
        return float(walk(ast.parse(value, mode="eval")))
    except (SyntaxError, ValueError, ZeroDivisionError):
        raise ConfigError(f"{where} = {value!r} is not an arithmetic expression in {sorted(names)} and numbers") from None



@dataclass(frozen=True)
class ExploreRun:
    """One exploration input: a LAMMPS script with the potential and the fix, its ``-var`` values."""

    name: str
    input: Path
    variables: dict = field(default_factory=dict)
    kind: str = ""

    def __post_init__(self):
        if not self.name or "/" in self.name or self.name.startswith("."):
            raise ConfigError(f"name must be a plain file name, got {self.name!r}")
        check_variables(self.variables, "variables")
        probe = dict.fromkeys(EXPRESSION_NAMES, 1.2345)      # the expressions parse (values come per iteration)
        for key, value in self.variables.items():
            evaluate(value, probe, f"[[explore]] {self.name}: {key}")


@dataclass(frozen=True)
class LoopSettings:
    workdir: Path = Path("runs/loop")
    iterations: int = 5
    nprocs: int = 2
    concurrent_runs: int = 0                 # exploration runs at once; 0: as many as the cores allow
    max_select: int = 12
    sigma_target: float = 0.02
    converged_iterations: int = 2
    flag_rate: float = 0.25
    seed: int = 0
    model_snippet: Literal["mliappy", "snap"] = "mliappy"
    potential_name: str = "Al"
    start_size: Literal["minimal", "small", "standard"] = "minimal"
    lammps_variables: dict = field(default_factory=dict)   # -var NAME VALUE for every exploration run
    selection: Literal["uncertainty", "random"] = "uncertainty"
    candidates: Literal["flagged", "trajectory"] = "flagged"   # what selection picks from: the configurations
    #                                          the fix flagged, or a snapshot every lal_min_write_interval steps
    cost_exponent: float = 3.0               # a label's oracle cost ~ natoms^cost_exponent (3: plane-wave DFT;
    #                                          1: a classical oracle; 0: every call alike): selection weighs it
    run_timeout: float = 7200.0              # s; an exploration run past it is stopped and reported
    force_target: float = 0.0                # eV/A, > 0: the accuracy the loop aims at (see below)
    trajectory_statistic: Literal["max", "rms"] = "max"   # of the per-atom sigma, averaged along trajectories
    held_out_snapshots: int = 2              # per system, for an oracle LAMMPS cannot run (its own MD); 0: none
    held_out_budget: float = 3600.0          # s of oracle time the held-out MD may take (estimated first)
    elastic_tolerance: float = 0.05          # relative; label strained cells while 2 posterior std of C11, C12 or
    #                                          C44 exceed it (lammps_al.loop.elastic); 0: never
    explore: tuple[ExploreRun, ...] = ()

    def __post_init__(self):
        for name in ("iterations", "nprocs", "max_select", "converged_iterations"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.concurrent_runs < 0:
            raise ConfigError(f"concurrent_runs must be >= 0 (0: as many as the cores allow), got "
                             f"{self.concurrent_runs}")
        if not 0 < self.sigma_target < math.inf:
            raise ConfigError(f"sigma_target must be > 0 and finite, got {self.sigma_target}")
        if self.seed < 0:
            raise ConfigError(f"seed must be >= 0 (it seeds the starting set and the exploration runs), got "
                              f"{self.seed}")
        if not 0 <= self.flag_rate <= 1:
            raise ConfigError(f"flag_rate must be in [0, 1], got {self.flag_rate}")
        if self.candidates == "trajectory" and not self.force_target > 0:
            raise ConfigError("candidates = 'trajectory' needs force_target (eV/A, > 0): the flag threshold it sets "
                              "(3 x the target) still tells which runs flagged while every snapshot is written; "
                              "give force_target or candidates = 'flagged'")
        if not 0 <= self.cost_exponent <= 6:
            raise ConfigError(f"cost_exponent must be in [0, 6] (a label's oracle cost ~ natoms^cost_exponent: 3 for "
                              f"plane-wave DFT, 1 for a classical oracle, 0 to count calls), got {self.cost_exponent}")
        if not self.run_timeout > 0:
            raise ConfigError(f"run_timeout must be > 0 s, got {self.run_timeout}")
        if not self.potential_name or "/" in self.potential_name:
            raise ConfigError(f"potential_name must be a file stem, got {self.potential_name!r}")
        if self.held_out_snapshots < 0:
            raise ConfigError(f"held_out_snapshots must be >= 0 (0: no held-out set), got {self.held_out_snapshots}")
        if not self.held_out_budget > 0:
            raise ConfigError(f"held_out_budget must be > 0 s, got {self.held_out_budget}")
        if not 0 <= self.elastic_tolerance < 1:
            raise ConfigError(f"elastic_tolerance must be a fraction in [0, 1) (0.05: C11, C12, C44 known within 5 %; "
                              f"0: no strained cells), got {self.elastic_tolerance}")
        if not 0 <= self.force_target < math.inf:
            raise ConfigError(f"force_target must be > 0 eV/A (or 0: not used), got {self.force_target}")
        check_variables(self.lammps_variables, "lammps_variables")
        probe = dict.fromkeys(EXPRESSION_NAMES, 1.2345)
        for key, value in self.lammps_variables.items():
            evaluate(value, probe, f"lammps_variables: {key}")

    def exploration_variables(self) -> dict:
        """The fix's settings every exploration run gets. With ``force_target`` (eV/A, a force RMSE), the rule:
        score with the calibrated Bayesian force uncertainty (the RMS force-component error it predicts for each
        atom, eV/A), flag a configuration when an atom's predicted error passes 3 x the target, halt the run at
        20 x, and call the loop converged when the RMS of the predicted errors over the atoms, averaged along
        the trajectories, stays below the target; the ``lammps_variables`` given override any of these."""
        rule = {}
        if self.force_target > 0:
            rule = {"lal_scorer": "bayes_force", "lal_flag": round(3 * self.force_target, 6),
                    "lal_halt": round(20 * self.force_target, 6)}
        return {**rule, **self.lammps_variables}

    @property
    def convergence_target(self) -> float:
        """sigma_target, or with ``force_target`` the force target itself (a mean predicted error)."""
        return self.force_target if self.force_target > 0 else self.sigma_target

    @property
    def statistic(self) -> str:
        return "rms" if self.force_target > 0 else self.trajectory_statistic

    @property
    def runs_at_once(self) -> int:
        return self.concurrent_runs or max(1, (os.cpu_count() or 1) // self.nprocs)


@dataclass(frozen=True)
class LoopConfig:
    loop: LoopSettings
    fit: Config            # oracle, executor, descriptor, fit, groups (the same sections as lammps-al fit)
    source: Path


def iter_dir(settings: LoopSettings, k: int) -> Path:
    return settings.workdir / f"iter_{k:03d}"


LOOP_OUTLIER_FORCE_SCALE = 2.0   # [fit] outlier_force_scale of a loop's fits unless its config sets one: a label
#   whose RMS force is beyond twice the store's median weighs as one at twice the median (the loop labels what
#   wrong models drove MD into; see lammps_al.train.fitters.outlier_factors)


def potential_path(settings: LoopSettings, k: int) -> Path:
    """Iteration k's potential (made by the fit that ended iteration k-1, or by the first fit)."""
    return iter_dir(settings, k) / "potential" / f"{settings.potential_name}.npz"


def is_shipped(path: Path) -> bool:
    """Whether ``path`` is one of lammps_al's shipped files (package data)."""
    from lammps_al.core.resources import shipped_dir

    try:
        return Path(path).resolve().parent == shipped_dir("in_files").resolve()
    except ConfigError:
        return False


def load_loop_config(path: Path, workdir: Path | None = None) -> LoopConfig:
    """The loop config at ``path``; ``workdir`` (absolute or relative to the current folder) replaces
    ``[loop] workdir``."""
    path = Path(path)
    raw = read_toml(path)
    src = str(path)
    base = path.parent.resolve()
    loop_raw = raw.pop("loop", {}) or {}
    explore_raw = raw.pop("explore", [])
    if not isinstance(explore_raw, list) or not explore_raw:
        raise ConfigError(f"{src}: no [[explore]] runs; add at least one ([[explore]] name, input, variables, kind)")
    runs = []
    for i, r in enumerate(explore_raw):
        run = section(ExploreRun, r, f"[explore][{i}]", src)
        run = dataclasses.replace(run, input=find_file(run.input, "in_files", base,
                                                       what=f"{src}: [[explore]] {run.name}: input"),
                                  kind=run.kind or run.name)
        runs.append(run)
    names = [r.name for r in runs]
    if len(set(names)) != len(names):
        raise ConfigError(f"{src}: [[explore]] names must differ (they name the runs' files), got {names}")
    settings = section(LoopSettings, loop_raw, "loop", src, explore=tuple(runs))
    if workdir is not None:
        settings = dataclasses.replace(settings, workdir=Path(workdir).expanduser().resolve())
    else:
        settings = dataclasses.replace(settings, workdir=resolve(settings.workdir,
                                                                 Path.cwd() if is_shipped(path) else base))
    if isinstance(raw.get("training"), dict) and "dir" in raw["training"]:
        raise ConfigError(f"{src}: [training] dir is set by the loop (WORKDIR/training = "
                          f"{settings.workdir / 'training'}); remove it (extra data goes in [training] sources)")
    if isinstance(raw.get("fit"), dict) and "name" in raw["fit"]:
        raise ConfigError(f"{src}: [fit] name is set by [loop] potential_name ({settings.potential_name!r}); "
                          f"remove it")
    fit_raw = raw.setdefault("fit", {})
    if isinstance(fit_raw, dict):            # anything else is refused, by name, when the fit's sections load
        fit_raw.setdefault("outlier_force_scale", LOOP_OUTLIER_FORCE_SCALE)
    fit = config_from_dict(raw, path)
    if fit.descriptor is None:
        raise ConfigError(f"{src} needs a [descriptor] section for the fits")
    fit = dataclasses.replace(fit, training=dataclasses.replace(fit.training, dir=settings.workdir / "training"),
                              fit=dataclasses.replace(fit.fit, name=settings.potential_name))
    _check_workdir(settings.workdir, src)
    return LoopConfig(settings, fit, path)


def _check_workdir(workdir: Path, src: str) -> None:
    """The workdir (or its nearest existing parent) must be a writable folder."""
    p = workdir
    while not p.exists() and p != p.parent:
        p = p.parent
    if not p.is_dir() or not os.access(p, os.W_OK | os.X_OK):
        raise ConfigError(f"{src}: [loop] workdir {workdir} cannot be created ({p} is not a writable folder); "
                          f"choose another workdir")
