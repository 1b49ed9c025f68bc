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


def row_weights(dm: DesignMatrix, configs: list[Atoms], config) -> np.ndarray:
    groups = [str(a.info.get("group", "default")) for a in configs]
    table = np.array([[getattr(config.weights_for(g), f"{k}_weight") for k in KIND_NAMES] for g in groups])
    return table[dm.config, dm.kind]


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
        timings = {}
        t0 = time.perf_counter()
        bar = ProgressBar(len(configs), "descriptors", enabled=show_progress)
        blocks = compute_blocks(configs, settings, config.reference, workers=config.fit.workers,
                                progress=lambda i, n: bar.update())
        bar.close()
        t1 = time.perf_counter()
        timings["descriptors"] = t1 - t0
        dm = design_matrix(configs, blocks, settings, energy=config.fit.energy, force=config.fit.force,
                           stress=config.fit.stress)
        w = row_weights(dm, configs, config)
        train_rows = ~test[dm.config]
        if not np.any(w[train_rows]):
            raise FitError(f"all training rows have zero weight: check [groups] in {config.source}")
        keep = train_rows & (w > 0)
        result = solve(dm.A[keep], dm.b[keep], w[keep], config.fit.solver, **solver_options(config.fit))
        metrics = error_metrics(dm, dm.A @ result.coefficients, configs, test)
        timings["solve"] = time.perf_counter() - t1
        arrays = {COEFFICIENTS: result.coefficients.reshape(len(settings.elements), -1)}
        if result.covariance is not None:
            arrays[COVARIANCE] = result.covariance
        potential = Potential(elements=settings.elements, model=self.model_cls.kind, descriptor=settings,
                              arrays=arrays, reference=config.reference)
        d = settings.n_descriptors
        per_element: list[list[np.ndarray]] = [[] for _ in settings.elements]
        for blk, is_test in zip(blocks, test):
            if not is_test:
                for e in range(len(settings.elements)):
                    per_element[e].append(blk.per_atom[blk.types == e, :d])
        descriptors = [np.vstack(x) if x else np.zeros((0, d)) for x in per_element]
        return FitState(potential, result, metrics, descriptors, timings, dm, blocks)


BUILTIN = {"linear": "lammps_al.train.fitters:SNAPFitter", "quadratic": "lammps_al.train.fitters:SNAPFitter"}
_fitters: dict[str, object] = {}


def register_fitter(kind: str, fitter) -> None:
    """Fit models of ``kind`` with ``fitter`` (an object with ``fit(config, configs, test, show_progress)``)."""
    _fitters[kind] = fitter


def fitter_for(kind: str):
    """The fitter of model ``kind``."""
    from lammps_al.models.registry import model_class

    if kind in _fitters:
        return _fitters[kind]
    if kind in BUILTIN:
        module_name, _, name = BUILTIN[kind].partition(":")
        _fitters[kind] = getattr(importlib.import_module(module_name), name)(model_class(kind, error=ConfigError))
        return _fitters[kind]
    raise ConfigError(f"no fitter for model kind {kind!r}: fitters exist for {sorted(set(BUILTIN) | set(_fitters))}; "
                      f"register one with lammps_al.train.fitters.register_fitter")
