"""Build LAMMPS (once per machine, cached) and install it into this virtual environment.

The source is the user's LAMMPS tree or tarball (--source or $LAMMPS_AL_SOURCE), else Debian's source
package lammps 20250204+dfsg.1, verified by its sha256. The project's patches in
lammps_al/build/patches are applied. The build is cached outside the clone ($LAMMPS_AL_CACHE, default
~/.cache/lammps_al) under a key over the source, options, patches, Python, compiler and MPI.
"""

from __future__ import annotations

import json

from lammps_al.build import lammps as builder


def add_arguments(parser) -> None:
    parser.add_argument("--source", help="a LAMMPS source tree or release tarball (default: $LAMMPS_AL_SOURCE, "
                                         "else Debian's source package)")
    parser.add_argument("-j", "--jobs", type=int, default=None, help="parallel compile jobs (default: all cores)")
    parser.add_argument("--print-key", action="store_true", help="print the cache key and folder, build nothing")
    parser.add_argument("--keep-workdir", action="store_true", help="keep the source and build folders for debugging")


def run(args) -> int:
    plan = builder.plan_build(args.source)
    if args.print_key:
        print(json.dumps({"key": plan.key, "cache_dir": str(plan.cache_dir), "cached": plan.ready}, indent=2))
        return 0
    if plan.ready:
        print(f"lammps-al build: using cached LAMMPS in {plan.cache_dir}")
    built = builder.build(plan, jobs=args.jobs, keep_workdir=args.keep_workdir)
    record = builder.install_into_venv(built)
    print(f"lammps-al build: LAMMPS {record['lammps_version']} installed: {record['lmp']}")
    return 0
