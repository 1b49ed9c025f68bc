"""The built-in per-atom uncertainties, for models linear in their parameters (phi_i: an atom's feature
vector, [1, B] for linear SNAP, [1, B, quadratic(B)] for quadratic SNAP; e its element).

- ``bayes``: sigma_i = sqrt(phi_i^T Sigma_e phi_i), eV: the posterior predictive standard deviation of the
  atom's energy, from the Bayesian fit's covariance Sigma (``posterior.covariance``, stored by the fit).
- ``committee``: the sample standard deviation of phi_i . theta_k over K coefficient vectors theta_k drawn
  from the posterior (``committee.samples``, drawn by the fit, seeded), eV.
- ``bayes_force``: the posterior standard deviation of the atom's force components, eV/A:
  sqrt(sum_a J_ja Sigma J_ja^T / 3) with J_ja = dF_ja/dtheta the atom's force features (in LAMMPS from
  ``compute snad/atom``, in the fit the force rows of the design matrix): the RMS over x, y, z, in the same
  convention as a force RMSE.
- ``grade``: the extrapolation grade max_j |(phi_i A_e^{-1})_j| against an active set A_e of training atoms
  chosen by MaxVol (as in MLIP and pacemaker): <= 1 inside the training set's span, > 1 extrapolating
  (``grade.projector.E`` per element, made from the training atoms' features). Dimensionless.
"""

from __future__ import annotations

import numpy as np

from lammps_al.core.potential import COVARIANCE, Potential
from lammps_al.models.registry import FORCE_FEATURES, FitProducts, Model, Scorer

COMMITTEE_SIZE = 32


def _by_element(elems: np.ndarray, phi: np.ndarray, n_elements: int, fn) -> np.ndarray:
    if n_elements == 1:
        return fn(0, phi)
    out = np.empty(len(phi))
    for e in range(n_elements):
        m = elems == e
        if m.any():
            out[m] = fn(e, phi[m])
    return out


def _element_blocks(matrix: np.ndarray, n_elements: int) -> list[np.ndarray]:
    p = matrix.shape[0] // n_elements
    return [np.ascontiguousarray(matrix[e * p:(e + 1) * p, e * p:(e + 1) * p]) for e in range(n_elements)]


class BayesScorer(Scorer):
    name = "bayes"
    unit = "eV"
    needs = (COVARIANCE,)

    def __init__(self, model: Model, covariance: np.ndarray, n_elements: int):
        self.model = model
        self.covariance = np.asarray(covariance, dtype=float)
        self.blocks = _element_blocks(self.covariance, n_elements)
        self.n_elements = n_elements

    @classmethod
    def produce(cls, fit: FitProducts) -> dict[str, np.ndarray]:
        return {} if fit.covariance is None else {COVARIANCE: fit.covariance}

    @classmethod
    def from_potential(cls, potential: Potential, model: Model) -> "BayesScorer":
        from lammps_al.core.errors import ScorerError

        p = potential.coefficients.size
        if potential.covariance.shape != (p, p):
            raise ScorerError(f"the posterior covariance has shape {potential.covariance.shape}, expected ({p}, {p}) "
                              f"for {p} coefficients")
        return cls(model, potential.covariance, len(potential.elements))

    def __call__(self, elems, descriptors):
        phi = self.model.features(np.asarray(descriptors))
        return _by_element(np.asarray(elems), phi, self.n_elements,
                           lambda e, x: np.sqrt(np.maximum(np.sum((x @ self.blocks[e]) * x, axis=1), 0.0)))

    def total(self, elems, descriptors) -> float:
        """The posterior standard deviation of the configuration's total energy (eV): sqrt(Phi^T Sigma Phi)
        with Phi the per-element sums of the atoms' feature vectors (correlations between atoms included)."""
        phi = self.model.features(np.asarray(descriptors))
        nf = phi.shape[1]
        total = np.zeros(self.covariance.shape[0])
        for e in range(self.n_elements):
            total[e * nf:(e + 1) * nf] = phi[np.asarray(elems) == e].sum(axis=0)
        return float(np.sqrt(max(total @ self.covariance @ total, 0.0)))


class BayesForceScorer(Scorer):
    name = "bayes_force"
    unit = "eV/A"
    needs = (COVARIANCE,)
    inputs = FORCE_FEATURES

    def __init__(self, covariance: np.ndarray):
        self.covariance = np.asarray(covariance, dtype=float)

    @classmethod
    def produce(cls, fit: FitProducts) -> dict[str, np.ndarray]:
        return {}           # the posterior covariance is bayes's (the same array)

    @classmethod
    def from_potential(cls, potential: Potential, model: Model) -> "BayesForceScorer":
        if not model.linear_in_parameters:
            from lammps_al.core.errors import ScorerError

            raise ScorerError(f"scorer 'bayes_force' needs a model linear in its parameters, not {model.kind!r}")
        BayesScorer.from_potential(potential, model)           # the same shape checks
        return cls(potential.covariance)

    def __call__(self, elems, force_features):
        J = np.asarray(force_features)                         # (n, 3, p)
        if not len(J):
            return np.zeros(0)
        rows = J.reshape(-1, J.shape[-1])
        variance = np.sum((rows @ self.covariance) * rows, axis=1).reshape(len(J), 3).mean(axis=1)
        return np.sqrt(np.maximum(variance, 0.0))


