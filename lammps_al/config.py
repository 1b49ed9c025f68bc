"""One TOML file -> frozen dataclasses, validated on load; unknown keys are rejected by name.

Sections (all optional except where a command needs them)::

    [training]   dir = "training"                  # labelled store written by `lammps-al label`
                 sources = [{path = "...", format = "extxyz" | "fitsnap-json", group = "...", test = false}]
    [oracle]     name = "eam", workers = 2, [oracle.settings] ...   # the reference calculator
    [label]      inputs = ["flagged"], group = "flagged"
    [descriptor] elements, twojmax, rcutfac, radelem, wj, rfac0, rmin0, bzeroflag, switchflag
    [reference]  pair_style = "...", pair_coeff = ["..."]            # subtracted before fitting
    [fit]        model, solver, alpha, beta, ridge_alpha, rcond, test_fraction, seed, energy, force,
                 stress, workers, output_dir, name
    [groups.NAME] energy_weight, force_weight, stress_weight, test_fraction   # NAME "default" for all

Relative paths are taken relative to the TOML file's folder.
"""

from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lammps_al.descriptors import ReferencePotential, SNAPSettings
from lammps_al.errors import ConfigError


def _check_keys(section: str, given: dict, allowed: set[str], source: str) -> None:
    unknown = sorted(set(given) - allowed)
    if unknown:
        raise ConfigError(f"{source}: unknown key(s) {unknown} in [{section}]; allowed: {sorted(allowed)}")


