"""LinearSNAP: coefficient files and the ML-IAP call protocol (no LAMMPS needed)."""

from __future__ import annotations

import numpy as np
import pytest

from lammps_al.core.errors import PotentialError as PotentialFileError
from lammps_al.models.snap import LinearSNAP

MLIAP_MODEL = """# comment
# LAMMPS SNAP coefficients

# nelements ncoeff
1 4
-2.5
0.1
-0.2
0.3
"""

SNAPCOEFF = """# two elements
2 3
A 0.5 1.0
1.0
2.0
3.0
B 0.4 1.0
-1.0
-2.0
-3.0
"""


def test_reads_mliap_model_file(tmp_path):
    path = tmp_path / "x.mliap.model"
    path.write_text(MLIAP_MODEL)
    model = LinearSNAP.from_mliap_model_file(path)
    assert (model.n_elements, model.n_descriptors, model.n_params) == (1, 3, 4)
    B = np.array([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0]])
    np.testing.assert_allclose(model.energies(np.zeros(2, np.int32), B), [-2.5 + 0.1 - 0.4 + 0.9, -2.5])


def test_reads_multi_element_snapcoeff(tmp_path):
    path = tmp_path / "x.snapcoeff"
    path.write_text(SNAPCOEFF)
    model = LinearSNAP.from_mliap_model_file(path)
    elems = np.array([0, 1], np.int32)
    B = np.array([[1.0, 1.0], [1.0, 1.0]])
    np.testing.assert_allclose(model.energies(elems, B), [1.0 + 5.0, -1.0 - 5.0])
    np.testing.assert_allclose(model.gradients(elems, B), [[2.0, 3.0], [-2.0, -3.0]])


def test_call_fills_outputs_in_place(tmp_path):
    model = LinearSNAP(np.array([[1.0, 2.0, -1.0]]))
    B = np.array([[1.0, 1.0], [2.0, 0.5]])
    beta, energy = np.full((2, 2), np.nan), np.full(2, np.nan)
    model(np.zeros(2, np.int32), B, beta, energy)
    np.testing.assert_allclose(energy, [2.0, 4.5])
    np.testing.assert_allclose(beta, [[2.0, -1.0], [2.0, -1.0]])


def test_truncated_file_names_file_and_counts(tmp_path):
    path = tmp_path / "short.mliap.model"
    path.write_text("1 4\n1.0\n2.0\n")
    with pytest.raises(PotentialFileError, match=r"short.mliap.model.*expected 4"):
        LinearSNAP.from_mliap_model_file(path)


def test_non_number_names_the_line(tmp_path):
    path = tmp_path / "bad.mliap.model"
    path.write_text("1 2\n1.0\nabc\n")
    with pytest.raises(PotentialFileError, match=r"bad.mliap.model:3: 'abc' is not a number"):
        LinearSNAP.from_mliap_model_file(path)


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(PotentialFileError, match="cannot read coefficient file"):
        LinearSNAP.from_mliap_model_file(tmp_path / "missing.mliap.model")
