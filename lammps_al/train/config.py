"""The fit's TOML config -> frozen dataclasses, validated on load (everything it names is checked before
any work: oracle, model, solver, files).

Sections (all optional except where a command needs them)::

    [training]   dir = "training"                  # labelled store written by `lammps-al label`
                 sources = [{path = "...", format = "extxyz" | "fitsnap-json", group = "...", test = false}]
    [oracle]     name = "eam", workers = 2, timeout, [oracle.settings] ...   # the reference calculator
    [executor]   kind = "local" | "mpi" | "parsl", [executor.parsl] ...        # where oracle calls run
    [label]      inputs = ["flagged"], group = "flagged"
    [descriptor] elements, twojmax, rcutfac, radelem, wj, rfac0, rmin0, bzeroflag, switchflag
    [reference]  pair_style = "...", pair_coeff = ["..."]            # subtracted before fitting
    [fit]        model, solver, alpha, beta, ridge_alpha, rcond, test_fraction, seed, energy, force,
                 stress, workers, output_dir, name
    [groups.NAME] energy_weight, force_weight, stress_weight, test_fraction,   # NAME "default" for all
                 element_force_weights = {Cu = 2.0}, energy_scaling = "per-atom" | "sqrt-natoms"

Relative paths are taken relative to the TOML file's folder.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from lammps_al.core.config import check_sections, read_toml, resolve, section
from lammps_al.core.descriptor import ReferencePotential, SNAPSettings
from lammps_al.core.errors import ConfigError, LammpsAlError
from lammps_al.executors import ExecutorConfig


@dataclass(frozen=True)
class DataSource:
    """Extra labelled data; ``test = true`` keeps all of it out of the fit (a held-out validation set)."""

    path: Path
    format: Literal["auto", "extxyz", "fitsnap-json"] = "auto"
    group: str | None = None
    test: bool = False


@dataclass(frozen=True)
class TrainingConfig:
    dir: Path = Path("training")
    sources: tuple[DataSource, ...] = ()


@dataclass(frozen=True)
class OracleConfig:
    name: str = "eam"
    workers: int = 2
    settings: dict = field(default_factory=dict)
    timeout: float = 3600.0

    def __post_init__(self):
        if self.workers < 1:
            raise ConfigError(f"workers must be >= 1, got {self.workers}")
        if not self.timeout > 0:
            raise ConfigError(f"timeout must be > 0 s, got {self.timeout}")


@dataclass(frozen=True)
class LabelConfig:
    inputs: tuple[Path, ...] = ()
    group: str = "labelled"

    def __post_init__(self):
        if not self.group or "/" in self.group or self.group.startswith("."):
            raise ConfigError(f"group must be a plain folder name (the store keeps the group's labels in a folder "
                              f"of that name), got {self.group!r}")


ENERGY_SCALINGS = ("per-atom", "sqrt-natoms")


@dataclass(frozen=True)
class GroupWeights:
    energy_weight: float = 1.0
    force_weight: float = 1.0
    stress_weight: float = 0.0
    test_fraction: float | None = None
    element_force_weights: dict[str, float] = field(default_factory=dict)   # factor on the force rows of
    #                                                  the atoms of an element (an alloy's minority element)
    energy_scaling: Literal["per-atom", "sqrt-natoms"] = "per-atom"   # the energy row (E/N) of an N-atom
    #   configuration: weight energy_weight ("per-atom", FitSNAP's), or energy_weight * sqrt(N) ("sqrt-natoms",
    #   GAP's energy noise sigma * sqrt(N) on the total: independent local errors add up as sqrt(N))

    def __post_init__(self):
        for k in ("energy_weight", "force_weight", "stress_weight"):
            if not 0 <= getattr(self, k) < math.inf:
                raise ConfigError(f"{k} must be >= 0 and finite, got {getattr(self, k)}")
        from ase.data import chemical_symbols

        for element, factor in self.element_force_weights.items():
            if element not in chemical_symbols[1:]:
                raise ConfigError(f"element_force_weights: {element!r} is not a chemical symbol")
            if isinstance(factor, bool) or not isinstance(factor, (int, float)) or not 0 <= factor < math.inf:
                raise ConfigError(f"element_force_weights: the factor of {element} must be a number >= 0, got "
                                  f"{factor!r}")
        if self.energy_scaling not in ENERGY_SCALINGS:
            raise ConfigError(f"energy_scaling must be one of {list(ENERGY_SCALINGS)}, got {self.energy_scaling!r}")
        if self.test_fraction is not None and not 0.0 <= self.test_fraction < 1.0:
            raise ConfigError(f"test_fraction must be in [0, 1), got {self.test_fraction}")


@dataclass(frozen=True)
class FitConfig:
    model: str = "linear"                      # a registered model kind, or "auto": chosen among candidates
    candidates: tuple[str, ...] = ()           # "auto": KIND:TWOJMAX, e.g. "quadratic:6" (default: linear and
    #                                            quadratic at 2J = 2, 4, ... up to [descriptor] twojmax)
    solver: Literal["bayes", "svd", "ridge"] = "bayes"
    selection: Literal["evidence", "cross-validation"] = "evidence"   # "auto": how candidates are compared
    alpha: float | None = None
    beta: float | None = None
    ridge_alpha: float = 1e-6
    rcond: float = 1e-12
    test_fraction: float = 0.0
    seed: int = 0
    energy: bool = True
    force: bool = True
    stress: bool = True
    workers: int = 2
    output_dir: Path = Path("potentials")
    name: str = "potential"
    calibrate: bool = True                     # scale every scorer to the force error it predicts (k-fold CV)
    outlier_force_scale: float = 0.0          # > 0: a configuration whose RMS reference force F exceeds this
    #   multiple of the training set's median (M) weighs (scale * M / F)^2 in every row (0: every configuration
    #   weighs alike, FitSNAP's way; the loop's default is LOOP_OUTLIER_FORCE_SCALE)

    def __post_init__(self):
        if not 0.0 <= self.test_fraction < 1.0:
            raise ConfigError(f"test_fraction must be in [0, 1), got {self.test_fraction}")
        for name in ("alpha", "beta"):
            v = getattr(self, name)
            if v is not None and not v > 0:
                raise ConfigError(f"{name} must be > 0 (or left out to maximise the evidence), got {v}")
        if self.workers < 1:
            raise ConfigError(f"workers must be >= 1, got {self.workers}")
        if not self.ridge_alpha >= 0 or not self.rcond > 0:
            raise ConfigError(f"ridge_alpha must be >= 0 and rcond > 0, got {self.ridge_alpha} and {self.rcond}")
        if not self.name or "/" in self.name:
            raise ConfigError(f"name must be a file stem without '/', got {self.name!r}")
        if self.seed < 0:
            raise ConfigError(f"seed must be >= 0 (it seeds numpy's random generator), got {self.seed}")
        if not (self.energy or self.force or self.stress):
            raise ConfigError("energy, force and stress are all false: nothing to fit; set at least one to true")
        if not (self.outlier_force_scale == 0 or 1 <= self.outlier_force_scale < math.inf):
            raise ConfigError(f"outlier_force_scale must be 0 (off) or a number >= 1 (a multiple of the median RMS "
                              f"force of the training configurations), got {self.outlier_force_scale!r}")


@dataclass(frozen=True)
class Config:
    source: Path
    training: TrainingConfig
    oracle: OracleConfig
    label: LabelConfig
    descriptor: SNAPSettings | None
    reference: ReferencePotential
    fit: FitConfig
    groups: dict
    executor: ExecutorConfig = ExecutorConfig()
    oracle_named: bool = False      # the file has an [oracle] section (checked on load)

    def weights_for(self, group: str) -> GroupWeights:
        return self.groups.get(group) or self.groups.get("default") or GroupWeights()

    def test_fraction_for(self, group: str) -> float:
        w = self.weights_for(group)
        return self.fit.test_fraction if w.test_fraction is None else w.test_fraction


SECTIONS = ("training", "oracle", "label", "descriptor", "reference", "fit", "groups", "executor")


def load_config(path: str | Path, overrides: dict | None = None) -> Config:
    """Read and validate a TOML config; ``overrides`` maps 'section.key' to values (command-line options)."""
    path = Path(path)
    raw = read_toml(path)
    for key, value in (overrides or {}).items():
        sect, _, name = key.partition(".")
        raw.setdefault(sect, {})[name] = value
    return config_from_dict(raw, path)


def config_from_dict(raw: dict, path: Path, extra_sections=()) -> Config:
    """The fit's sections of ``raw`` (a loop config passes its own section names in ``extra_sections``)."""
    src = str(path)
    check_sections(raw, SECTIONS + tuple(extra_sections), src)
    base = Path(path).parent.resolve()

    tr = raw.get("training", {}) or {}
    if not isinstance(tr, dict):
        raise ConfigError(f"{src}: [training] must be a table, got {type(tr).__name__} {tr!r:.60}")
    tr = dict(tr)
    sources = []
    raw_sources = tr.pop("sources", []) or []
    if not isinstance(raw_sources, list):
        raise ConfigError(f"{src}: [training] sources must be a list of tables, got {raw_sources!r:.60}")
    for i, s in enumerate(raw_sources):
        ds = section(DataSource, s, f"training.sources[{i}]", src)
        sources.append(dataclasses.replace(ds, path=resolve(ds.path, base)))
    training = section(TrainingConfig, tr, "training", src)
    training = dataclasses.replace(training, dir=resolve(training.dir, base), sources=tuple(sources))

    oracle_raw = dict(raw.get("oracle", {}) or {})
    if "executor" in oracle_raw:
        raise ConfigError(f"{src}: [oracle] executor has moved: write [executor] kind = "
                          f"{oracle_raw['executor']!r} (it now also runs the loop's exploration)")
    oracle = section(OracleConfig, oracle_raw, "oracle", src)
    executor = section(ExecutorConfig, raw.get("executor", {}), "executor", src)
    if executor.parsl.config_file is not None:
        executor = dataclasses.replace(executor, parsl=dataclasses.replace(
            executor.parsl, config_file=resolve(executor.parsl.config_file, base)))
        if not executor.parsl.config_file.is_file():
            raise ConfigError(f"{src}: [executor.parsl] config_file {executor.parsl.config_file} does not exist; "
                              f"give a Python file defining make_config(run_dir) (relative to {base})")

    label = section(LabelConfig, raw.get("label", {}), "label", src)
    label = dataclasses.replace(label, inputs=tuple(resolve(p, base) for p in label.inputs))

    descriptor = None
    if "descriptor" in raw:
        try:
            descriptor = SNAPSettings.from_dict(raw["descriptor"])
        except (ConfigError, TypeError, ValueError) as exc:
            raise ConfigError(f"{src}: [descriptor]: {exc}") from None

    ref = raw.get("reference", {}) or {}
    if not isinstance(ref, dict) or set(ref) - {"pair_style", "pair_coeff"}:
        raise ConfigError(f"{src}: [reference] takes pair_style (a string) and pair_coeff (a list of strings), "
                          f"got {ref!r:.80}")
    if not isinstance(ref.get("pair_style", ""), str) or not isinstance(ref.get("pair_coeff", []), list) or \
            not all(isinstance(c, str) for c in ref.get("pair_coeff", [])):
        raise ConfigError(f"{src}: [reference] pair_style must be a string and pair_coeff a list of strings, got "
                          f"pair_style = {ref.get('pair_style', '')!r}, pair_coeff = {ref.get('pair_coeff', [])!r}")
    reference = ReferencePotential(ref.get("pair_style", ""), tuple(str(c) for c in ref.get("pair_coeff", ())))

    fit_raw = raw.get("fit", {}) or {}
    if isinstance(fit_raw, dict) and "candidates" in fit_raw and not fit_raw["candidates"]:
        raise ConfigError(f"{src}: [fit] candidates is empty: list at least one model, e.g. candidates = "
                          f"[\"linear:4\", \"quadratic:6\"], or leave the key out for linear and quadratic SNAP "
                          f"at every even 2J up to [descriptor] twojmax")
    fit = section(FitConfig, fit_raw, "fit", src)
    fit = dataclasses.replace(fit, output_dir=resolve(fit.output_dir, base))

    groups_raw = raw.get("groups", {}) or {}
    if not isinstance(groups_raw, dict):
        raise ConfigError(f"{src}: [groups] must be a table of [groups.NAME] tables")
    groups = {name: section(GroupWeights, g, f"groups.{name}", src) for name, g in groups_raw.items()}
    config = Config(source=Path(path), training=training, oracle=oracle, label=label, descriptor=descriptor,
                    reference=reference, fit=fit, groups=groups, executor=executor,
                    oracle_named="oracle" in raw)
    check_names(config)
    return config


def check_names(config: Config) -> None:
    """What the config names exists: the oracle (and its settings, files, packages), the model kind."""
    from lammps_al.models.registry import model_class
    from lammps_al.train.oracles import OracleSpec, check_elements, check_spec

    try:
        if config.oracle_named:
            check_spec(OracleSpec(config.oracle.name, dict(config.oracle.settings)))
            if config.descriptor is not None:
                check_elements(OracleSpec(config.oracle.name, dict(config.oracle.settings)),
                               config.descriptor.elements)
        if config.fit.model == "auto":
            from lammps_al.train.fitters import Candidate

            for text in config.fit.candidates:
                Candidate.parse(text)
            if config.descriptor is not None and any(Candidate.parse(c).twojmax > 12 for c in config.fit.candidates):
                raise ConfigError("[fit] candidates: twojmax above 12 is more than SNAP needs (and costly)")
        else:
            if config.fit.candidates:
                raise ConfigError(f"[fit] candidates are for model = 'auto', but model = {config.fit.model!r}")
            model_class(config.fit.model, error=ConfigError)
    except LammpsAlError as exc:
        raise ConfigError(f"{config.source}: {exc}") from None
