"""Write the LAMMPS files of a potential file: the ML-IAP descriptor file and the include snippets (and,
for SNAP models, .snapcoeff/.snapparam for native pair_style snap).

Also rewrites a potential file of an older format in the current one (--name keeps the stem by default).
"""

from __future__ import annotations

import os
from pathlib import Path

from lammps_al.core.potential import load
from lammps_al.models.registry import model_for
from lammps_al.train.lammps_files import write_all


def add_arguments(parser) -> None:
    parser.add_argument("potential", type=Path, help="the potential file (.npz)")
    parser.add_argument("--output-dir", type=Path, help="where to write (default: the potential's folder)")
    parser.add_argument("--name", help="file stem of the outputs (default: the potential's)")
    parser.add_argument("--potdir", help="the folder the snippets name by default (lal_potdir; default: the "
                                         "output folder as seen from here)")


def run(args) -> int:
    potential = load(args.potential)
    model_for(potential)
    out = args.output_dir or args.potential.resolve().parent
    name = args.name or args.potential.stem
    rel = os.path.relpath(out, Path.cwd())
    potdir = args.potdir or (rel if not rel.startswith("..") else str(out))
    for key, path in write_all(potential, out, name, potdir_in_snippet=potdir).items():
        print(f"wrote {key}: {path}")
    return 0
