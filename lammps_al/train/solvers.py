"""Solvers for the SNAP linear system: weighted least squares (SVD, ridge) and Bayesian linear regression.

Each solver is a plain function ``(A, b, weights, options) -> FitResult``. Rows are weighted as FitSNAP
does: the solver sees ``w*A`` and ``w*b``. Linear and quadratic SNAP both give energies linear in their
coefficients, so the same solvers serve both.

The Bayesian solver puts an isotropic Gaussian prior (precision ``alpha``) on the coefficients in units
where each column of ``w*A`` has unit RMS, and Gaussian noise of precision ``beta / w_row^2`` on row values
(so ``1/sqrt(beta)`` is the noise of a row of weight 1). ``alpha`` and ``beta`` are either fixed or
maximise the evidence (MacKay's fixed-point iteration, Bishop PRML 3.5.2). The posterior covariance of the
coefficients is returned in the original units: per-atom energy uncertainty is then
``sqrt(phi^T Sigma phi)`` for an atom's feature vector phi.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from lammps_al.core.errors import FitError


@dataclass
class FitResult:
    """Coefficients (original units), their posterior covariance, and what the solver learnt.

    ``covariance`` is None for plain least squares; ``noise_precision`` is beta (per unit-weight row);
    ``prior_precision`` is alpha in scaled units; ``info`` holds solver diagnostics.
    """

    coefficients: np.ndarray
    covariance: np.ndarray | None
    solver: str
    noise_precision: float | None = None
    prior_precision: float | None = None
    info: dict = field(default_factory=dict)

    def predict(self, A: np.ndarray) -> np.ndarray:
        return A @ self.coefficients

    def predictive_std(self, A: np.ndarray, include_noise: bool = False, weights: np.ndarray | None = None):
        """Standard deviation of A @ coefficients under the posterior (plus the noise if asked)."""
        if self.covariance is None:
            raise FitError(f"solver {self.solver!r} gives no covariance; use the 'bayes' solver")
        var = np.sum((A @ self.covariance) * A, axis=1)
        if include_noise:
            w = np.ones(len(A)) if weights is None else np.asarray(weights, float)
            var = var + 1.0 / (self.noise_precision * w**2)
        return np.sqrt(np.maximum(var, 0.0))


def _weighted(A: np.ndarray, b: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    A = np.asarray(A, dtype=float)
    b = np.asarray(b, dtype=float)
    w = np.asarray(weights, dtype=float)
    if A.ndim != 2 or A.shape[0] != b.shape[0] or w.shape != b.shape:
        raise FitError(f"inconsistent shapes: A {A.shape}, b {b.shape}, weights {w.shape}")
    if A.shape[0] == 0:
        raise FitError("no rows to fit")
    if not np.any(w):
        raise FitError("all row weights are zero: give at least one group a non-zero energy, force or "
                       "stress weight")
    if not (np.all(np.isfinite(A)) and np.all(np.isfinite(b)) and np.all(np.isfinite(w))):
        raise FitError("the design matrix, truths or weights contain NaN or inf")
    return A * w[:, None], b * w


def _column_scale(Aw: np.ndarray) -> np.ndarray:
    scale = np.sqrt(np.mean(Aw**2, axis=0))
    return np.where(scale > 0, scale, 1.0)


def _svd(Aw: np.ndarray):
    try:
        return np.linalg.svd(Aw, full_matrices=False)
    except np.linalg.LinAlgError as exc:
        raise FitError(f"SVD of the {Aw.shape} design matrix did not converge: {exc}") from exc


def _check_rank(s: np.ndarray, n_cols: int, rcond: float, what: str) -> int:
    rank = int(np.sum(s > rcond * s[0])) if s.size and s[0] > 0 else 0
    if rank < n_cols:
        raise FitError(
            f"the design matrix is rank-deficient for {what}: rank {rank} of {n_cols} columns (relative "
            f"singular-value cut {rcond:g}). Add configurations that vary what the missing directions "
            f"describe, lower twojmax, or use the 'ridge' or 'bayes' solver, which regularise.")
    return rank


def solve_svd(A, b, weights, rcond: float = 1e-12, allow_rank_deficient: bool = False) -> FitResult:
    """Minimum-norm weighted least squares by SVD (FitSNAP's ``solver = SVD``)."""
    Aw, bw = _weighted(A, b, weights)
    u, s, vt = _svd(Aw)
    if not allow_rank_deficient:
        _check_rank(s, Aw.shape[1], rcond, "plain least squares")
    keep = s > rcond * s[0]
    coef = vt[keep].T @ ((u[:, keep].T @ bw) / s[keep])
    return FitResult(coef, None, "svd", info={"singular_values": s, "rank": int(keep.sum())})


def solve_ridge(A, b, weights, alpha: float = 1e-6) -> FitResult:
    """Weighted ridge regression with penalty ``alpha`` on column-scaled coefficients."""
    if alpha < 0:
        raise FitError(f"ridge alpha must be >= 0, got {alpha}")
    Aw, bw = _weighted(A, b, weights)
    scale = _column_scale(Aw)
    u, s, vt = _svd(Aw / scale)
    if alpha == 0:
        _check_rank(s, Aw.shape[1], 1e-12, "ridge with alpha 0")
    coef_scaled = vt.T @ (s * (u.T @ bw) / (s**2 + alpha))
    return FitResult(coef_scaled / scale, None, "ridge", info={"alpha": alpha, "singular_values": s})


def solve_bayes(A, b, weights, alpha: float | None = None, beta: float | None = None, max_iter: int = 500,
                tol: float = 1e-10) -> FitResult:
    """Bayesian linear regression; ``alpha``/``beta`` None means maximise the evidence for them.

    Returns the posterior mean, the posterior covariance (original units), beta (noise precision of a
    unit-weight row), alpha (prior precision, scaled units), the effective number of parameters gamma
    and the log evidence.
    """
    Aw, bw = _weighted(A, b, weights)
    n, p = Aw.shape
    scale = _column_scale(Aw)
    u, s, vt = _svd(Aw / scale)
    ub = u.T @ bw
    resid_outside = max(float(bw @ bw - ub @ ub), 0.0)  # part of b outside the column space of A
    return _bayes(s, vt, ub, resid_outside, n, p, scale, float(np.var(bw)), alpha, beta, max_iter, tol)


def gram(A, b, weights) -> tuple[np.ndarray, np.ndarray, float, int]:
    """(A^T A, A^T b, b^T b, rows) of the weighted system: all :func:`solve_bayes_gram` needs. Sub-blocks of
    these for a subset of columns are the Gram matrices of the smaller model."""
    Aw, bw = _weighted(A, b, weights)
    return Aw.T @ Aw, Aw.T @ bw, float(bw @ bw), Aw.shape[0]


def solve_bayes_gram(G: np.ndarray, Atb: np.ndarray, btb: float, n: int, alpha: float | None = None,
                     beta: float | None = None, max_iter: int = 500, tol: float = 1e-10,
                     b_variance: float | None = None) -> FitResult:
    """:func:`solve_bayes` from the Gram matrix of the weighted system (p x p, cheap to slice for model
    selection): the same posterior and evidence to rounding, through an eigendecomposition instead of an
    SVD (directions with eigenvalues below 1e-13 of the largest are treated as unseen by the data)."""
    p = G.shape[0]
    if not (np.all(np.isfinite(G)) and np.all(np.isfinite(Atb)) and np.isfinite(btb)):
        raise FitError("the Gram matrix of the design contains NaN or inf")
    scale = np.sqrt(np.maximum(np.diag(G), 0.0) / max(n, 1))
    scale = np.where(scale > 0, scale, 1.0)
    Gs = G / np.outer(scale, scale)
    lam, V = np.linalg.eigh(0.5 * (Gs + Gs.T))
    keep = lam > 1e-13 * max(lam.max(), 1e-300)
    s = np.sqrt(lam[keep])[::-1]
    vt = V[:, keep].T[::-1]
    ub = (vt @ (Atb / scale)) / s
    resid_outside = max(btb - float(ub @ ub), 0.0)
    variance = b_variance if b_variance is not None else btb / max(n, 1)
    return _bayes(s, vt, ub, resid_outside, n, p, scale, variance, alpha, beta, max_iter, tol)


def _bayes(s, vt, ub, resid_outside, n, p, scale, b_variance, alpha, beta, max_iter, tol) -> FitResult:
    """The evidence-maximising iteration and the posterior, given the spectrum of the scaled design: singular
    values ``s``, right singular vectors ``vt`` (rows), ``ub`` = U^T b and the residual outside the column
    space (MacKay's fixed point, Bishop PRML 3.5.2)."""
    s2 = s**2
    a = alpha if alpha is not None else 1e-6 * (s2.mean() if s2.size else 1.0)
    be = beta if beta is not None else 1.0 / max(b_variance, 1e-30)
    if a <= 0 or be <= 0:
        raise FitError(f"prior and noise precisions must be > 0, got alpha={a}, beta={be}")
    converged = alpha is not None and beta is not None
    it = 0
    for it in range(1, max_iter + 1):
        if converged:
            break
        d = be * s2 / (a + be * s2)               # shrinkage factor per direction
        m_rot = be * s * ub / (a + be * s2)       # posterior mean in the (scaled, rotated) basis
        gamma = float(d.sum())
        mean_norm2 = float(m_rot @ m_rot)
        resid2 = float(np.sum((ub - s * m_rot) ** 2)) + resid_outside
        new_a = gamma / max(mean_norm2, 1e-300) if alpha is None else a
        new_b = (n - gamma) / max(resid2, 1e-300) if beta is None else be
        if n - gamma <= 0:
            raise FitError(f"too few rows ({n}) for {p} coefficients to estimate the noise; add data or fix beta")
        done = abs(np.log(new_a / a)) < tol and abs(np.log(new_b / be)) < tol
        a, be = new_a, new_b
        if done:
            converged = True
    denom = a + be * s2
    m_rot = be * s * ub / denom
    coef_scaled = vt.T @ m_rot
    # directions the data do not touch (p > n, or unseen columns) keep the prior variance 1/a.
    cov_scaled = (vt.T / denom) @ vt
    if vt.shape[0] < p:
        null = np.eye(p) - vt.T @ vt
        cov_scaled = cov_scaled + null / a
    coef = coef_scaled / scale
    cov = cov_scaled / np.outer(scale, scale)
    gamma = float(np.sum(be * s2 / denom))
    resid2 = float(np.sum((ub - s * m_rot) ** 2)) + resid_outside
    log_evidence = 0.5 * (p * np.log(a) + n * np.log(be) - be * resid2 - a * float(m_rot @ m_rot)
                          - np.sum(np.log(denom)) - (p - len(s)) * np.log(a) - n * np.log(2 * np.pi))
    return FitResult(coef, cov, "bayes", noise_precision=float(be), prior_precision=float(a),
                     info={"gamma": gamma, "iterations": it, "converged": bool(converged),
                           "log_evidence": float(log_evidence), "alpha_fixed": alpha is not None,
                           "beta_fixed": beta is not None, "rows": int(n)})


class BayesianUpdate:
    """The Bayesian posterior updated in place as rows arrive (on-the-fly learning): new rows add a rank-k term
    to the sufficient statistics of the weighted system (A^T A, A^T b, b^T b, rows), so the precision
    alpha I + beta A^T A and the mean follow without the old rows; the prior and noise precisions stay as
    they are until :meth:`posterior` is asked to maximise the evidence again (every K labels, say). With the
    evidence maximised, the posterior is :func:`solve_bayes`'s on all rows at once, to rounding.
    """

    def __init__(self, n_columns: int, alpha: float | None = None, beta: float | None = None):
        self.G = np.zeros((n_columns, n_columns))
        self.Atb = np.zeros(n_columns)
        self.btb = 0.0
        self.b_sum = 0.0
        self.rows = 0
        self.alpha, self.beta = alpha, beta

    def add(self, A, b, weights) -> None:
        """Add rows (``A`` k x p, truths ``b``, row weights)."""
        Aw, bw = _weighted(A, b, weights)
        if Aw.shape[1] != self.G.shape[0]:
            raise FitError(f"rows of {Aw.shape[1]} columns added to a posterior of {self.G.shape[0]}")
        self.G += Aw.T @ Aw
        self.Atb += Aw.T @ bw
        self.btb += float(bw @ bw)
        self.b_sum += float(bw.sum())
        self.rows += Aw.shape[0]

    def reweight(self, A, b, old_weights, new_weights) -> None:
        """Rows already added with ``old_weights`` weigh ``new_weights`` from now on (their count unchanged):
        the statistics a batch of every row at its new weight gives. Added as rows weighing
        sqrt(new^2 - old^2), not as the new rows' sums minus the old's: where weights only grow (the crystal
        check's) nothing is subtracted from the Gram matrix, whose rounding the posterior amplifies."""
        A, b = np.asarray(A, dtype=float), np.asarray(b, dtype=float)
        old_w = np.asarray(old_weights, dtype=float)
        new_w = np.asarray(new_weights, dtype=float)
        d = new_w**2 - old_w**2
        up, down = np.sqrt(np.maximum(d, 0.0)), np.sqrt(np.maximum(-d, 0.0))
        Au, bu = A * up[:, None], b * up
        Ad, bd = A * down[:, None], b * down
        self.G += Au.T @ Au - Ad.T @ Ad
        self.Atb += Au.T @ bu - Ad.T @ bd
        self.btb += float(bu @ bu - bd @ bd)
        self.b_sum += float(b @ (new_w - old_w))

    def posterior(self, maximise_evidence: bool = False, max_iter: int = 500, tol: float = 1e-10) -> FitResult:
        """The posterior of every row added so far; ``maximise_evidence`` (or no precisions yet) re-optimises
        alpha and beta and keeps them for the updates that follow."""
        if self.rows == 0:
            raise FitError("no rows to fit")
        free = maximise_evidence or self.alpha is None or self.beta is None
        mean = self.b_sum / self.rows
        result = solve_bayes_gram(self.G, self.Atb, self.btb, self.rows,
                                  alpha=None if free else self.alpha, beta=None if free else self.beta,
                                  max_iter=max_iter, tol=tol, b_variance=max(self.btb / self.rows - mean**2, 0.0))
        self.alpha, self.beta = result.prior_precision, result.noise_precision
        return result


SOLVERS = {"svd": solve_svd, "ridge": solve_ridge, "bayes": solve_bayes}


def solve(A, b, weights, solver: str = "bayes", **options) -> FitResult:
    try:
        fn = SOLVERS[solver]
    except KeyError:
        raise FitError(f"unknown solver {solver!r}; choose one of {sorted(SOLVERS)}") from None
    return fn(A, b, weights, **options)
