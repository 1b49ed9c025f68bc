"""Solvers on synthetic linear problems with known answers (no LAMMPS needed)."""

from __future__ import annotations

import numpy as np
import pytest

from lammps_al.core.errors import FitError
from lammps_al.train.solvers import solve


def synthetic(n=400, p=8, noise=0.1, seed=0, scales=None):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, p)) * (scales if scales is not None else 1.0)
    coef = rng.normal(size=p)
    y = X @ coef + rng.normal(scale=noise, size=n)
    return X, y, coef


def test_svd_recovers_exact_coefficients_without_noise():
    X, _, coef = synthetic(noise=0.0)
    result = solve(X, X @ coef, np.ones(len(X)), "svd")
    np.testing.assert_allclose(result.coefficients, coef, rtol=1e-10, atol=1e-12)


def test_weights_scale_rows_like_fitsnap():
    """Rows with weight w enter as w*A, w*b: a heavily weighted row is fitted almost exactly."""
    X, y, _ = synthetic(n=50, p=3, noise=1.0)
    w = np.ones(len(y))
    w[0] = 1e4
    result = solve(X, y, w, "svd")
    assert abs(X[0] @ result.coefficients - y[0]) < 1e-3
    manual = np.linalg.lstsq(X * w[:, None], y * w, rcond=None)[0]
    np.testing.assert_allclose(result.coefficients, manual, rtol=1e-9)


def test_bayes_learns_the_noise_level():
    X, y, coef = synthetic(n=4000, p=6, noise=0.25, scales=np.array([1, 10, 0.1, 5, 1, 100.0]))
    result = solve(X, y, np.ones(len(y)), "bayes")
    assert result.info["converged"]
    assert 1 / np.sqrt(result.noise_precision) == pytest.approx(0.25, rel=0.05)
    np.testing.assert_allclose(result.coefficients, coef, atol=0.05)


def test_bayes_predictive_interval_covers_68_percent():
    """Honest covariance: the 1-sigma posterior predictive interval covers 68 % +- 5 % of held-out points."""
    coverages = []
    for seed in range(5):
        rng = np.random.default_rng(100 + seed)
        X, y, coef = synthetic(n=150, p=20, noise=0.3, seed=seed)
        result = solve(X, y, np.ones(len(y)), "bayes")
        X_new = rng.normal(size=(4000, 20))
        y_new = X_new @ coef + rng.normal(scale=0.3, size=4000)
        std = result.predictive_std(X_new, include_noise=True)
        coverages.append(np.mean(np.abs(X_new @ result.coefficients - y_new) <= std))
    assert abs(np.mean(coverages) - 0.6827) <= 0.05, coverages


def test_bayes_parameter_uncertainty_is_calibrated():
    """Without the noise term: the error of the mean prediction is N(0, x^T S x) (z-scores have unit spread)."""
    z = []
    for seed in range(40):
        X, y, coef = synthetic(n=60, p=10, noise=0.5, seed=seed)
        result = solve(X, y, np.ones(len(y)), "bayes")
        x_new = np.random.default_rng(seed + 1000).normal(size=(50, 10))
        err = x_new @ result.coefficients - x_new @ coef
        z.append(err / result.predictive_std(x_new))
    assert np.std(np.concatenate(z)) == pytest.approx(1.0, abs=0.15)


def test_fixed_precisions_are_used_as_given():
    X, y, _ = synthetic()
    result = solve(X, y, np.ones(len(y)), "bayes", alpha=2.0, beta=3.0)
    assert result.noise_precision == 3.0 and result.prior_precision == 2.0


def test_all_zero_weights_are_refused():
    X, y, _ = synthetic()
    with pytest.raises(FitError, match="all row weights are zero"):
        solve(X, y, np.zeros(len(y)), "bayes")


