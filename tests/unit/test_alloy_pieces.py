"""The pieces of a binary that need no LAMMPS: the minimal start, the C16 cell, data files with two types, the
oracle's element checks."""

import numpy as np
import pytest
from ase.build import bulk

from lammps_al.core.errors import ConfigError, LammpsAlError
from lammps_al.train.structures import binary_minimal_set, c16_cell, starting_set


def test_the_binary_minimal_start_is_small_cells_of_both_elements_and_ordered_compounds():
    cells = starting_set(("Al", "Cu"), seed=3, size="minimal")
    assert len(cells) == 17
    small = [a for a in cells if not a.info["kind"].startswith("dilute")]
    assert len(small) == 15 and max(len(a) for a in small) <= 8
    kinds = {a.info["kind"] for a in cells}
    assert {"fcc-Al", "fcc-Cu", "bcc-Al", "hcp-Al", "L12-Al3Cu", "L12-AlCu3", "L10-AlCu", "B2-AlCu", "C16-Al2Cu",
            "solute-Cu-in-Al", "dilute-Cu-in-Al", "dilute-Al-in-Cu", "fcc-Al-perfect", "fcc-Cu-perfect"} == kinds
    # the dilute limits: one atom of the other element in 32 sites of each element's fcc, unrattled, beside
    # the element's perfect fcc cell at the same lattice constant
    for kind, host, other in (("dilute-Cu-in-Al", "Al", "Cu"), ("dilute-Al-in-Cu", "Cu", "Al")):
        (dilute,) = [a for a in cells if a.info["kind"] == kind]
        (perfect,) = [a for a in cells if a.info["kind"] == f"fcc-{host}-perfect"]
        symbols = dilute.get_chemical_symbols()
        assert len(dilute) == 32 and symbols.count(other) == 1 and symbols.count(host) == 31
        np.testing.assert_allclose(dilute.cell.array, 2 * perfect.cell.array)
        np.testing.assert_allclose(dilute.get_scaled_positions()[:4] * 2, perfect.get_scaled_positions(), atol=1e-12)
    for a in cells:
        d = a.get_all_distances(mic=True)
        assert d[d > 0].min() > 2.0, a.info["kind"]          # no overlapping atoms after the rattle
        assert set(a.get_chemical_symbols()) <= {"Al", "Cu"}
    c16 = [a for a in cells if a.info["kind"] == "C16-Al2Cu"]
    assert all(a.get_chemical_symbols().count("Al") == 4 for a in c16)
    # seeded
    again = binary_minimal_set(("Al", "Cu"), seed=3)
    assert all(np.array_equal(a.positions, b.positions) for a, b in zip(cells, again))


def test_the_c16_cells_are_theta_al2cu():
    """Primitive (6 atoms) and conventional (12) cells hold the same structure: same volume per atom, Al2Cu,
    nearest Al-Cu distance 2.59 A at the measured lattice (Meetsma et al. 1989: 2.588 A)."""
    prim = c16_cell("Al", "Cu", 6.067, 4.877)
    conv = c16_cell("Al", "Cu", 6.067, 4.877, conventional_cell=True)
    assert len(prim) == 6 and len(conv) == 12
    assert prim.get_volume() / 6 == pytest.approx(conv.get_volume() / 12)
    for cell in (prim, conv):
        s = np.array(cell.get_chemical_symbols())
        d = cell.get_all_distances(mic=True)
        assert d[np.ix_(s == "Cu", s == "Al")].min() == pytest.approx(2.588, abs=0.01)
        assert (s == "Al").sum() == 2 * (s == "Cu").sum()


def test_a_binary_starts_only_from_the_minimal_set():
    with pytest.raises(ConfigError, match="binary.*minimal"):
        starting_set(("Al", "Cu"), size="standard")
    with pytest.raises(ConfigError, match="one or two elements"):
        starting_set(("Al", "Cu", "Mg"), size="minimal")


