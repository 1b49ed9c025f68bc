"""Print where lammps_al's shipped files are: the LAMMPS inputs (in_files) and the potentials.

Inputs run from any folder: ``mpirun -np 2 lmp -in $(lammps-al files in_files)/explore_heating.in``.
"""

from __future__ import annotations

from lammps_al.core.resources import KINDS, shipped_dir


def add_arguments(parser) -> None:
    parser.add_argument("kind", nargs="?", choices=KINDS, help="print only this folder")


def run(args) -> int:
    if args.kind:
        print(shipped_dir(args.kind))
        return 0
    for kind in KINDS:
        print(f"{kind}: {shipped_dir(kind)}")
    return 0