def test_rank_deficient_system_is_refused_by_plain_least_squares():
    X, y, _ = synthetic(p=4)
    X = np.hstack([X, X[:, :1] * 2.0])  # a column that repeats another
    with pytest.raises(FitError, match="rank-deficient.*rank 4 of 5"):
        solve(X, y, np.ones(len(y)), "svd")
    result = solve(X, y, np.ones(len(y)), "bayes")  # regularised: fine
    assert np.all(np.isfinite(result.coefficients))


def test_unknown_solver_names_the_choices():
    with pytest.raises(FitError, match="choose one of"):
        solve(np.eye(2), np.ones(2), np.ones(2), "magic")


def test_selection_benchmark_counts_calls_and_cost_to_the_target_over_seeds():
    from lammps_al.bench.selection import calls_to_target, first_at_target, summarise

    loop = [(82, 0.049), (84, 0.047)]
    assert calls_to_target(loop, 0.05) == 82 and calls_to_target(loop, 0.048) == 84
    assert calls_to_target(loop, 0.04) is None
    points = [{"labels": 10, "cost_natoms3": 500.0, "force_rmse": 0.09}, {"labels": 18, "cost_natoms3": 9e4,
                                                                         "force_rmse": 0.048}]
    assert first_at_target(points, 0.05)["cost_natoms3"] == 9e4 and first_at_target(points, 0.01) is None

    def seed(u, r):
        return {"arms": {"uncertainty": {"calls_to_target": u[0], "cost_to_target": u[1]},
                         "random": {"calls_to_target": r[0], "cost_to_target": r[1]}}}

    out = {"seeds": [seed((20, 1e5), (40, 4e5)), seed((24, 2e5), (44, 5e5)), seed((22, 1.5e5), (42, 6e5))]}
    s = summarise(out)
    assert s["uncertainty"]["calls"][0] == pytest.approx(22) and s["random"]["calls"][0] == pytest.approx(42)
    assert s["ratio_calls"] == pytest.approx(22 / 42) and s["ratio_cost"] == pytest.approx(1.5e5 / 5e5)
    out["seeds"][0]["arms"]["random"]["calls_to_target"] = None
    assert summarise(out)["ratio_calls"] is None and summarise(out)["random"]["reached"] == 2


def test_selection_benchmark_ladder_reads_looser_targets_off_the_same_curves():
    from lammps_al.bench.selection import ladder, selection_lines, summarise

    def curve(*pts):
        return [{"labels": n, "cost_natoms3": c, "force_rmse": f} for n, c, f in pts]

    seeds = [{"seed": 0, "arms": {"uncertainty": {"curve": curve((10, 1e3, 0.2), (20, 1e5, 0.06), (25, 2e5, 0.052)),
                                                  "calls_to_target": None, "cost_to_target": None},
                                  "random": {"curve": curve((10, 1e3, 0.2), (18, 4e5, 0.065), (26, 9e5, 0.049)),
                                             "calls_to_target": 26, "cost_to_target": 9e5}}}]
    out = {"target_force_rmse_eV_A": 0.05, "max_select": 8, "iterations": 3, "seeds": seeds}
    rows = {round(r["target"], 3): r for r in ladder(out)}
    assert rows[0.07]["uncertainty"]["calls"][0] == 20 and rows[0.07]["random"]["calls"][0] == 18
    assert rows[0.07]["ratio_cost"] == pytest.approx(1e5 / 4e5)
    assert rows[0.055]["uncertainty"]["calls"][0] == 25 and rows[0.055]["random"]["calls"][0] == 26
    assert rows[0.05]["ratio_calls"] is None and rows[0.05]["random"]["reached"] == 1
    out["summary"] = summarise(out)
    text = "\n".join(selection_lines(out))
    assert "0.070 eV/A: uncertainty 1/1 20.0 calls 1e+05; random 1/1 18.0 calls 4e+05; ratios 1.11 calls, 0.25 cost" \
        in text and "0.050 eV/A: uncertainty 0/1; random 1/1 26.0 calls 9e+05; ratios n/a" in text

