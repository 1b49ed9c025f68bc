"""One fitter per model kind: training configurations in, a fitted potential (model arrays and, for a
Bayesian solver, the posterior) and its errors out.

The SNAP fitter serves every model whose energy is linear in its coefficients and whose feature columns
``compute snap`` makes (linear SNAP; quadratic SNAP with ``quadraticflag 1``): descriptors and the design
matrix from LAMMPS, then one of the solvers. A new model kind registers its fitter here (one line in
``BUILTIN``) or at run time with :func:`register_fitter`.
"""

from __future__ import annotations

import importlib
import time
from dataclasses import dataclass, field

import numpy as np
from ase import Atoms

from lammps_al.core.errors import ConfigError, FitError
from lammps_al.core.potential import COEFFICIENTS, COVARIANCE, Potential
from lammps_al.core.progress import ProgressBar
from lammps_al.train.descriptors import DescriptorBlock, DesignMatrix, compute_blocks, design_matrix
from lammps_al.train.solvers import FitResult, solve

AUTO = "auto"       # [fit] model = "auto": the fitter chooses the model (SelectingFitter)
KIND_NAMES = ("energy", "force", "stress")
KIND_UNITS = {"energy": "eV/atom", "force": "eV/A", "stress": "bar"}


@dataclass
class FitState:
    """What a fitter hands back: the potential (model arrays, posterior), the solver's result, errors per
    group (train and test), the training atoms' descriptors per element, and timings (s)."""

    potential: Potential
    result: FitResult
    metrics: dict
    descriptors: list[np.ndarray]
    timings: dict = field(default_factory=dict)
    design: DesignMatrix | None = None
    blocks: list[DescriptorBlock] | None = None
    selection: dict | None = None          # the model-selection record, when the fitter chose the model
    atoms: object | None = None            # TrainingAtoms of every configuration (lammps_al.train.calibration)
    weights: np.ndarray | None = None      # per row of ``design``
    train_rows: np.ndarray | None = None   # rows of training configurations
    solver_options: dict = field(default_factory=dict)

    def training_atoms(self, test: np.ndarray):
        return self.atoms.subset(~test[self.atoms.config])


def rms_forces(configs: list[Atoms]) -> np.ndarray:
    """Each configuration's RMS reference force (eV/A; 0 for one without forces)."""
    out = np.zeros(len(configs))
    for c, atoms in enumerate(configs):
        f = atoms.arrays.get("REF_forces")
        if f is not None and len(f):
            out[c] = float(np.sqrt(np.mean(np.sum(np.asarray(f, dtype=float) ** 2, axis=1))))
    return out


def outlier_factors(configs: list[Atoms], scale: float) -> np.ndarray:
    """Per configuration, the factor on every row's weight under ``[fit] outlier_force_scale``: 1, or
    (scale * M / F)^2 for a configuration whose RMS reference force F exceeds scale * M, M the median RMS force
    of the configurations that have forces (1 everywhere when ``scale`` is 0 or none has forces).

    Why: active learning labels what a wrong model drove its MD into, sometimes far from any state the
    simulated temperatures reach (measured on the aluminium demo: a cluster run's halting configuration with an
    RMS force of 22.6 eV/A, ten times any other label, took the held-out force error of the next fit from
    0.065 to 0.189 eV/A; a single noise level lets one such configuration set it for all). Its label stays in
    the store and in the fit, weighted as a configuration at the boundary, so its residual cannot outweigh it;
    the square makes the pull of a far configuration fall off with its distance (a redescending weight)."""
    factors = np.ones(len(configs))
    if not scale:
        return factors
    f = rms_forces(configs)
    moving = f[f > 0]
    if not moving.size:
        return factors
    bound = scale * float(np.median(moving))
    far = f > bound
    factors[far] = (bound / f[far]) ** 2
    return factors