def _build(cls, section: str, data: dict, source: str, **override):
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: [{section}] must be a table, got {type(data).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    _check_keys(section, data, set(fields), source)
    kwargs = {}
    for name, value in data.items():
        kwargs[name] = _coerce(fields[name], value, f"{section}.{name}", source)
    kwargs.update(override)
    try:
        return cls(**kwargs)
    except TypeError as exc:
        raise ConfigError(f"{source}: [{section}]: {exc}") from exc


def _coerce(f: dataclasses.Field, value: Any, where: str, source: str):
    t = f.type if isinstance(f.type, str) else getattr(f.type, "__name__", str(f.type))
    if t in ("float", "float | None") and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if t in ("int",) and not (isinstance(value, int) and not isinstance(value, bool)):
        raise ConfigError(f"{source}: {where} must be an integer, got {value!r}")
    if t in ("bool",) and not isinstance(value, bool):
        raise ConfigError(f"{source}: {where} must be true or false, got {value!r}")
    if t in ("str", "str | None") and value is not None and not isinstance(value, str):
        raise ConfigError(f"{source}: {where} must be a string, got {value!r}")
    if t.startswith("tuple") and isinstance(value, list):
        return tuple(value)
    if t in ("float", "float | None") and value is not None:
        raise ConfigError(f"{source}: {where} must be a number, got {value!r}")
    return value


@dataclass(frozen=True)
class DataSource:
    """Extra labelled data; ``test = true`` keeps all of it out of the fit (a held-out validation set)."""

    path: Path
    format: str = "auto"
    group: str | None = None
    test: bool = False

    FORMATS = ("auto", "extxyz", "fitsnap-json")


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
    executor: str = "local"     # "local": worker processes here; "mpi": mpi4py.futures ranks (a cluster job)


@dataclass(frozen=True)
class LabelConfig:
    inputs: tuple[Path, ...] = ()
    group: str = "labelled"


@dataclass(frozen=True)
class GroupWeights:
    energy_weight: float = 1.0
    force_weight: float = 1.0
    stress_weight: float = 0.0
    test_fraction: float | None = None


@dataclass(frozen=True)
class FitConfig:
    model: str = "linear"
    solver: str = "bayes"
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

    MODELS = ("linear", "quadratic")
    SOLVERS = ("bayes", "svd", "ridge")


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

    def weights_for(self, group: str) -> GroupWeights:
        return self.groups.get(group) or self.groups.get("default") or GroupWeights()

    def test_fraction_for(self, group: str) -> float:
        w = self.weights_for(group)
        return self.fit.test_fraction if w.test_fraction is None else w.test_fraction


SECTIONS = ("training", "oracle", "label", "descriptor", "reference", "fit", "groups")


def read_toml(path: Path) -> dict:
    """The TOML file as a dict; a missing or malformed file is a ConfigError naming it."""
    try:
        return tomllib.loads(Path(path).read_text())
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from exc


def load_config(path: str | Path, overrides: dict | None = None) -> Config:
    """Read and validate a TOML config; ``overrides`` maps 'section.key' to values (command-line options)."""
    path = Path(path)
    raw = read_toml(path)
    for key, value in (overrides or {}).items():
        section, _, name = key.partition(".")
        raw.setdefault(section, {})[name] = value
    return config_from_dict(raw, path)


def config_from_dict(raw: dict, path: Path) -> Config:
    src = str(path)
    _check_keys("top level", raw, set(SECTIONS), src)
    base = path.parent.resolve()

    def resolve(p) -> Path:
        p = Path(p).expanduser()
        return p if p.is_absolute() else base / p

    tr = dict(raw.get("training", {}))
    sources = []
    for i, s in enumerate(tr.pop("sources", []) or []):
        ds = _build(DataSource, f"training.sources[{i}]", s, src)
        if ds.format not in DataSource.FORMATS:
            raise ConfigError(f"{src}: training.sources[{i}].format {ds.format!r} is not one of {DataSource.FORMATS}")
        sources.append(dataclasses.replace(ds, path=resolve(ds.path)))
    training = _build(TrainingConfig, "training", tr, src)
    training = dataclasses.replace(training, dir=resolve(training.dir), sources=tuple(sources))

    oracle = _build(OracleConfig, "oracle", raw.get("oracle", {}), src)
    if oracle.executor not in ("local", "mpi"):
        raise ConfigError(f"{src}: [oracle] executor must be 'local' (worker processes on this machine) or 'mpi' "
                          f"(mpi4py.futures, launched with mpirun -np N python -m mpi4py.futures ...), got "
                          f"{oracle.executor!r}")
    if oracle.workers < 1:
        raise ConfigError(f"{src}: oracle.workers must be >= 1, got {oracle.workers}")
    if not isinstance(oracle.settings, dict):
        raise ConfigError(f"{src}: [oracle.settings] must be a table")

    label = _build(LabelConfig, "label", raw.get("label", {}), src)
    label = dataclasses.replace(label, inputs=tuple(resolve(p) for p in label.inputs))

    descriptor = None
    if "descriptor" in raw:
        try:
            descriptor = SNAPSettings.from_dict(raw["descriptor"])
        except ConfigError as exc:
            raise ConfigError(f"{src}: [descriptor]: {exc}") from exc
        except TypeError as exc:
            raise ConfigError(f"{src}: [descriptor]: {exc} (needs elements, twojmax, rcutfac, radelem, wj)") from exc

    ref = raw.get("reference", {})
    _check_keys("reference", ref, {"pair_style", "pair_coeff"}, src)
    reference = ReferencePotential(ref.get("pair_style", ""), tuple(ref.get("pair_coeff", ())))

    fit = _build(FitConfig, "fit", raw.get("fit", {}), src)
    if fit.model not in FitConfig.MODELS:
        raise ConfigError(f"{src}: fit.model {fit.model!r} is not one of {FitConfig.MODELS}")
    if fit.solver not in FitConfig.SOLVERS:
        raise ConfigError(f"{src}: fit.solver {fit.solver!r} is not one of {FitConfig.SOLVERS}")
    if not 0.0 <= fit.test_fraction < 1.0:
        raise ConfigError(f"{src}: fit.test_fraction must be in [0, 1), got {fit.test_fraction}")
    for name in ("alpha", "beta"):
        v = getattr(fit, name)
        if v is not None and v <= 0:
            raise ConfigError(f"{src}: fit.{name} must be > 0 (or left out to maximise the evidence), got {v}")
    if fit.workers < 1:
        raise ConfigError(f"{src}: fit.workers must be >= 1, got {fit.workers}")
    fit = dataclasses.replace(fit, output_dir=resolve(fit.output_dir))

    groups = {}
    for name, g in (raw.get("groups", {}) or {}).items():
        gw = _build(GroupWeights, f"groups.{name}", g, src)
        for k in ("energy_weight", "force_weight", "stress_weight"):
            if getattr(gw, k) < 0:
                raise ConfigError(f"{src}: groups.{name}.{k} must be >= 0, got {getattr(gw, k)}")
        if gw.test_fraction is not None and not 0.0 <= gw.test_fraction < 1.0:
            raise ConfigError(f"{src}: groups.{name}.test_fraction must be in [0, 1), got {gw.test_fraction}")
        groups[name] = gw
    return Config(source=path, training=training, oracle=oracle, label=label, descriptor=descriptor,
                  reference=reference, fit=fit, groups=groups)
