"""Parsing LAMMPS output: thermo tables and `lmp -h` (no LAMMPS needed)."""

from __future__ import annotations

from lammps_al.build.info import _same_version, parse_help
from lammps_al.core.lammps_log import read_thermo

LOG = """LAMMPS (4 Feb 2025)
Step Temp E_pair
       0          300    -11.85157
     100    74.035418   -11.822589
Loop time of 0.9 on 1 procs for 100 steps with 128 atoms
WARNING: something
Step PotEng
 0 -1.5
Loop time of 0.1 on 1 procs for 0 steps with 1 atoms
"""

HELP = """
Large-scale Atomic/Molecular Massively Parallel Simulator - 4 Feb 2025

Usage example: lmp -var t 300 -echo screen -in in.alloy

MPI v4.1: MPICH Version:      5.0.2

Installed packages:

EXTRA-COMPUTE ML-IAP ML-SNAP

List of individual style options included in this LAMMPS executable
"""


def test_read_thermo_returns_each_run():
    runs = read_thermo(LOG)
    assert len(runs) == 2
    assert runs[0][1] == {"Step": 100.0, "Temp": 74.035418, "E_pair": -11.822589}
    assert runs[1] == [{"Step": 0.0, "PotEng": -1.5}]


def test_parse_help_finds_version_packages_mpi():
    version, packages, mpi = parse_help(HELP)
    assert version == "4 Feb 2025"
    assert packages == ["EXTRA-COMPUTE", "ML-IAP", "ML-SNAP"]
    assert mpi.startswith("MPICH Version")


def test_module_version_matches_lmp_version():
    assert _same_version("20250204", "4 Feb 2025")
    assert not _same_version("20240829", "4 Feb 2025 - Update 1")