def row_weights(dm: DesignMatrix, configs: list[Atoms], config) -> np.ndarray:
    """Each row's weight: its group's weight of its kind, times sqrt(N) for the energy row of an N-atom
    configuration in a group with ``energy_scaling = "sqrt-natoms"``, for a force row the factor of its atom's
    element (``element_force_weights``; 1 for an element not named), and for every row of a configuration its
    factor under ``[fit] outlier_force_scale`` (:func:`outlier_factors`)."""
    groups = [str(a.info.get("group", "default")) for a in configs]
    table = np.array([[getattr(config.weights_for(g), f"{k}_weight") for k in KIND_NAMES] for g in groups])
    w = table[dm.config, dm.kind] * outlier_factors(configs, config.fit.outlier_force_scale)[dm.config]
    root_n = np.array([np.sqrt(len(a)) if config.weights_for(g).energy_scaling == "sqrt-natoms" else 1.0
                       for a, g in zip(configs, groups)])
    energy = dm.kind == KIND_NAMES.index("energy")
    w[energy] *= root_n[dm.config[energy]]
    if dm.atom is None:
        return w
    force = (dm.kind == 1) & (dm.atom >= 0)
    for c, (atoms, group) in enumerate(zip(configs, groups)):
        factor = config.weights_for(group).element_force_weights
        if factor:
            rows = force & (dm.config == c)
            w[rows] *= np.array([factor.get(e, 1.0) for e in atoms.get_chemical_symbols()])[dm.atom[rows]]
    return w


def error_metrics(dm: DesignMatrix, predicted: np.ndarray, configs: list[Atoms], test: np.ndarray) -> dict:
    """Unweighted RMSE and MAE per row kind, overall and per group, for train and test configurations."""
    groups = np.array([str(a.info.get("group", "default")) for a in configs])
    row_group = groups[dm.config]
    row_test = test[dm.config]
    err = predicted - dm.b
    out: dict = {"units": KIND_UNITS}
    for split, mask_split in (("train", ~row_test), ("test", row_test)):
        section: dict = {}
        for gname in ["*ALL", *sorted(set(groups))]:
            mask_g = mask_split if gname == "*ALL" else mask_split & (row_group == gname)
            entry = {}
            for k, kind in enumerate(KIND_NAMES):
                m = mask_g & (dm.kind == k)
                if m.any():
                    entry[kind] = {"count": int(m.sum()), "rmse": float(np.sqrt(np.mean(err[m] ** 2))),
                                   "mae": float(np.mean(np.abs(err[m])))}
            if entry:
                section[gname] = entry
        out[split] = section
    return out


def solver_options(fit) -> dict:
    if fit.solver == "bayes":
        return {"alpha": fit.alpha, "beta": fit.beta}
    if fit.solver == "ridge":
        return {"alpha": fit.ridge_alpha}
    return {"rcond": fit.rcond}


class SNAPFitter:
    """Linear-in-coefficients SNAP models: compute snap's design matrix, weighted per group, one solve."""

    def __init__(self, model_cls):
        self.model_cls = model_cls

    def fit(self, config, configs: list[Atoms], test: np.ndarray, show_progress: bool = True) -> FitState:
        if config.descriptor is None:
            raise ConfigError(f"{config.source} has no [descriptor] section: a fit needs the SNAP settings")
        settings = self.model_cls.descriptor_settings(config.descriptor)
        blocks, dm, w, train_rows, keep, timings, t1 = training_rows(config, configs, test, settings, show_progress)
        result = solve(dm.A[keep], dm.b[keep], w[keep], config.fit.solver, **solver_options(config.fit))
        metrics = error_metrics(dm, dm.A @ result.coefficients, configs, test)
        timings["solve"] = time.perf_counter() - t1
        arrays = {COEFFICIENTS: result.coefficients.reshape(len(settings.elements), -1)}
        if result.covariance is not None:
            arrays[COVARIANCE] = result.covariance
        potential = Potential(elements=settings.elements, model=self.model_cls.kind, descriptor=settings,
                              arrays=arrays, reference=config.reference)
        from lammps_al.train.calibration import atoms_of

        atoms = atoms_of(dm, blocks, np.arange(settings.n_descriptors))
        descriptors = atoms.subset(~test[atoms.config]).per_element(len(settings.elements))
        return FitState(potential, result, metrics, descriptors, timings, dm, blocks, atoms=atoms, weights=w,
                        train_rows=train_rows, solver_options=solver_options(config.fit))


def weighted_design(config, configs: list[Atoms], blocks: list[DescriptorBlock], settings) -> tuple:
    """The design matrix of ``configs`` (the config's energy/force/stress switches) and its row weights."""
    dm = design_matrix(configs, blocks, settings, energy=config.fit.energy, force=config.fit.force,
                       stress=config.fit.stress)
    return dm, row_weights(dm, configs, config)


