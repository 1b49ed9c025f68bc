"""The crystal check's rules (lammps_al.train.crystal) against explicit formulas: the rank-k posterior update,
the factor search and when new cells are labelled."""

from __future__ import annotations

import numpy as np
import pytest

from lammps_al.train import crystal


def test_with_rows_is_the_inverse_of_the_updated_precision():
    rng = np.random.default_rng(3)
    p, k, noise = 6, 4, 2.5
    a = rng.normal(size=(10, p))
    precision = a.T @ a + np.eye(p)
    rows = rng.normal(size=(k, p))
    expected = np.linalg.inv(precision + noise * rows.T @ rows)
    assert np.allclose(crystal.with_rows(np.linalg.inv(precision), rows, noise), expected)
    assert np.array_equal(crystal.with_rows(np.eye(p), np.empty((0, p)), noise), np.eye(p))     # no rows


def _problem(sigma: float):
    """One coefficient, one property P = 1 x coefficient (value 1) of prior std ``sigma``; a cell's one stress
    row (kind 2) measures the coefficient at unit noise."""
    check = crystal.Check("elastic", None, 2, ("C11",))
    return check, {"C11": np.array([1.0])}, np.array([1.0]), np.array([[sigma ** 2]])


@pytest.mark.parametrize("sigma, tol, factor, met", [
    (0.1, 0.5, 1.0, True),              # known already at the default weight
    (10.0, 0.5, 10.0, True),            # 2 / sqrt(1 + f^2) <= 0.5 first at f = 10 (f = 3: 0.63)
    (10.0, 0.001, 100.0, False),        # no candidate reaches it: the last, and not met
])
def test_the_smallest_factor_whose_posterior_meets_the_tolerance(sigma, tol, factor, met):
    check, grads, beta, cov = _problem(sigma)
    new = (np.array([[1.0]]), np.array([2]))
    f, updated, ok = crystal.smallest_factor(check, crystal.FACTORS, 1.0, grads, beta, cov, 1.0, 1.0, tol,
                                             new=new)
    assert (f, ok) == (factor, met)
    assert updated[0, 0] == pytest.approx(1 / (1 / sigma ** 2 + f ** 2))


def test_old_rows_are_reweighted_by_what_their_weight_adds():
    check, grads, beta, _ = _problem(1.0)
    cov = np.array([[1 / (1 + 1.0)]])              # prior 1 and one old row already in at factor 1
    f, updated, ok = crystal.smallest_factor(check, crystal.FACTORS, 1.0, grads, beta, cov, 1.0, 1.0, 0.25,
                                             old=np.array([[1.0]]))
    # precision 1 + f^2 from the old row at factor f: 2 / sqrt(1 + f^2) <= 0.25 first at f = 10
    assert (f, ok) == (10.0, True) and updated[0, 0] == pytest.approx(1 / (1 + 100.0))


def test_new_cells_at_the_model_s_lattice_unless_labelled_close_by():
    assert crystal.new_cells_needed([], 4.05)
    assert not crystal.new_cells_needed([4.04], 4.05)                   # 0.25 % away: the same lattice
    assert crystal.new_cells_needed([4.00], 4.05)                       # 1.2 % away
    # where no factor makes the properties known with the cells 0.25 % away, new ones; not at 0.05 %
    assert crystal.new_cells_needed([4.04], 4.05, failed=True)
    assert not crystal.new_cells_needed([4.04, 4.048], 4.05, failed=True)
