"""Pieces of discovery from a minimal start that need no LAMMPS: the minimal starting set, the candidate
models and their columns, expressions in exploration variables, the melting-point rule."""

from __future__ import annotations

import numpy as np
import pytest

from lammps_al.core.errors import ConfigError
from lammps_al.loop.explore import evaluate, lammps_data
from lammps_al.train.fitters import Candidate, column_index, default_candidates, linear_subset
from lammps_al.train.lammps_calc import melting_rule
from lammps_al.train.structures import minimal_set


@pytest.mark.parametrize("element", ["Al", "Cu", "Ta", "Mg"])
def test_the_minimal_start_is_at_most_ten_small_crystal_cells(element):
    cells = minimal_set(element, seed=3)
    assert len(cells) <= 10 and max(len(a) for a in cells) <= 8
    assert {a.info["kind"] for a in cells} >= {"fcc", "bcc", "hcp"}
    assert all(set(a.get_chemical_symbols()) == {element} for a in cells)
    volumes = [a.get_volume() / len(a) for a in cells]
    assert max(volumes) / min(volumes) < 1.25             # around one atomic volume, no vacuum (no surfaces)
    again = minimal_set(element, seed=3)
    assert all(np.array_equal(a.positions, b.positions) for a, b in zip(cells, again))


def test_candidates_parse_and_default_to_linear_and_quadratic_up_to_the_descriptor_size():
    assert Candidate.parse("quadratic:6") == Candidate("quadratic", 6)
    with pytest.raises(ConfigError, match="'cubic:4' is not a candidate model"):
        Candidate.parse("cubic:4")
    names = [c.name for c in default_candidates(7)]
    assert names == ["linear:2", "linear:4", "linear:6", "linear:7", "quadratic:2", "quadratic:4", "quadratic:6",
                     "quadratic:7"]


def test_a_smaller_model_s_columns_are_its_components_and_their_products():
    """2J=2 has components (0,0,0), (1,0,1), (1,1,0), (1,1,2), (2,0,2) ...: their positions among 2J=4's, and
    the quadratic columns of those pairs, in compute snap's row-major upper-triangle order."""
    from lammps_al.core.descriptor import SNAPSettings

    assert linear_subset(4, 4).tolist() == list(range(14))
    small = linear_subset(4, 2)
    assert len(small) == 5 and small.tolist() == sorted(small.tolist())
    big = SNAPSettings(elements=("Al",), twojmax=4, rcutfac=4.0, radelem=(0.5,), wj=(1.0,), quadraticflag=1)
    cols = column_index(big, Candidate("quadratic", 2))
    assert len(cols) == 1 + 5 + 15 and cols[0] == 0 and list(cols[1:6]) == list(1 + small)
    d = 14
    pairs = [(i, j) for i in range(d) for j in range(i, d)]
    expected = [1 + d + pairs.index((small[a], small[b])) for a in range(5) for b in range(a, 5)]
    assert list(cols[6:]) == expected
    two = SNAPSettings(elements=("Al", "Cu"), twojmax=4, rcutfac=4.0, radelem=(0.5, 0.5), wj=(1.0, 0.9))
    cols2 = column_index(two, Candidate("linear", 2))
    assert list(cols2[6:]) == [15 + c for c in cols2[:6]]          # the second element's block, same pattern


@pytest.mark.parametrize("text, value", [("0.3*tm", 300.0), ("tm + 100", 1100.0), ("1.5 * tm - a0", 1496.0),
                                         ("-0.03*bulk*1e4", -21000.0), (450, 450), ("fcc", "fcc")])
def test_exploration_variables_may_be_expressions_in_what_the_model_says(text, value):
    assert evaluate(text, {"tm": 1000.0, "a0": 4.0, "bulk": 70.0}, "x") == pytest.approx(value) if not isinstance(
        value, str) else evaluate(text, {"tm": 1000.0}, "x") == value


@pytest.mark.parametrize("text", ["__import__('os').system('true')*tm", "tm.real", "tm if tm else 0", "tm / 0"])
def test_anything_but_arithmetic_is_refused(text):
    with pytest.raises(ConfigError, match="is not an arithmetic expression"):
        evaluate(text, {"tm": 1000.0}, "[[explore]] x: temperature")


def test_the_melting_rule_lands_near_the_melting_points_of_metals():
    """Tm ~ 0.011 B V / k_B with experimental bulk moduli (GPa) and atomic volumes (A^3): within 20 %."""
    for B, V, tm in ((76, 16.6, 933), (140, 11.8, 1358), (186, 10.9, 1728), (310, 15.85, 3695), (100, 17.1, 1235)):
        assert melting_rule(B, V) == pytest.approx(tm, rel=0.2)


def test_a_halting_configuration_becomes_a_lammps_data_file_with_velocities():
    from ase.build import bulk

    atoms = bulk("Al", "fcc", a=4.05, cubic=True)
    atoms.arrays["id"] = np.array([4, 1, 3, 2])
    atoms.arrays["vel_A_per_ps"] = np.arange(12.0).reshape(4, 3)
    text = lammps_data(atoms)
    assert "4 atoms" in text and "1 atom types" in text and "0.0000000000 0.0000000000 0.0000000000 xy xz yz" in text
    velocities = text.split("Velocities")[1].split()
    assert velocities[:4] == ["4", "0", "1", "2"]