def training_rows(config, configs: list[Atoms], test: np.ndarray, settings, show_progress: bool) -> tuple:
    """Descriptors (timed, with a progress bar), the weighted design matrix and the rows a fit uses: returns
    (blocks, design matrix, weights, training rows, rows kept (training and weight > 0), timings, and the
    ``time.perf_counter()`` at which the descriptors were done: the fit's "solve" time counts from there)."""
    t0 = time.perf_counter()
    bar = ProgressBar(len(configs), "descriptors", enabled=show_progress)
    blocks = compute_blocks(configs, settings, config.reference, workers=config.fit.workers,
                            progress=lambda i, n: bar.update())
    bar.close()
    t1 = time.perf_counter()
    timings = {"descriptors": t1 - t0}
    dm, w = weighted_design(config, configs, blocks, settings)
    train_rows = ~test[dm.config]
    if not np.any(w[train_rows]):
        raise FitError(f"all training rows have zero weight: check [groups] in {config.source}")
    return blocks, dm, w, train_rows, train_rows & (w > 0), timings, t1


# ---- choosing the model by the evidence ---------------------------------------------------------------

def evidence_scores(G: np.ndarray, Atb: np.ndarray, btb: float, n: int, columns: dict, b_variance: float,
                    alpha: float | None = None, beta: float | None = None) -> dict:
    """Each candidate's Bayesian posterior from the Gram matrix of the weighted rows (its columns ``columns[name]``),
    or None where it cannot be fitted or is left out: a candidate whose fit uses more than half the rows as
    well-determined parameters (gamma > n / 2) can nearly interpolate them, and its evidence runs off with its
    noise precision. Shared by :class:`SelectingFitter` and on-the-fly learning (:mod:`lammps_al.otf`)."""
    from lammps_al.train.solvers import solve_bayes_gram

    out = {}
    for name, idx in columns.items():
        try:
            r = solve_bayes_gram(G[np.ix_(idx, idx)], Atb[idx], btb, n, alpha=alpha, beta=beta,
                                 b_variance=b_variance)
        except FitError:
            out[name] = None
            continue
        out[name] = r if r.info["gamma"] <= 0.5 * n else None
    return out


SELECTABLE = ("linear", "quadratic")     # model kinds whose feature columns compute snap makes


@dataclass(frozen=True)
class Candidate:
    """A model form and size: ``kind`` (linear or quadratic SNAP) at ``twojmax``."""

    kind: str
    twojmax: int

    @property
    def name(self) -> str:
        return f"{self.kind}:{self.twojmax}"

    @classmethod
    def parse(cls, text: str, where: str = "[fit] candidates") -> "Candidate":
        kind, _, j = str(text).partition(":")
        if kind not in SELECTABLE or not j.isdigit() or int(j) < 0:
            raise ConfigError(f"{where}: {text!r} is not a candidate model; write KIND:TWOJMAX with KIND one of "
                              f"{list(SELECTABLE)} and TWOJMAX an integer >= 0, e.g. 'quadratic:6'")
        return cls(kind, int(j))


def default_candidates(twojmax: int, n_triples: int = 1) -> list[Candidate]:
    """Linear and quadratic SNAP at 2J = 2, 4, 6, ... up to the descriptor's twojmax (and at it). With
    chemflag (``n_triples`` element triples) quadratic only where it has at most ``MAX_QUADRATIC`` products."""
    sizes = sorted({j for j in range(2, twojmax + 1, 2)} | {twojmax})
    return [Candidate(kind, j) for kind in SELECTABLE for j in sizes
            if kind == "linear" or quadratic_size(j, n_triples) <= MAX_QUADRATIC]


MAX_QUADRATIC = 5000       # quadratic products per element a default candidate may have


def quadratic_size(twojmax: int, n_triples: int = 1) -> int:
    from lammps_al.core.descriptor import n_bispectrum

    d = n_bispectrum(twojmax) * n_triples
    return d * (d + 1) // 2


def candidates_of(fit_config, settings) -> list[Candidate]:
    if fit_config.candidates:
        return [Candidate.parse(c) for c in fit_config.candidates]
    return default_candidates(settings.twojmax, settings.n_triples)


