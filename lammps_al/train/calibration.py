"""What the scorers need of the training atoms, and their calibration by cross-validation.

:func:`atoms_of` collects, for every atom whose force is fitted (buffer atoms of cut-out environments left
out), its element, descriptors, force features J (F = theta . J: the force rows of the design matrix) and
reference force. :func:`cross_validated_scales` refits the model k times, each time without one k-th of the
training configurations, and compares each scorer's prediction for the left-out atoms with their actual
force error (the RMS over the atom's three components, the convention of a force RMSE): the map
error ~ s score**k, its exponent k the slope of log error against log score and its scale s fitted in log
space (:func:`log_scale`), makes every scorer predict the atom's force error in eV/A. The fit stores
[s, k] (``calibration.<scorer>``) and scorers apply it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lammps_al.core.potential import COEFFICIENTS, COVARIANCE, Potential
from lammps_al.models.registry import (FORCE_FEATURES, FitProducts, available_scorers, calibration_key,
                                       make_scorer, model_for, produce_scorer_data)


@dataclass
class TrainingAtoms:
    """Atoms with a fitted force: configuration index, element, descriptors B (n, d), force features J
    (n, 3, p) and the force the model must reproduce (reference minus the subtracted pair potential)."""

    config: np.ndarray
    element: np.ndarray
    descriptors: np.ndarray
    force_features: np.ndarray
    forces: np.ndarray

    def subset(self, mask) -> "TrainingAtoms":
        return TrainingAtoms(self.config[mask], self.element[mask], self.descriptors[mask], self.force_features[mask],
                             self.forces[mask])

    def per_element(self, n_elements: int) -> list[np.ndarray]:
        return [self.descriptors[self.element == e] for e in range(n_elements)]


def atoms_of(dm, blocks, linear_columns) -> TrainingAtoms:
    """Every atom with force rows in ``dm`` (three consecutive rows per atom), its descriptors ``linear_columns``
    of its block."""
    rows = np.flatnonzero(dm.kind == 1)
    if rows.size == 0:
        p = dm.A.shape[1]
        return TrainingAtoms(np.zeros(0, int), np.zeros(0, int), np.zeros((0, len(linear_columns))),
                             np.zeros((0, 3, p)), np.zeros((0, 3)))
    first = rows[0::3]
    config, atom = dm.config[first], dm.atom[first]
    element = np.array([blocks[c].types[a] for c, a in zip(config, atom)], dtype=int)
    descriptors = np.array([blocks[c].per_atom[a, linear_columns] for c, a in zip(config, atom)])
    J = dm.A[rows].reshape(-1, 3, dm.A.shape[1])
    return TrainingAtoms(config, element, descriptors, J, dm.b[rows].reshape(-1, 3))


def force_errors(predicted: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Each atom's RMS force-component error, |dF| / sqrt(3) (eV/A): the convention of a force RMSE."""
    return np.linalg.norm(np.asarray(predicted) - np.asarray(reference), axis=-1) / np.sqrt(3.0)


def per_atom_scores(scorer, atoms: TrainingAtoms, n_elements: int) -> np.ndarray:
    """A scorer's value for each of ``atoms``, in their order."""
    if scorer.inputs == FORCE_FEATURES:
        return scorer(atoms.element, atoms.force_features)
    out = np.empty(len(atoms.element))
    for e in range(n_elements):
        m = atoms.element == e
        if m.any():
            out[m] = scorer(np.full(int(m.sum()), e), atoms.descriptors[m])
    return out


