"""Report the LAMMPS in use: version, packages, MPI, mliappy and python/invoke, potentials folder.

Exits non-zero, naming the fix, when a part lammps_al needs is missing.
"""

from __future__ import annotations

import json
import sys

from lammps_al.build import info as lammps_info


def add_arguments(parser) -> None:
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of text")


def run(args) -> int:
    info = lammps_info.collect()
    if args.json:
        print(json.dumps(info.as_dict(), indent=2))
    else:
        yes = {True: "yes", False: "NO"}
        print(f"lmp:             {info.lmp or 'not found'}")
        print(f"LAMMPS version:  {info.lammps_version or 'unknown'}")
        print(f"packages:        {' '.join(info.packages) or 'unknown'}")
        print(f"MPI:             {info.mpi or 'unknown'}")
        print(f"mliappy:         {yes[info.mliappy]}  (pair_style mliap model mliappy)")
        print(f"python/invoke:   {yes[info.python_invoke]}  (fix python/invoke)")
        print(f"Python module:   {info.python_module or 'not importable'}")
        print(f"potentials:      {info.potentials_dir or 'not found'}")
    for problem in info.problems:
        print(f"problem: {problem}", file=sys.stderr)
    return 0 if info.ok else 1