def _components(twojmax: int) -> list[tuple[int, int, int]]:
    """compute snap's bispectrum components (j1, j2, j) in its order."""
    out = []
    for j1 in range(twojmax + 1):
        for j2 in range(j1 + 1):
            for j in range(j1 - j2, min(twojmax, j1 + j2) + 1, 2):
                if j >= j1:
                    out.append((j1, j2, j))
    return out


def linear_subset(big: int, small: int, n_triples: int = 1) -> np.ndarray:
    """Positions of the 2J=``small`` components among the 2J=``big`` ones (the same numbers: compute snap's
    components do not depend on twojmax); with chemflag, within each of the ``n_triples`` element triples
    (LAMMPS orders them triple-major)."""
    index = {c: k for k, c in enumerate(_components(big))}
    one = np.array([index[c] for c in _components(small)], dtype=int)
    width = len(index)
    return np.concatenate([t * width + one for t in range(n_triples)])


def column_index(settings, candidate: Candidate) -> np.ndarray:
    """The columns of ``candidate`` within the design matrix made with ``settings`` (its largest model):
    per element, the constant, the linear components of the smaller 2J and, for quadratic SNAP, their
    products (compute snap's quadratic columns are the upper triangle of B B^T, row by row)."""
    d_big = settings.n_descriptors
    lin = linear_subset(settings.twojmax, candidate.twojmax, settings.n_triples)
    cols = [0] + list(1 + lin)
    if candidate.kind == "quadratic":
        if not settings.quadraticflag:
            raise FitError("a quadratic candidate needs the design matrix made with quadraticflag 1")
        pair = {}
        k = 0
        for i in range(d_big):
            for j in range(i, d_big):
                pair[(i, j)] = k
                k += 1
        for a in range(len(lin)):
            for b in range(a, len(lin)):
                i, j = sorted((lin[a], lin[b]))
                cols.append(1 + d_big + pair[(i, j)])
    width = 1 + settings.n_features
    return np.concatenate([e * width + np.array(cols) for e in range(len(settings.elements))])