def cross_validated_scales(potential: Potential, dm, weights: np.ndarray, train_rows: np.ndarray,
                           atoms: TrainingAtoms, solver_options: dict, folds: int = 5, seed: int = 0) -> dict:
    """Per available scorer: {"scale", "spearman", "atoms"} from k-fold cross-validation over the training
    configurations (Bayesian fits only: the scorers need the posterior)."""
    from scipy.stats import spearmanr

    from lammps_al.train.solvers import gram, solve_bayes_gram

    train_configs = np.unique(dm.config[train_rows])
    k = min(folds, len(train_configs))
    if k < 2 or potential.covariance is None:
        return {}
    fold_of = dict(zip(np.random.default_rng(seed).permutation(train_configs), np.arange(len(train_configs)) % k))
    row_fold = np.array([fold_of.get(c, -1) for c in dm.config])
    atom_fold = np.array([fold_of.get(c, -1) for c in atoms.config])
    keep = train_rows & (weights > 0)
    G, Atb, btb, n = gram(dm.A[keep], dm.b[keep], weights[keep])
    variance = float(np.var(dm.b[keep] * weights[keep]))
    ne = len(potential.elements)
    errors, raw = [], {name: [] for name in available_scorers(potential)}
    for f in range(k):
        rows = keep & (row_fold == f)
        left_out = atom_fold == f
        if not left_out.any():
            continue
        Gf, Atbf, btbf, nf = gram(dm.A[rows], dm.b[rows], weights[rows])
        try:
            result = solve_bayes_gram(G - Gf, Atb - Atbf, btb - btbf, n - nf, alpha=solver_options.get("alpha"),
                                      beta=solver_options.get("beta"), b_variance=variance)
        except Exception:  # noqa: BLE001 - a fold too small to fit: calibrate on the others
            continue
        fold = Potential(elements=potential.elements, model=potential.model, descriptor=potential.descriptor,
                         model_class=potential.model_class, reference=potential.reference,
                         arrays={COEFFICIENTS: result.coefficients.reshape(ne, -1), COVARIANCE: result.covariance})
        fold_model = model_for(fold)
        fitted = atoms.subset((atom_fold >= 0) & (atom_fold != f))
        fold.arrays.update(produce_scorer_data(FitProducts(fold, fold_model, result.covariance,
                                                           fitted.per_element(ne), seed, fitted.force_features)))
        out = atoms.subset(left_out)
        errors.append(force_errors(out.force_features @ result.coefficients, out.forces))
        for name in raw:
            raw[name].append(per_atom_scores(make_scorer(fold, fold_model, name, calibrated=False), out, ne))
    if not errors:
        return {}
    err = np.concatenate(errors)
    out = {}
    for name, parts in raw.items():
        values = np.concatenate(parts)
        if values.size != err.size or not np.any(values > 0):
            continue
        exponent = power_exponent(values, err)
        rho = spearmanr(values, err).statistic
        out[name] = {"scale": log_scale(values, err, exponent), "exponent": exponent,
                     "atoms": int(err.size), "spearman": float(rho) if np.isfinite(rho) else None, "folds": int(k)}
    return out


# E[ln(chi_3 / sqrt(3))]: the mean log of an atom's RMS force-component error |dF| / sqrt(3) when its three
# components are independent normal with standard deviation 1 (digamma(3/2) / 2 + ln(2) / 2 - ln(3) / 2).
LOG_CHI3 = -0.184489


def log_scale(score: np.ndarray, error: np.ndarray, exponent: float) -> float:
    """The scale s of ``error ~ s score**exponent``, fitted in log space and read as a standard deviation: if
    each left-out atom's force components are normal with standard deviation s score**k, the mean of
    ln(error / score**k) is ln(s) + E[ln(chi_3 / sqrt(3))]. In log space one left-out configuration that
    is far from everything else (each label of an active-learning loop is, by design) weighs as much as any
    other, where matching the RMS would let its few atoms set the scale for all."""
    m = (score > 0) & (error > 0)
    if not m.any():
        return float(np.sqrt(np.mean(error**2) / max(np.mean(np.maximum(score, 0) ** (2 * exponent)), 1e-300)))
    return float(np.exp(np.mean(np.log(error[m]) - exponent * np.log(score[m])) - LOG_CHI3))


def power_exponent(score: np.ndarray, error: np.ndarray, bounds=(0.25, 2.0)) -> float:
    """The slope of log error against log score (atoms where both are positive), within ``bounds``."""
    m = (score > 0) & (error > 0)
    if m.sum() < 10:
        return 1.0
    slope = np.polyfit(np.log(score[m]), np.log(error[m]), 1)[0]
    return float(np.clip(slope, *bounds)) if np.isfinite(slope) else 1.0


def apply_scales(potential: Potential, scales: dict) -> None:
    """Store each scorer's scale in the potential (``calibration.<scorer>``) and the details in its extra."""
    for name, entry in scales.items():
        potential.arrays[calibration_key(name)] = np.array([entry["scale"], entry["exponent"]])
    potential.extra["calibration"] = {"method": "k-fold cross-validation over training configurations: predicted "
                                                "vs actual force error |dF| of left-out atoms (eV/A)", **scales}
