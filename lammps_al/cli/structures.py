"""Write seeded starting structures (crystals, vacancy, surfaces, strain, rattling, EAM liquid; for a binary,
the pure elements and ordered compounds) as extxyz.

One file per structure kind in OUTDIR, ready for `lammps-al label`.
"""

from __future__ import annotations

from pathlib import Path

from lammps_al.train.structures import starting_set, write_set


def add_arguments(parser) -> None:
    parser.add_argument("outdir", type=Path, help="folder for the extxyz files")
    parser.add_argument("--element", default="Al", nargs="+",
                        help="element (default Al); two, host first (--element Al Cu), give a binary's minimal start")
    parser.add_argument("--size", choices=("minimal", "small", "standard"), default="standard",
                        help="minimal: ten cells of <= 8 atoms (a binary: thirteen, and its two 32-site dilute limits); small: <= 8 atoms for DFT; "
                             "standard (default): crystals up to 32 atoms, slabs, EAM liquid")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--no-liquid", action="store_true", help="skip the EAM liquid MD snapshots")


def run(args) -> int:
    element = args.element if isinstance(args.element, str) else tuple(args.element)
    configs = starting_set(element, seed=args.seed, liquid=not args.no_liquid, size=args.size)
    paths = write_set(configs, args.outdir)
    print(f"wrote {len(configs)} structures ({sum(len(a) for a in configs)} atoms) in {len(paths)} files "
          f"under {args.outdir}")
    return 0
