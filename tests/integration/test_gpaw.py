"""GPAW, real plane-wave DFT, labels a 1-atom Al cell through the oracle registry.

`make test` installs GPAW (Debian's libxc/OpenBLAS/FFTW plus the PyPI sdist). Set
LAMMPS_AL_WITHOUT_GPAW=1 to skip this on a machine where it cannot be installed; otherwise a missing
GPAW fails the test.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
from ase.build import bulk

from lammps_al.train.label import label_configurations
from lammps_al.train.oracles import OracleSpec
from lammps_al.train.store import LabelledStore

pytestmark = pytest.mark.skipif(os.environ.get("LAMMPS_AL_WITHOUT_GPAW") == "1",
                                reason="LAMMPS_AL_WITHOUT_GPAW=1")


def test_gpaw_labels_a_one_atom_aluminium_cell(tmp_path):
    spec = OracleSpec("gpaw", {"ecut": 200.0, "kpoint_density": 2.0, "smearing": 0.1})
    store = LabelledStore(tmp_path / "training")
    cells = [bulk("Al", "fcc", a=a) for a in (4.04, 3.70)]
    for atoms, name in zip(cells, ("equilibrium", "compressed")):
        atoms.info["source"] = name
    summary = label_configurations(cells, spec, store, group="dft", workers=2, show_progress=False)
    assert summary.failed == [] and summary.labelled == 2
    labelled = {a.info["source"]: a for a in store.load()}
    eq, comp = labelled["equilibrium"], labelled["compressed"]
    assert eq.info["oracle"] == "gpaw" and eq.info["oracle_hash"] == spec.settings_hash()
    # physics: a 9 % compressed fcc cell is higher in energy and under compression (negative ASE stress)
    assert comp.info["REF_energy"] > eq.info["REF_energy"] + 0.1
    assert np.all(comp.info["REF_stress"][:3] < 0)
    assert np.abs(eq.arrays["REF_forces"]).max() < 1e-6  # one atom: no net force