def test_a_halting_configuration_of_a_binary_keeps_its_types():
    from lammps_al.core.errors import LoopError
    from lammps_al.loop.explore import lammps_data

    atoms = bulk("Al", "fcc", a=4.05, cubic=True)
    atoms.symbols[2] = "Cu"
    text = lammps_data(atoms, ["Al", "Cu"])
    assert "2 atom types" in text
    rows = text.split("Atoms # atomic")[1].split("Velocities")[0].split("\n")
    assert [r.split()[1] for r in rows if r.strip()] == ["1", "1", "2", "1"]
    pure = bulk("Al", "fcc", a=4.05, cubic=True)
    assert "2 atom types" in lammps_data(pure, ["Al", "Cu"])     # a pure cell of a binary potential: still 2
    with pytest.raises(LoopError, match="Cu.*lack"):
        lammps_data(atoms, ["Al"])


def test_an_eam_oracle_must_have_every_element(tmp_path):
    from lammps_al.train.oracles import OracleSpec, check_elements, eam_file_elements

    setfl = tmp_path / "x.eam.alloy"
    setfl.write_text("c1\nc2\nc3\n2 Al Ni\n")
    assert eam_file_elements(setfl) == ["Al", "Ni"]
    from lammps_al.train.oracles import check_spec

    with pytest.raises(LammpsAlError, match=r"x\.eam\.alloy has no Cu.*\['Al', 'Ni'\]"):
        check_spec(OracleSpec("eam", {"potential": str(setfl), "elements": ["Al", "Cu"]}))
    check_spec(OracleSpec("eam", {"potential": str(setfl), "elements": ["Al", "Ni"]}))
    with pytest.raises(LammpsAlError, match=r"lack Cu of the \[descriptor\] elements"):
        check_elements(OracleSpec("eam", {"potential": str(setfl), "elements": ["Al"]}), ("Al", "Cu"))
    bad = tmp_path / "y.eam.fs"
    bad.write_text("c1\nc2\nc3\nnot a count\n")
    with pytest.raises(LammpsAlError, match="not a setfl"):
        check_spec(OracleSpec("eam", {"potential": str(bad), "elements": ["Al"]}))


