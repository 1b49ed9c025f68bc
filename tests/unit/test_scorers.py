"""The built-in scorers against independent answers (no LAMMPS needed): bayes against the explicit posterior
predictive standard deviation of a Bayesian fit, committee against an explicit sample standard deviation,
grade <= 1 on the training atoms and > 1 away from them, MaxVol against volumes it must find."""

from __future__ import annotations

import numpy as np
import pytest

from lammps_al.core.descriptor import SNAPSettings
from lammps_al.core.errors import ScorerError
from lammps_al.core.potential import COEFFICIENTS, Potential
from lammps_al.models.registry import FitProducts, default_scorer, make_scorer, model_for, produce_scorer_data
from lammps_al.models.scorers import grade_projector, maxvol
from lammps_al.train.solvers import solve

SETTINGS = SNAPSettings(elements=("Al",), twojmax=2, rcutfac=4.0, radelem=(0.5,), wj=(1.0,))   # d = 5


def fitted(seed=0, n_atoms=200, noise=0.01):
    """Linear SNAP fitted by the Bayesian solver to per-atom energies of synthetic descriptors."""
    rng = np.random.default_rng(seed)
    B = rng.normal(size=(n_atoms, SETTINGS.n_descriptors))
    phi = np.hstack([np.ones((n_atoms, 1)), B])
    theta = rng.normal(size=phi.shape[1])
    energies = phi @ theta + rng.normal(scale=noise, size=n_atoms)
    result = solve(phi, energies, np.ones(n_atoms), "bayes")
    potential = Potential(elements=("Al",), model="linear", descriptor=SETTINGS,
                          arrays={COEFFICIENTS: result.coefficients[None, :]})
    model = model_for(potential)
    products = FitProducts(potential, model, result.covariance, [B], seed=seed)
    potential.arrays.update(produce_scorer_data(products))
    return potential, model, result, B


def test_bayes_sigma_is_the_posterior_predictive_standard_deviation():
    potential, model, result, _ = fitted()
    new = np.random.default_rng(5).normal(size=(30, SETTINGS.n_descriptors)) * 2.0
    phi = np.hstack([np.ones((30, 1)), new])
    sigma = make_scorer(potential, model, "bayes")(np.zeros(30, int), new)
    np.testing.assert_allclose(sigma, result.predictive_std(phi), rtol=1e-10)


def test_bayes_sigma_is_the_spread_of_predictions_of_posterior_draws():
    """Monte Carlo: predictions of coefficient vectors drawn from the posterior spread by sigma (5000 draws)."""
    potential, model, result, _ = fitted(seed=1)
    new = np.random.default_rng(6).normal(size=(10, SETTINGS.n_descriptors))
    phi = np.hstack([np.ones((10, 1)), new])
    draws = np.random.default_rng(7).multivariate_normal(result.coefficients, result.covariance, size=5000)
    sigma = make_scorer(potential, model, "bayes")(np.zeros(10, int), new)
    np.testing.assert_allclose(sigma, (draws @ phi.T).std(axis=0, ddof=1), rtol=0.05)


def test_committee_sigma_is_the_sample_standard_deviation_of_its_members():
    potential, model, _, _ = fitted(seed=2)
    members = potential.arrays["committee.samples"]
    new = np.random.default_rng(8).normal(size=(12, SETTINGS.n_descriptors))
    sigma = make_scorer(potential, model, "committee")(np.zeros(12, int), new)
    for i, b in enumerate(new):
        predictions = [m[0] + m[1:] @ b for m in members]
        mean = sum(predictions) / len(predictions)
        explicit = (sum((p - mean) ** 2 for p in predictions) / (len(predictions) - 1)) ** 0.5
        assert sigma[i] == pytest.approx(explicit, rel=1e-10)


def test_grade_is_at_most_one_on_the_training_atoms_and_above_one_away_from_them():
    potential, model, _, B = fitted(seed=3)
    grade = make_scorer(potential, model, "grade")
    inside = grade(np.zeros(len(B), int), B)
    assert inside.max() <= 1.01 + 1e-9          # MaxVol's tolerance
    far = B[:20] * 5.0                            # well outside the training cloud
    assert np.all(grade(np.zeros(20, int), far) > 1.0)


def test_maxvol_finds_the_rows_of_largest_volume():
    X = np.array([[1.0, 0.0], [0.0, 1.0], [0.5, 0.5], [0.3, -0.2]])
    assert sorted(maxvol(X).tolist()) == [0, 1]                    # every other row is inside their span, |c| <= 1
    X = np.array([[1.0, 0.0], [0.0, 1.0], [2.0, 0.1], [0.1, 3.0], [0.5, 0.5]])
    assert sorted(maxvol(X).tolist()) == [2, 3]                    # |det| 5.99, the largest of any pair
    rows = maxvol(np.random.default_rng(0).normal(size=(50, 4)))
    X = np.random.default_rng(0).normal(size=(50, 4))
    coefficients = np.linalg.solve(X[rows].T, X.T).T
    assert np.abs(coefficients).max() <= 1.01 + 1e-12


