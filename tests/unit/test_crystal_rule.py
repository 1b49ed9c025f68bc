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


def test_oracle_constants_from_strained_cells_against_a_linear_elastic_crystal():
    """Stresses of the four strained cells set by Hooke's law with chosen constants are read back as those
    constants; constants that fail Born's conditions are named."""
    from lammps_al.core.units import EV_PER_A3_TO_GPA
    from lammps_al.train.crystal import born_failures, oracle_constants, strained_cells

    c11, c12, c44 = 107.0, 61.0, 28.0
    stiffness = np.zeros((6, 6))
    stiffness[:3, :3] = c12
    stiffness[np.arange(3), np.arange(3)] = c11
    stiffness[3, 3] = stiffness[4, 4] = stiffness[5, 5] = c44
    cells = strained_cells("Al", "fcc", 4.04)
    for atoms in cells:
        eps = atoms.cell.array / 4.04 - np.eye(3)
        voigt = np.array([eps[0, 0], eps[1, 1], eps[2, 2], 2 * eps[1, 2], 2 * eps[0, 2], 2 * eps[0, 1]])
        atoms.info["REF_stress"] = stiffness @ voigt / EV_PER_A3_TO_GPA
    got = oracle_constants(cells)
    assert got == pytest.approx({"C11": c11, "C12": c12, "C44": c44}, rel=1e-9)
    assert born_failures(got) == {}
    assert oracle_constants(cells[:3]) is None                          # a cell missing
    assert set(born_failures({"C11": 31.0, "C12": 96.0, "C44": 24.0})) == {"C11 - C12"}
    assert set(born_failures({"C11": 50.0, "C12": -30.0, "C44": -1.0})) == {"C11 + 2 C12", "C44"}


def test_the_loop_does_not_weigh_up_stresses_of_an_oracle_whose_crystal_fails_born():
    """The loop's check reads the oracle's constants at the stored lattice nearest the model's, and warns
    (the stress weight stays x1) only when they fail Born's conditions."""
    from lammps_al.core.units import EV_PER_A3_TO_GPA
    from lammps_al.train.crystal import oracle_check, strained_cells

    def labelled(a0, c11, c12, c44):
        cells = strained_cells("Al", "fcc", a0)
        for atoms in cells:
            eps = atoms.cell.array / a0 - np.eye(3)
            atoms.info["REF_stress"] = np.array([c11 * eps[0, 0] + c12 * (eps[1, 1] + eps[2, 2]),
                                                 c12 * (eps[0, 0] + eps[2, 2]) + c11 * eps[1, 1],
                                                 c12 * (eps[0, 0] + eps[1, 1]) + c11 * eps[2, 2],
                                                 2 * c44 * eps[1, 2], 0.0, 0.0]) / EV_PER_A3_TO_GPA
        return [(a0, atoms) for atoms in cells]

    stored = labelled(4.00, 107.0, 61.0, 28.0) + labelled(4.05, 31.0, 96.0, 24.0)
    constants, warning = oracle_check(stored, 4.04)          # 4.05 is nearer: the unconverged oracle's
    assert constants == pytest.approx({"C11": 31.0, "C12": 96.0, "C44": 24.0})
    assert "not a stable cubic crystal's (C11 - C12 = -65 <= 0)" in warning and "stays x1" in warning
    constants, warning = oracle_check(stored, 4.01)
    assert constants == pytest.approx({"C11": 107.0, "C12": 61.0, "C44": 28.0}) and warning == ""
    assert oracle_check([], 4.0) == ({}, "")