def test_element_force_weights_scale_the_force_rows_of_that_element(tmp_path):
    """[groups.NAME] element_force_weights multiplies the weight of each force row by its atom's element's
    factor; energy and stress rows and other groups keep theirs."""
    from lammps_al.train.config import load_config
    from lammps_al.train.descriptors import DesignMatrix
    from lammps_al.train.fitters import row_weights

    path = tmp_path / "fit.toml"
    path.write_text("[descriptor]\nelements = ['Al', 'Cu']\ntwojmax = 2\nrcutfac = 4.5\nradelem = [0.5, 0.5]\n"
                    "wj = [1.0, 0.8]\n[groups.default]\nforce_weight = 2.0\nenergy_weight = 5.0\n"
                    "element_force_weights = { Cu = 3.0 }\n[groups.other]\nforce_weight = 1.0\n")
    config = load_config(path)
    a = bulk("Al", "fcc", a=4.05, cubic=True)
    a.symbols[1] = "Cu"
    b = a.copy()
    b.info["group"] = "other"
    # rows: energy of a, 4 atoms x 3 force rows of a, then the same for b
    kind = np.array([0] + [1] * 12 + [0] + [1] * 12)
    config_of = np.array([0] * 13 + [1] * 13)
    atom = np.array([-1] + [i // 3 for i in range(12)] + [-1] + [i // 3 for i in range(12)])
    dm = DesignMatrix(A=np.zeros((26, 1)), b=np.zeros(26), kind=kind, config=config_of, natoms=np.array([4, 4]),
                      atom=atom)
    w = row_weights(dm, [a, b], config)
    assert w[0] == 5.0
    np.testing.assert_array_equal(w[1:13], [2.0] * 3 + [6.0] * 3 + [2.0] * 6)    # atom 1 is Cu
    np.testing.assert_array_equal(w[14:], [1.0] * 12)                             # the other group: no factor


def test_sqrt_natoms_energy_scaling_weights_each_energy_row_by_the_root_of_its_atom_count(tmp_path):
    """[groups.NAME] energy_scaling = "sqrt-natoms": the energy row (E/N) of an N-atom configuration weighs
    energy_weight * sqrt(N); force rows and the groups left at "per-atom" keep their weights."""
    from lammps_al.train.config import load_config
    from lammps_al.train.descriptors import DesignMatrix
    from lammps_al.train.fitters import row_weights

    path = tmp_path / "fit.toml"
    path.write_text("[descriptor]\nelements = ['Al']\ntwojmax = 2\nrcutfac = 4.5\nradelem = [0.5]\nwj = [1.0]\n"
                    "[groups.default]\nenergy_weight = 5.0\nenergy_scaling = 'sqrt-natoms'\n"
                    "[groups.other]\nenergy_weight = 5.0\n")
    config = load_config(path)
    small = bulk("Al", "fcc", a=4.05, cubic=True)                       # 4 atoms
    big = small.repeat((2, 2, 2))                                       # 32 atoms
    plain = big.copy()
    plain.info["group"] = "other"
    cells = [small, big, plain]
    kind = np.concatenate([[0] + [1] * 3 * len(c) for c in cells])
    config_of = np.concatenate([[i] * (1 + 3 * len(c)) for i, c in enumerate(cells)])
    dm = DesignMatrix(A=np.zeros((len(kind), 1)), b=np.zeros(len(kind)), kind=kind, config=config_of,
                      natoms=np.array([len(c) for c in cells]))
    w = row_weights(dm, cells, config)
    np.testing.assert_allclose(w[kind == 0], [5.0 * 2.0, 5.0 * np.sqrt(32.0), 5.0])
    np.testing.assert_array_equal(w[kind == 1], 1.0)


def test_outlier_force_scale_weighs_a_far_configuration_as_one_at_the_bound(tmp_path):
    """[fit] outlier_force_scale = s: a configuration whose RMS reference force F exceeds s * M (M the median
    RMS force of the configurations with forces) weighs (s M / F)^2 in every one of its rows; the others, and a
    configuration without forces, weigh 1; 0 changes nothing."""
    from lammps_al.train.config import load_config
    from lammps_al.train.descriptors import DesignMatrix
    from lammps_al.train.fitters import outlier_factors, row_weights

    cells = []
    for rms in (0.0, 1.0, 1.0, 2.0, 10.0):          # every atom's force along x: RMS force = rms
        atoms = bulk("Al", "fcc", a=4.05, cubic=True)
        atoms.arrays["REF_forces"] = np.tile([rms, 0.0, 0.0], (len(atoms), 1))
        cells.append(atoms)
    median = 1.5                                     # of 1, 1, 2, 10: the cell without forces does not count
    expected = np.array([1.0, 1.0, 1.0, 1.0, (2.0 * median / 10.0) ** 2])
    np.testing.assert_allclose(outlier_factors(cells, 2.0), expected)
    np.testing.assert_array_equal(outlier_factors(cells, 0.0), 1.0)
    np.testing.assert_allclose(outlier_factors(cells, 1.0), [1, 1, 1, (1.5 / 2.0) ** 2, (1.5 / 10.0) ** 2])

    path = tmp_path / "fit.toml"
    path.write_text("[descriptor]\nelements = ['Al']\ntwojmax = 2\nrcutfac = 4.5\nradelem = [0.5]\nwj = [1.0]\n"
                    "[fit]\noutlier_force_scale = 2.0\n"
                    "[groups.default]\nenergy_weight = 5.0\nstress_weight = 0.5\n")
    config = load_config(path)
    kind = np.concatenate([[0] + [1] * 3 * len(c) + [2] * 6 for c in cells])
    config_of = np.concatenate([[i] * (1 + 3 * len(c) + 6) for i, c in enumerate(cells)])
    dm = DesignMatrix(A=np.zeros((len(kind), 1)), b=np.zeros(len(kind)), kind=kind, config=config_of,
                      natoms=np.array([len(c) for c in cells]))
    w = row_weights(dm, cells, config)
    base = np.array([5.0, 1.0, 0.5])[kind]
    np.testing.assert_allclose(w, base * expected[config_of])