def test_grade_projector_of_a_rank_deficient_set_ignores_the_missing_directions():
    rng = np.random.default_rng(4)
    base = rng.normal(size=(40, 2))
    features = np.column_stack([base, base[:, 0] + base[:, 1]])   # rank 2 in 3 columns
    G = grade_projector(features)
    assert G.shape == (3, 2) and np.max(np.abs(features @ G)) <= 1.01 + 1e-9


def test_a_potential_without_the_data_a_scorer_needs_says_how_to_get_it():
    potential, model, _, _ = fitted()
    del potential.arrays["committee.samples"]
    with pytest.raises(ScorerError, match=r"scorer 'committee' needs \['committee.samples'\].*solver = 'bayes'"):
        make_scorer(potential, model, "committee")
    bare = Potential(elements=("Al",), model="linear", descriptor=SETTINGS, arrays={COEFFICIENTS: potential.coefficients})
    assert default_scorer(bare) == "none" and default_scorer(potential) == "bayes"
    with pytest.raises(ScorerError, match="unknown scorer 'sharp'"):
        make_scorer(potential, model, "sharp")


def test_bayes_force_sigma_is_the_length_of_the_force_standard_deviation():
    """sqrt(sum_a J_a Sigma J_a^T / 3), J_a = dF_a/dtheta: the RMS posterior spread of the atom's force
    components, also by Monte Carlo over posterior draws."""
    potential, model, result, _ = fitted(seed=9)
    rng = np.random.default_rng(10)
    J = rng.normal(size=(6, 3, SETTINGS.n_descriptors + 1))
    J[:, :, 0] = 0.0                                   # no force on the constant
    sigma = make_scorer(potential, model, "bayes_force")(np.zeros(6, int), J)
    cov = result.covariance
    explicit = [np.sqrt(sum(J[i, a] @ cov @ J[i, a] for a in range(3)) / 3) for i in range(6)]
    np.testing.assert_allclose(sigma, explicit, rtol=1e-12)
    draws = rng.multivariate_normal(result.coefficients, cov, size=20000)
    forces = np.einsum("iap,kp->kia", J, draws)         # (draws, atoms, 3)
    spread = np.sqrt(forces.var(axis=0, ddof=1).mean(axis=1))
    np.testing.assert_allclose(sigma, spread, rtol=0.03)


def test_a_calibrated_scorer_is_the_stored_power_of_its_raw_value():
    from lammps_al.models.registry import calibration_key

    potential, model, _, B = fitted(seed=11)
    raw = make_scorer(potential, model, "bayes")(np.zeros(len(B), int), B)
    potential.arrays[calibration_key("bayes")] = np.array(2.5)
    calibrated = make_scorer(potential, model, "bayes")
    assert calibrated.unit == "eV/A"
    np.testing.assert_allclose(calibrated(np.zeros(len(B), int), B), 2.5 * raw, rtol=1e-14)
    potential.arrays[calibration_key("bayes")] = np.array([2.5, 0.5])      # scale and exponent
    np.testing.assert_allclose(make_scorer(potential, model, "bayes")(np.zeros(len(B), int), B), 2.5 * np.sqrt(raw),
                               rtol=1e-14)
    np.testing.assert_allclose(make_scorer(potential, model, "bayes", calibrated=False)(np.zeros(len(B), int), B), raw)


def test_the_calibration_exponent_is_the_slope_of_log_error_against_log_score():
    from lammps_al.train.calibration import power_exponent

    rng = np.random.default_rng(12)
    score = rng.uniform(0.01, 1.0, 500)
    error = 0.3 * score**0.5 * np.exp(rng.normal(scale=0.05, size=500))
    assert power_exponent(score, error) == pytest.approx(0.5, abs=0.02)
    assert power_exponent(score, 2 * score) == pytest.approx(1.0)
    assert power_exponent(score, score**5) == 2.0                      # bounded
    assert power_exponent(score[:5], error[:5]) == 1.0                 # too few atoms: a plain scale


def test_the_calibration_scale_is_the_standard_deviation_of_normal_force_errors_and_ignores_a_few_far_atoms():
    """Atoms whose three force-error components are normal with standard deviation s * score: the log-space
    scale recovers s, so RMS(error) / RMS(predicted) is 1; a few left-out atoms 20x worse than predicted (one
    configuration far from the rest) move it by a few percent, where matching the RMS would more than double it."""
    from lammps_al.train.calibration import log_scale

    rng = np.random.default_rng(3)
    score = rng.uniform(0.01, 0.2, 20000)
    error = np.linalg.norm(rng.normal(size=(score.size, 3)) * (2.0 * score)[:, None], axis=1) / np.sqrt(3)
    s = log_scale(score, error, 1.0)
    assert s == pytest.approx(2.0, rel=0.02)
    assert np.sqrt(np.mean(error**2) / np.mean((s * score) ** 2)) == pytest.approx(1.0, abs=0.03)
    far = error.copy()
    far[:200] *= 20.0
    assert log_scale(score, far, 1.0) == pytest.approx(2.0, rel=0.06)
    assert np.sqrt(np.mean(far**2) / np.mean(score**2)) > 2 * 2.0      # the RMS match: more than doubled
