"""External regression: LAMMPS's own Ta06A example against its reference log.

The same 128-atom bcc Ta NVE run goes through native ``pair_style snap``, ``pair_style mliap model
linear`` and ``pair_style mliap model mliappy`` with lammps_al's LinearSNAP, entered through ``lmp -in``
and through Python driving LAMMPS (``lammps.lammps(comm=MPI.COMM_WORLD)``), serial and under
``mpirun -np 2``. E_pair and TotEng per atom at steps 0 and 100 must equal the reference log that ships
with LAMMPS (examples/mliap/log.21Jun20.mliap.snap.Ta06A.g++.1) to its printed precision.
"""

from __future__ import annotations

import pytest

from lammps_al.validate import regression


def test_reference_log_is_the_published_one(reference_dir):
    """Guards against comparing with the wrong log: the issue cites these three numbers."""
    ref = regression.reference_rows(reference_dir)
    assert ref[0]["E_pair"] == pytest.approx(-11.85157, abs=1e-9)
    assert ref[100]["E_pair"] == pytest.approx(-11.822589, abs=1e-9)
    assert ref[100]["TotEng"] == pytest.approx(-11.813094, abs=1e-9)


@pytest.mark.parametrize("nprocs", [1, pytest.param(2, marks=pytest.mark.mpi)])
@pytest.mark.parametrize("door", regression.DOORS)
@pytest.mark.parametrize("variant", list(regression.VARIANTS))
def test_ta06a_matches_reference_log(tmp_path, reference_dir, variant, door, nprocs):
    """Step 0 and step 100 E_pair/TotEng equal LAMMPS's reference log for every pair style and door."""
    result = regression.run_case(tmp_path, variant, door, nprocs, reference_dir)
    for step in regression.STEPS:
        for column in regression.COLUMNS:
            got, want = result.rows[step][column], result.reference[step][column]
            assert abs(got - want) <= regression.ROUNDING, (
                f"{variant} via {door} on {nprocs} rank(s): step {step} {column} = {got}, reference {want}")