def test_ridge_equals_its_closed_form():
    """Ridge penalises column-scaled coefficients: c = (A^T A + alpha diag(s^2))^-1 A^T b, s = column RMS."""
    X, y, _ = synthetic(n=30, p=5, noise=0.5, scales=np.array([1.0, 10.0, 0.1, 3.0, 1.0]))
    w = np.linspace(0.5, 2.0, len(y))
    A, b = X * w[:, None], y * w
    s = np.sqrt(np.mean(A**2, axis=0))
    for alpha in (1e-3, 0.1, 10.0):
        expected = np.linalg.solve(A.T @ A + alpha * np.diag(s**2), A.T @ b)
        result = solve(X, y, w, "ridge", alpha=alpha)
        np.testing.assert_allclose(result.coefficients, expected, rtol=1e-9)


def test_bayes_posterior_equals_its_closed_form_also_with_more_coefficients_than_rows():
    """Fixed alpha, beta: mean = beta Sigma A^T b and Sigma = (alpha I + beta X^T X)^-1 in column-scaled units,
    the same closed form whether there are more rows than coefficients or fewer (p > n: the directions the
    data do not touch keep the prior variance 1/alpha)."""
    for n, p in ((40, 6), (5, 12)):
        X, y, _ = synthetic(n=n, p=p, noise=0.2, seed=n)
        alpha, beta = 0.7, 3.0
        s = np.sqrt(np.mean(X**2, axis=0))
        Xs = X / s
        cov_scaled = np.linalg.inv(alpha * np.eye(p) + beta * Xs.T @ Xs)
        mean_scaled = beta * cov_scaled @ Xs.T @ y
        result = solve(X, y, np.ones(n), "bayes", alpha=alpha, beta=beta)
        np.testing.assert_allclose(result.coefficients, mean_scaled / s, rtol=1e-8, atol=1e-12)
        np.testing.assert_allclose(result.covariance, cov_scaled / np.outer(s, s), rtol=1e-8, atol=1e-14)


def test_bayes_evidence_is_the_log_marginal_likelihood():
    """log p(b | alpha, beta) of the Gaussian model b ~ N(0, X X^T / alpha + I / beta), computed directly."""
    X, y, _ = synthetic(n=25, p=4, noise=0.3, seed=3)
    alpha, beta = 0.5, 8.0
    s = np.sqrt(np.mean(X**2, axis=0))
    Xs = X / s
    C = Xs @ Xs.T / alpha + np.eye(len(y)) / beta
    sign, logdet = np.linalg.slogdet(C)
    expected = -0.5 * (logdet + y @ np.linalg.solve(C, y) + len(y) * np.log(2 * np.pi))
    result = solve(X, y, np.ones(len(y)), "bayes", alpha=alpha, beta=beta)
    assert result.info["log_evidence"] == pytest.approx(expected, rel=1e-9)


def test_the_gram_route_gives_the_svd_route_s_posterior_and_evidence():
    """Model selection slices Gram matrices: the same coefficients, covariance, alpha, beta and evidence as the
    SVD of the design, for an over-determined system (precisions from the evidence) and an under-determined one
    (precisions given: with fewer rows than coefficients the data can be interpolated and the noise precision
    that maximises the evidence runs off)."""
    from lammps_al.train.solvers import gram, solve_bayes_gram

    for n, p, fixed in ((300, 12, {}), (8, 20, {"alpha": 0.3, "beta": 5.0})):
        X, y, _ = synthetic(n=n, p=p, noise=0.3, seed=p, scales=np.logspace(-1, 2, p))
        w = np.linspace(0.5, 1.5, n)
        svd = solve(X, y, w, "bayes", **fixed)
        G, Atb, btb, rows = gram(X, y, w)
        via_gram = solve_bayes_gram(G, Atb, btb, rows, b_variance=float(np.var(y * w)), **fixed)
        assert via_gram.prior_precision == pytest.approx(svd.prior_precision, rel=1e-6)
        assert via_gram.noise_precision == pytest.approx(svd.noise_precision, rel=1e-6)
        assert via_gram.info["log_evidence"] == pytest.approx(svd.info["log_evidence"], rel=1e-8, abs=1e-6)
        np.testing.assert_allclose(via_gram.coefficients, svd.coefficients, rtol=1e-6, atol=1e-9)
        np.testing.assert_allclose(via_gram.covariance, svd.covariance, rtol=1e-5, atol=1e-10)


