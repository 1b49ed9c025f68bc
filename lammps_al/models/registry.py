"""The model protocol, the scorer protocol, and their registries.

**A model** maps each atom's descriptors (the bispectrum B_i that ML-IAP computes, shape (n, d)) and element
index to its energy E_i (eV) and to dE_i/dB_i (eV, shape (n, d)): that is all LAMMPS's ``mliappy`` coupling
and the ASE twin need. It keeps its parameters in arrays named ``model.*`` in the potential file (written by
:meth:`Model.arrays`, read by :meth:`Model.from_potential`). A model whose energy is linear in its parameters
also gives :meth:`Model.features` (the vector phi_i with E_i = theta . phi_i): the posterior-based scorers and
the linear fitters need it.

**A scorer** maps the same inputs to one number per atom, its uncertainty. It declares the potential arrays
it reads (``needs``) and how a fit produces them (:meth:`Scorer.produce`, from a :class:`FitProducts`).

Both are registered by name: the built-in ones below (one line each, imported on first use), any added at
run time with :func:`register_model` / :func:`register_scorer`, and any given as ``"package.module:Class"``.
A potential file records a model's import path when it is not built in, so LAMMPS finds it on every rank.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from lammps_al.core.errors import ConfigError, PotentialError, ScorerError
from lammps_al.core.potential import Potential

# ---- registries: name -> "module:Class" (built in) or class (registered at run time) -----------------

BUILTIN_MODELS = {
    "linear": "lammps_al.models.snap:LinearSNAP",
    "quadratic": "lammps_al.models.snap:QuadraticSNAP",
}
BUILTIN_SCORERS = {
    "bayes": "lammps_al.models.scorers:BayesScorer",
    "bayes_force": "lammps_al.models.scorers:BayesForceScorer",
    "committee": "lammps_al.models.scorers:CommitteeScorer",
    "grade": "lammps_al.models.scorers:GradeScorer",
}
NO_SCORER = "none"   # run a potential without per-atom uncertainty

_models: dict[str, type] = {}
_scorers: dict[str, type] = {}


def import_path(cls) -> str:
    return f"{cls.__module__}:{cls.__qualname__}"


def _import(path: str, what: str, error):
    module_name, _, attr = path.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise error(f"{what} {path!r}: cannot import module {module_name!r} ({exc}); is it on PYTHONPATH (in "
                    f"LAMMPS: on every rank)?") from None
    obj = module
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise error(f"{what} {path!r}: module {module_name!r} has no {attr!r}") from None
    return obj


def register_model(cls):
    """Register a model class under ``cls.kind`` (usable as a decorator)."""
    if not getattr(cls, "kind", ""):
        raise ConfigError(f"model class {cls.__name__} has no 'kind' name to register")
    _models[cls.kind] = cls
    return cls


def register_scorer(cls):
    """Register a scorer class under ``cls.name`` (usable as a decorator)."""
    if not getattr(cls, "name", "") or cls.name == NO_SCORER:
        raise ConfigError(f"scorer class {cls.__name__} needs a 'name' other than {NO_SCORER!r}")
    _scorers[cls.name] = cls
    return cls


def model_names() -> list[str]:
    return sorted(set(BUILTIN_MODELS) | set(_models))


def scorer_names() -> list[str]:
    """Registered scorers, built-in ones first in order of preference."""
    return list(BUILTIN_SCORERS) + sorted(set(_scorers) - set(BUILTIN_SCORERS))


def model_class(kind: str, class_path: str = "", error=PotentialError) -> type:
    """The class of model ``kind``: registered, built in, or imported from ``class_path``/``kind`` when it
    reads "package.module:Class"."""
    if kind in _models:
        return _models[kind]
    if kind in BUILTIN_MODELS:
        return register_model(_import(BUILTIN_MODELS[kind], "model", error))
    path = class_path or (kind if ":" in kind else "")
    if path:
        cls = _import(path, "model", error)
        if not isinstance(cls, type) or not callable(getattr(cls, "from_potential", None)):
            raise error(f"model {path!r} is not a model class (it lacks from_potential()): give a subclass of "
                        f"lammps_al.models.registry.Model, or one of {model_names()}")
        if getattr(cls, "kind", None) != kind and ":" not in kind:
            raise error(f"{path} defines model kind {getattr(cls, 'kind', None)!r}, not {kind!r}")
        return register_model(cls) if ":" not in kind else cls
    raise error(f"unknown model kind {kind!r}: choose one of {model_names()} or give 'package.module:Class'")


def scorer_class(name: str, error=ScorerError) -> type:
    if name in _scorers:
        return _scorers[name]
    if name in BUILTIN_SCORERS:
        return register_scorer(_import(BUILTIN_SCORERS[name], "scorer", error))
    if ":" in name:
        cls = _import(name, "scorer", error)
        protocol = ("available", "from_potential")
        if not isinstance(cls, type) or not all(callable(getattr(cls, a, None)) for a in protocol):
            raise error(f"scorer {name!r} is not a scorer class (it lacks available() and from_potential()): give a "
                        f"subclass of lammps_al.models.registry.Scorer, or one of {scorer_names() + [NO_SCORER]}")
        return cls
    raise error(f"unknown scorer {name!r}: choose one of {scorer_names() + [NO_SCORER]} or give "
                f"'package.module:Class'")


def model_for(potential: Potential):
    """The model object of ``potential`` (its arrays checked by the model class)."""
    cls = model_class(potential.model, potential.model_class)
    return cls.from_potential(potential)


def stamp(potential: Potential) -> Potential:
    """Record where a model that is not built in is imported from, so the file loads in any process (LAMMPS
    on every rank) where that module is importable."""
    if potential.model not in BUILTIN_MODELS and not potential.model_class:
        potential.model_class = import_path(model_class(potential.model))
    return potential


# ---- the protocols ------------------------------------------------------------------------------------

class Model:
    """Base class of every model; subclasses set ``kind`` and implement the methods that raise here.

    Attributes LAMMPS reads: ``n_elements``, ``n_descriptors``, ``n_params``.
    """

    kind: ClassVar[str] = ""
    n_elements: int
    n_descriptors: int
    n_params: int

    @classmethod
    def from_potential(cls, potential: Potential) -> "Model":
        """The model from a potential's ``model.*`` arrays; a :class:`PotentialError` if they do not fit."""
        raise NotImplementedError

    @classmethod
    def descriptor_settings(cls, settings):
        """The descriptor settings this model is fitted and stored with (e.g. quadratic SNAP sets
        ``quadraticflag``). Default: unchanged."""
        return settings

    def arrays(self) -> dict[str, np.ndarray]:
        """The ``model.*`` arrays to store."""
        raise NotImplementedError

    def energies(self, elems: np.ndarray, descriptors: np.ndarray) -> np.ndarray:
        """Per-atom energies (eV), shape (n,)."""
        raise NotImplementedError

    def gradients(self, elems: np.ndarray, descriptors: np.ndarray) -> np.ndarray:
        """dE_i/dB_i (eV), shape (n, d)."""
        raise NotImplementedError

    def features(self, descriptors: np.ndarray) -> np.ndarray:
        """phi_i with E_i = theta_e . phi_i (models linear in their parameters only), shape (n, p)."""
        raise ScorerError(f"model {self.kind!r} is not linear in its parameters: it has no feature vector, so "
                          f"posterior-based scorers (bayes, committee, grade) do not apply")

    def force_features(self, elems: np.ndarray, descriptors: np.ndarray, gradients: np.ndarray) -> np.ndarray:
        """J_j with F_j = theta . J_j (models linear in their parameters only): -sum_i dphi_i/dr_j, blocked by
        the element of i, shape (n, 3, n_elements * p). ``gradients[i, j, a, k]`` = dB_ik / dr_ja."""
        raise ScorerError(f"model {self.kind!r} is not linear in its parameters: it has no force features")

    @property
    def linear_in_parameters(self) -> bool:
        return type(self).features is not Model.features

    def __call__(self, elems, descriptors, beta, energy) -> None:
        """ML-IAP's entry: fill ``beta`` (n, d) and ``energy`` (n,) in place."""
        if len(energy) == 0:
            return
        energy[:] = self.energies(elems, descriptors)
        beta[:] = self.gradients(elems, descriptors)


