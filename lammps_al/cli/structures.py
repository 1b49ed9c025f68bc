"""Write seeded starting structures (crystals, vacancy, surfaces, strain, rattling, EAM liquid) as extxyz.

One file per structure kind in OUTDIR, ready for `lammps-al label`.
"""

from __future__ import annotations

from pathlib import Path

from lammps_al.train.structures import starting_set, write_set


def add_arguments(parser) -> None:
    parser.add_argument("outdir", type=Path, help="folder for the extxyz files")
    parser.add_argument("--element", default="Al", help="element (default Al)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--no-liquid", action="store_true", help="skip the EAM liquid MD snapshots")


def run(args) -> int:
    configs = starting_set(args.element, seed=args.seed, liquid=not args.no_liquid)
    paths = write_set(configs, args.outdir)
    print(f"wrote {len(configs)} structures ({sum(len(a) for a in configs)} atoms) in {len(paths)} files "
          f"under {args.outdir}")
    return 0