class SelectingFitter:
    """Chooses the model form and size for the data at hand: every candidate (linear or quadratic SNAP at a
    2J) is fitted on the same weighted rows, and the one with the largest Bayesian evidence (log marginal
    likelihood, with its prior and noise precisions maximising it) wins; with a non-Bayesian solver, or with
    ``[fit] selection = "cross-validation"``, the one with the smallest k-fold cross-validated force error (folds
    of whole configurations: the error on configurations a fit has not seen; the evidence counts every row as
    an independent datum, the force rows of one configuration are not). Descriptors are computed once, for the
    largest candidate: the smaller ones' columns are a subset of its columns.

    The evidence compares models only where the data can tell a model's noise from its signal: a candidate
    whose fit uses more than half of the rows as well-determined parameters (gamma > rows / 2) can nearly
    interpolate them, its noise precision runs off and its evidence with it; it is left out (and recorded
    as such). A tiny data set therefore gets a small model, and the model grows as labels arrive."""

    def fit(self, config, configs: list[Atoms], test: np.ndarray, show_progress: bool = True) -> FitState:
        if config.descriptor is None:
            raise ConfigError(f"{config.source} has no [descriptor] section: a fit needs the SNAP settings")
        candidates = candidates_of(config.fit, config.descriptor)
        top = max(c.twojmax for c in candidates)
        settings = config.descriptor.with_quadratic(any(c.kind == "quadratic" for c in candidates))
        settings = type(settings).from_dict({**settings.to_dict(), "twojmax": top})
        blocks, dm, w, train_rows, keep, timings, t1 = training_rows(config, configs, test, settings, show_progress)
        columns = {c.name: column_index(settings, c) for c in candidates}
        if config.fit.solver == "bayes" and config.fit.selection == "evidence":
            criterion, scores = "log evidence", self._evidence(dm, w, keep, columns, config.fit)
        else:
            criterion, scores = "-cv force rmse", self._cross_validation(dm, w, keep, columns, config.fit, configs)
        ranked = sorted(scores, key=lambda name: -scores[name])
        if not np.isfinite(scores[ranked[0]]):
            raise FitError(f"no candidate model can be fitted to {int(keep.sum())} rows ({sorted(scores)}): label more "
                           f"configurations, or give smaller [fit] candidates")
        best = next(c for c in candidates if c.name == ranked[0])
        idx = columns[best.name]
        result = solve(dm.A[keep][:, idx], dm.b[keep], w[keep], config.fit.solver, **solver_options(config.fit))
        chosen = dm.columns(idx)
        metrics = error_metrics(chosen, chosen.A @ result.coefficients, configs, test)
        timings["solve"] = time.perf_counter() - t1
        small = type(settings).from_dict({**settings.to_dict(), "twojmax": best.twojmax,
                                          "quadraticflag": int(best.kind == "quadratic")})
        arrays = {COEFFICIENTS: result.coefficients.reshape(len(small.elements), -1)}
        if result.covariance is not None:
            arrays[COVARIANCE] = result.covariance
        potential = Potential(elements=small.elements, model=best.kind, descriptor=small, arrays=arrays,
                              reference=config.reference)
        from lammps_al.train.calibration import atoms_of

        atoms = atoms_of(chosen, blocks, linear_subset(settings.twojmax, best.twojmax, settings.n_triples))
        descriptors = atoms.subset(~test[atoms.config]).per_element(len(small.elements))
        selection = {"criterion": criterion, "chosen": best.name,
                     "scores": {k: (v if np.isfinite(v) else None) for k, v in scores.items()},
                     "runner_up": ranked[1] if len(ranked) > 1 and np.isfinite(scores[ranked[1]]) else None,
                     "rows": int(keep.sum()),
                     "coefficients": {c.name: int(len(columns[c.name])) for c in candidates}}
        return FitState(potential, result, metrics, descriptors, timings, chosen, blocks, selection, atoms=atoms,
                        weights=w, train_rows=train_rows, solver_options=solver_options(config.fit))

    @staticmethod
    def _evidence(dm, w, keep, columns, fit) -> dict[str, float]:
        from lammps_al.train.solvers import gram

        G, Atb, btb, n = gram(dm.A[keep], dm.b[keep], w[keep])
        results = evidence_scores(G, Atb, btb, n, columns, float(np.var(dm.b[keep] * w[keep])), fit.alpha,
                                  fit.beta)
        return {name: (r.info["log_evidence"] if r is not None else -np.inf) for name, r in results.items()}

    @staticmethod
    def _cross_validation(dm, w, keep, columns, fit, configs, folds: int = 5) -> dict[str, float]:
        train_configs = np.unique(dm.config[keep])
        k = min(folds, len(train_configs))
        if k < 2:
            raise FitError("choosing a model by cross-validation needs at least 2 training configurations")
        fold_of = {c: i % k for i, c in enumerate(np.random.default_rng(fit.seed).permutation(train_configs))}
        row_fold = np.array([fold_of.get(c, -1) for c in dm.config])
        force = dm.kind == 1
        scores = {}
        for name, idx in columns.items():
            sq, count = 0.0, 0
            for f in range(k):
                fit_rows, out = keep & (row_fold != f), keep & (row_fold == f) & force
                if not out.any():
                    continue
                r = solve(dm.A[fit_rows][:, idx], dm.b[fit_rows], w[fit_rows], fit.solver, **solver_options(fit))
                err = dm.A[out][:, idx] @ r.coefficients - dm.b[out]
                sq, count = sq + float(err @ err), count + int(out.sum())
            scores[name] = -np.sqrt(sq / max(count, 1))
        return scores


BUILTIN = {"linear": "lammps_al.train.fitters:SNAPFitter", "quadratic": "lammps_al.train.fitters:SNAPFitter",
           "auto": "lammps_al.train.fitters:SelectingFitter"}
_fitters: dict[str, object] = {}


def register_fitter(kind: str, fitter) -> None:
    """Fit models of ``kind`` with ``fitter`` (an object with ``fit(config, configs, test, show_progress)``)."""
    _fitters[kind] = fitter


def fitter_for(kind: str):
    """The fitter of model ``kind``."""
    from lammps_al.models.registry import model_class

    if kind in _fitters:
        return _fitters[kind]
    if kind == AUTO:
        return SelectingFitter()
    if kind in BUILTIN:
        module_name, _, name = BUILTIN[kind].partition(":")
        _fitters[kind] = getattr(importlib.import_module(module_name), name)(model_class(kind, error=ConfigError))
        return _fitters[kind]
    raise ConfigError(f"no fitter for model kind {kind!r}: fitters exist for {sorted(set(BUILTIN) | set(_fitters))}; "
                      f"register one with lammps_al.train.fitters.register_fitter")