@dataclass
class FitProducts:
    """What a fit hands the scorers so that each makes its data: the fitted potential and model, the
    posterior covariance (None for non-Bayesian solvers), the training atoms' descriptors per element, their
    force features (J_j, F_j = theta . J_j, for models linear in their parameters; the force rows of the
    design matrix) and the seed for anything random."""

    potential: Potential
    model: Model
    covariance: np.ndarray | None
    descriptors: list[np.ndarray]           # per element: (n_atoms_e, d)
    seed: int = 0
    force_features: np.ndarray | None = None    # (n_atoms, 3, n_elements * p)
    _features: list | None = field(default=None, repr=False)

    @property
    def features(self) -> list[np.ndarray]:
        """Per element, the training atoms' feature vectors (computed once, on first use)."""
        if self._features is None:
            self._features = [self.model.features(B) if len(B) else np.zeros((0, 0)) for B in self.descriptors]
        return self._features


DESCRIPTORS = "descriptors"            # a scorer's input: the atoms' descriptors B_i, (n, d)
FORCE_FEATURES = "force_features"      # or their force features J_j, (n, 3, n_elements * p)
CALIBRATION = "calibration"            # arrays calibration.<scorer id>: the scale that makes a scorer predict
#                                        the atom's force error in eV/A (from the fit's cross-validation)