def test_the_posterior_updated_row_by_row_is_the_batch_posterior():
    """Rows arriving in four blocks: with the precisions fixed, each update is the batch posterior of the rows
    so far at those precisions; with the evidence maximised again, the batch fit of all rows (its own
    precisions), to rounding."""
    from lammps_al.train.solvers import BayesianUpdate, solve_bayes

    rng = np.random.default_rng(3)
    n, p = 240, 12
    X = rng.normal(size=(n, p)) * rng.uniform(0.1, 10, size=p)
    y = X @ rng.normal(size=p) + rng.normal(scale=0.3, size=n)
    w = rng.uniform(0.5, 2.0, size=n)
    first = solve_bayes(X[:60], y[:60], w[:60])
    update = BayesianUpdate(p)
    update.add(X[:60], y[:60], w[:60])
    r = update.posterior()
    np.testing.assert_allclose(r.coefficients, first.coefficients, rtol=1e-6, atol=1e-9)
    alpha, beta = r.prior_precision, r.noise_precision
    for end in (120, 180, 240):
        update.add(X[end - 60:end], y[end - 60:end], w[end - 60:end])
        fixed = update.posterior()
        assert (fixed.prior_precision, fixed.noise_precision) == (alpha, beta)
        batch = solve_bayes(X[:end], y[:end], w[:end], alpha=alpha, beta=beta)
        np.testing.assert_allclose(fixed.coefficients, batch.coefficients, rtol=1e-6, atol=1e-9)
        np.testing.assert_allclose(fixed.covariance, batch.covariance, rtol=1e-5, atol=1e-12)
    again = update.posterior(maximise_evidence=True)
    batch = solve_bayes(X, y, w)
    assert again.prior_precision == pytest.approx(batch.prior_precision, rel=1e-6)
    assert again.noise_precision == pytest.approx(batch.noise_precision, rel=1e-6)
    np.testing.assert_allclose(again.coefficients, batch.coefficients, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(again.covariance, batch.covariance, rtol=1e-5, atol=1e-12)
    with pytest.raises(FitError, match="rows of 3 columns added to a posterior of 12"):
        update.add(X[:2, :3], y[:2], w[:2])


def test_rows_reweighted_in_place_give_the_batch_posterior_at_their_new_weights():
    """The crystal check raising a group's weight: rows already in the posterior re-weighted in place (their
    count unchanged) are the batch fit of every row at its new weight, evidence and all."""
    from lammps_al.train.solvers import BayesianUpdate, solve_bayes

    rng = np.random.default_rng(5)
    n, p = 150, 10
    X = rng.normal(size=(n, p)) * rng.uniform(0.1, 10, size=p)
    y = X @ rng.normal(size=p) + rng.normal(scale=0.3, size=n)
    w = rng.uniform(0.5, 2.0, size=n)
    update = BayesianUpdate(p)
    update.add(X, y, w)
    raised = w.copy()
    raised[:20] *= 30.0                       # one group's rows, 30 x their weight
    update.reweight(X[:20], y[:20], w[:20], raised[:20])
    assert update.rows == n
    again = update.posterior(maximise_evidence=True)
    batch = solve_bayes(X, y, raised)
    assert again.prior_precision == pytest.approx(batch.prior_precision, rel=1e-6)
    assert again.noise_precision == pytest.approx(batch.noise_precision, rel=1e-6)
    np.testing.assert_allclose(again.coefficients, batch.coefficients, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(again.covariance, batch.covariance, rtol=1e-5, atol=1e-12)