def posterior_samples(mean: np.ndarray, covariance: np.ndarray, k: int = COMMITTEE_SIZE, seed: int = 0) -> np.ndarray:
    """K coefficient vectors drawn from N(mean, covariance), seeded: the committee."""
    cov = 0.5 * (covariance + covariance.T)
    vals, vecs = np.linalg.eigh(cov)
    root = vecs * np.sqrt(np.maximum(vals, 0.0))
    z = np.random.default_rng(seed).standard_normal((k, len(mean)))
    return mean[None, :] + z @ root.T


class CommitteeScorer(Scorer):
    name = "committee"
    unit = "eV"
    needs = ("committee.samples",)

    def __init__(self, model: Model, samples: np.ndarray, n_elements: int):
        self.model = model
        k, total = samples.shape
        p = total // n_elements
        self.members = [np.ascontiguousarray(samples[:, e * p:(e + 1) * p].T) for e in range(n_elements)]
        self.n_elements = n_elements

    @classmethod
    def produce(cls, fit: FitProducts) -> dict[str, np.ndarray]:
        if fit.covariance is None:
            return {}
        mean = fit.potential.coefficients.ravel()
        return {"committee.samples": posterior_samples(mean, fit.covariance, COMMITTEE_SIZE, fit.seed)}

    @classmethod
    def from_potential(cls, potential: Potential, model: Model) -> "CommitteeScorer":
        from lammps_al.core.errors import ScorerError

        samples = np.atleast_2d(potential.arrays["committee.samples"])
        if samples.shape[1] != potential.coefficients.size or samples.shape[0] < 2:
            raise ScorerError(f"committee samples have shape {samples.shape}, expected (K >= 2, "
                              f"{potential.coefficients.size})")
        return cls(model, samples, len(potential.elements))

    def __call__(self, elems, descriptors):
        phi = self.model.features(np.asarray(descriptors))
        return _by_element(np.asarray(elems), phi, self.n_elements,
                           lambda e, x: np.std(x @ self.members[e], axis=1, ddof=1))


def maxvol(X: np.ndarray, tol: float = 1.01, max_iter: int = 2000) -> np.ndarray:
    """Rows of X (N x r, N >= r, full column rank) spanning a locally maximal volume (MaxVol).

    Returns the r chosen row indices; afterwards every row of X is a combination of them with
    coefficients of magnitude <= ``tol``.
    """
    from scipy.linalg import qr

    n, r = X.shape
    _, _, piv = qr(X.T, pivoting=True, mode="economic")
    rows = piv[:r].copy()
    B = np.linalg.solve(X[rows].T, X.T).T  # X = B @ X[rows]
    for _ in range(max_iter):
        i, j = np.unravel_index(np.argmax(np.abs(B)), B.shape)
        if abs(B[i, j]) <= tol:
            break
        bj = B[:, j].copy()
        bi = B[i, :].copy()
        bi[j] -= 1.0
        B -= np.outer(bj, bi) / B[i, j]
        rows[j] = i
    return rows


def grade_projector(features: np.ndarray, rel_cut: float = 1e-9) -> np.ndarray:
    """P x r matrix G with grade(phi) = max |phi @ G|, from training features (N x P) of one element.

    Directions the training set does not span (singular values below ``rel_cut`` of the largest) are
    projected out first, so a rank-deficient feature set still gives a well-defined grade there; a new atom
    that moves along such a direction is not seen by the grade (it is by ``bayes``).
    """
    scale = np.sqrt(np.mean(features**2, axis=0))
    scale[scale == 0] = 1.0
    Xs = features / scale
    _, s, vt = np.linalg.svd(Xs, full_matrices=False)
    keep = s > rel_cut * s[0]
    V = vt[keep].T                       # P x r basis of the spanned subspace (scaled units)
    Xr = Xs @ V
    rows = maxvol(Xr)
    inv = np.linalg.inv(Xr[rows])
    return (V / scale[:, None]) @ inv    # phi -> (phi/scale) V A^-1


class GradeScorer(Scorer):
    name = "grade"
    unit = "1"
    needs = ("grade.projector.*",)

    def __init__(self, model: Model, projectors: list[np.ndarray]):
        self.model = model
        self.projectors = [np.ascontiguousarray(g) for g in projectors]
        self.n_elements = len(projectors)

    @classmethod
    def produce(cls, fit: FitProducts) -> dict[str, np.ndarray]:
        if not fit.model.linear_in_parameters or not all(len(B) for B in fit.descriptors):
            return {}
        return {f"grade.projector.{e}": grade_projector(f) for e, f in enumerate(fit.features)}

    @classmethod
    def from_potential(cls, potential: Potential, model: Model) -> "GradeScorer":
        from lammps_al.core.errors import ScorerError

        group = potential.group("grade.projector")
        width = potential.coefficients.shape[-1]
        projectors = [group.get(str(e)) for e in range(len(potential.elements))]
        if any(g is None or g.ndim != 2 or g.shape[0] != width for g in projectors):
            raise ScorerError(f"grade projectors have shapes {[None if g is None else g.shape for g in projectors]}, "
                              f"expected one per element with {width} rows")
        return cls(model, projectors)

    def __call__(self, elems, descriptors):
        phi = self.model.features(np.asarray(descriptors))
        return _by_element(np.asarray(elems), phi, self.n_elements,
                           lambda e, x: np.max(np.abs(x @ self.projectors[e]), axis=1))