class Scorer:
    """Base class of every per-atom uncertainty; subclasses set ``name``, ``unit``, ``needs`` and implement
    :meth:`produce`, :meth:`from_potential` and :meth:`__call__`. ``inputs`` says what ``__call__`` takes: the
    atoms' descriptors (the default) or their force features."""

    name: ClassVar[str] = ""
    unit: ClassVar[str] = ""                 # "eV" for energy uncertainties, "1" for dimensionless ones
    needs: ClassVar[tuple[str, ...]] = ()    # potential arrays it reads (prefix.* names or exact names)
    inputs: ClassVar[str] = DESCRIPTORS

    @classmethod
    def produce(cls, fit: FitProducts) -> dict[str, np.ndarray]:
        """The arrays this scorer needs, made from a fit ({} when this fit cannot give them)."""
        raise NotImplementedError

    @classmethod
    def available(cls, potential: Potential) -> bool:
        return all(_has(potential, need) for need in cls.needs)

    @classmethod
    def from_potential(cls, potential: Potential, model: Model) -> "Scorer":
        raise NotImplementedError

    def __call__(self, elems: np.ndarray, descriptors: np.ndarray) -> np.ndarray:
        """Per-atom values, shape (n,)."""
        raise NotImplementedError


def _has(potential: Potential, need: str) -> bool:
    if need.endswith(".*"):
        return bool(potential.group(need[:-2]))
    return need in potential.arrays


class Calibrated:
    """A scorer mapped to the atom's predicted force error (eV/A) by the calibration its potential stores for
    it: ``scale * raw ** exponent`` (the exponent 1 when only a scale is stored)."""

    def __init__(self, scorer, scale: float, exponent: float = 1.0):
        self.scorer, self.scale, self.exponent = scorer, float(scale), float(exponent)
        self.inputs, self.name, self.unit = scorer.inputs, scorer.name, "eV/A"

    def __call__(self, elems, data):
        raw = self.scorer(elems, data)
        return self.scale * (raw if self.exponent == 1.0 else np.power(np.maximum(raw, 0.0), self.exponent))


def calibration_key(name: str) -> str:
    return f"{CALIBRATION}.{scorer_id(name)}"


def make_scorer(potential: Potential, model: Model, name: str, calibrated: bool = True):
    """The scorer ``name`` for ``potential`` (None for "none"), calibrated when the potential stores a scale for
    it (and ``calibrated``); a :class:`ScorerError` naming what the potential lacks and how to get it."""
    if name == NO_SCORER:
        return None
    cls = scorer_class(name)
    if not cls.available(potential):
        missing = [n for n in cls.needs if not _has(potential, n)]
        raise ScorerError(f"scorer {name!r} needs {missing} in the potential file, and this potential has none "
                          f"(fitted with solver {potential.settings.get('fit', {}).get('solver')!r}); refit with "
                          f"lammps-al fit and solver = 'bayes' (the posterior gives every built-in scorer its data)")
    scorer = cls.from_potential(potential, model)
    stored = calibration(potential, name)
    if not calibrated or stored is None:
        return scorer
    return Calibrated(scorer, *stored)


def calibration(potential: Potential, name: str) -> tuple[float, float] | None:
    """The (scale, exponent) the potential stores for scorer ``name`` (exponent 1 when only a scale is
    stored), or None."""
    stored = potential.arrays.get(calibration_key(name))
    if stored is None:
        return None
    stored = np.atleast_1d(stored)
    return float(stored[0]), float(stored[1]) if stored.size > 1 else 1.0


def scorer_id(name: str) -> str:
    """How a scorer is named outside this process: a built-in's name, else its "package.module:Class"."""
    if name in BUILTIN_SCORERS or ":" in name:
        return name
    return import_path(scorer_class(name))


def available_scorers(potential: Potential) -> list[str]:
    """The scorers (by :func:`scorer_id`) whose data the potential holds, preferred first."""
    return [scorer_id(n) for n in scorer_names() if scorer_class(n).available(potential)]


def default_scorer(potential: Potential) -> str:
    """The preferred scorer the potential can give: bayes, else committee, else grade, else none."""
    names = available_scorers(potential)
    return names[0] if names else NO_SCORER


def produce_scorer_data(fit: FitProducts) -> dict[str, np.ndarray]:
    """Every registered scorer's arrays for ``fit`` (scorers that cannot use this fit give nothing)."""
    out: dict[str, np.ndarray] = {}
    for name in scorer_names():
        out.update(scorer_class(name).produce(fit))
    return out


def score(scorer, descriptors: list[np.ndarray], force_features: np.ndarray | None = None,
          force_elements: np.ndarray | None = None) -> np.ndarray:
    """A scorer's values over atoms given per element (descriptors) or together (force features)."""
    if scorer.inputs == FORCE_FEATURES:
        if force_features is None or not len(force_features):
            return np.zeros(0)
        return scorer(force_elements, force_features)
    values = [scorer(np.full(len(B), e), B) for e, B in enumerate(descriptors) if len(B)]
    return np.concatenate(values) if values else np.zeros(0)


def score_statistics(potential: Potential, model: Model, descriptors: list[np.ndarray],
                     force_features: np.ndarray | None = None, force_elements: np.ndarray | None = None) -> dict:
    """Each available scorer's values over the training atoms as :class:`~lammps_al.core.records.ScoreStats`
    (calibrated when the potential stores a scale): the fix calibrates its thresholds on them."""
    from lammps_al.core.records import ScoreStats

    stats = {}
    for name in available_scorers(potential):
        values = score(make_scorer(potential, model, name), descriptors, force_features, force_elements)
        if values.size:
            stats[name] = ScoreStats.from_values(values)
    return stats
