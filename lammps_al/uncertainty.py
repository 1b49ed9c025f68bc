"""Per-atom uncertainty of a SNAP potential: three scorers, and what a fit stores for them.

Every scorer maps an atom's feature vector phi (the vector its energy is linear in: [1, B] for linear SNAP,
[1, B, quadratic(B)] for quadratic SNAP) and element to one number:

- ``bayes``: sigma_i = sqrt(phi_i^T Sigma_e phi_i), eV, from the fit's posterior covariance.
- ``committee``: the standard deviation of phi_i . theta_k over K coefficient vectors theta_k drawn from
  the posterior (stored in the potential file, seeded), eV.
- ``grade``: the extrapolation grade max_j |(phi_i A_e^{-1})_j| against an active set A_e of training atoms
  chosen by MaxVol (as in MLIP and pacemaker): <= 1 inside the training set's span, > 1 extrapolating.
  Dimensionless.
"""

from __future__ import annotations

import numpy as np

from lammps_al.errors import LammpsAlError

SCORERS = ("bayes", "committee", "grade")
UNITS = {"bayes": "eV", "committee": "eV", "grade": "1"}
NO_SCORER = "none"   # run the potential without per-atom uncertainty


class ScorerError(LammpsAlError):
    """Raised when a potential cannot provide the scorer asked for (e.g. no committee samples)."""


class Scorer:
    name = ""

    def __call__(self, elems: np.ndarray, phi: np.ndarray) -> np.ndarray:
        raise NotImplementedError


def _by_element(elems: np.ndarray, phi: np.ndarray, n_elements: int, fn) -> np.ndarray:
    if n_elements == 1:
        return fn(0, phi)
    out = np.empty(len(phi))
    for e in range(n_elements):
        m = elems == e
        if m.any():
            out[m] = fn(e, phi[m])
    return out


class BayesScorer(Scorer):
    name = "bayes"

    def __init__(self, covariance: np.ndarray, n_elements: int):
        p = covariance.shape[0] // n_elements
        self.blocks = [np.ascontiguousarray(covariance[e * p:(e + 1) * p, e * p:(e + 1) * p])
                       for e in range(n_elements)]
        self.n_elements = n_elements

    def __call__(self, elems, phi):
        return _by_element(elems, phi, self.n_elements,
                           lambda e, x: np.sqrt(np.maximum(np.sum((x @ self.blocks[e]) * x, axis=1), 0.0)))


class CommitteeScorer(Scorer):
    name = "committee"

    def __init__(self, samples: np.ndarray, n_elements: int):
        k, total = samples.shape
        p = total // n_elements
        self.members = [np.ascontiguousarray(samples[:, e * p:(e + 1) * p].T) for e in range(n_elements)]
        self.n_elements = n_elements

    def __call__(self, elems, phi):
        return _by_element(elems, phi, self.n_elements, lambda e, x: np.std(x @ self.members[e], axis=1, ddof=1))


class GradeScorer(Scorer):
    name = "grade"

    def __init__(self, projectors: list[np.ndarray]):
        self.projectors = [np.ascontiguousarray(g) for g in projectors]
        self.n_elements = len(projectors)

    def __call__(self, elems, phi):
        return _by_element(elems, phi, self.n_elements, lambda e, x: np.max(np.abs(x @ self.projectors[e]), axis=1))


def default_scorer(potential) -> str:
    """The best scorer this potential can provide: bayes, else grade, else none."""
    if potential.covariance is not None:
        return "bayes"
    return "grade" if potential.grade else NO_SCORER


def make_scorer(potential, name: str) -> Scorer | None:
    """The scorer ``name`` for ``potential`` (None for "none"); a clear error when the potential lacks what it
    needs."""
    ne = len(potential.elements)
    if name == NO_SCORER:
        return None
    if name == "bayes":
        if potential.covariance is None:
            raise ScorerError(f"scorer 'bayes' needs the posterior covariance, and this potential has none "
                              f"(fitted with solver {potential.settings.get('fit', {}).get('solver')!r}); refit "
                              f"with solver = 'bayes'")
        return BayesScorer(potential.covariance, ne)
    if name == "committee":
        if potential.committee is None:
            raise ScorerError("scorer 'committee' needs committee samples, and this potential has none; refit "
                              "with solver = 'bayes' (lammps-al fit stores posterior samples)")
        return CommitteeScorer(potential.committee, ne)
    if name == "grade":
        if not potential.grade:
            raise ScorerError("scorer 'grade' needs the MaxVol active set, and this potential has none; refit "
                              "with lammps-al fit")
        return GradeScorer(potential.grade)
    raise ScorerError(f"unknown scorer {name!r}: choose one of {list(SCORERS) + [NO_SCORER]}")


# ---- what the fit stores ---------------------------------------------------------------------------

def posterior_samples(mean: np.ndarray, covariance: np.ndarray, k: int = 32, seed: int = 0) -> np.ndarray:
    """K coefficient vectors drawn from N(mean, covariance), seeded: the committee."""
    cov = 0.5 * (covariance + covariance.T)
    vals, vecs = np.linalg.eigh(cov)
    root = vecs * np.sqrt(np.maximum(vals, 0.0))
    z = np.random.default_rng(seed).standard_normal((k, len(mean)))
    return mean[None, :] + z @ root.T


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
