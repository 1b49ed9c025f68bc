"""Run LAMMPS's Ta06A example through snap, mliap linear and mliappy (lammps_al's model) and compare.

Every pair style is run through ``lmp -in`` and through Python driving LAMMPS, serial and under
``mpirun -np 2``; E_pair and TotEng per atom at steps 0 and 100 are compared with the reference log
shipped with LAMMPS. Exits non-zero when any combination disagrees.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from lammps_al.validate import regression


def add_arguments(parser) -> None:
    parser.add_argument("--nprocs", type=int, nargs="+", default=[1, 2], help="MPI rank counts (default: 1 2)")
    parser.add_argument("--workdir", type=Path, default=None, help="keep the runs here (default: a temp folder)")


def run(args) -> int:
    ref_dir = regression.reference_dir()
    ref = regression.reference_rows(ref_dir)
    print(f"reference: {regression.REFERENCE_LOG}  "
          + "  ".join(f"step {s}: E_pair {ref[s]['E_pair']} TotEng {ref[s]['TotEng']}" for s in regression.STEPS))
    header = f"{'pair style':<14}{'door':<8}{'ranks':>5}  " + "".join(
        f"{f'{c}@{s}':>14}" for s in regression.STEPS for c in regression.COLUMNS) + "   max |diff|  result"
    print(header)
    failures = 0
    with tempfile.TemporaryDirectory(prefix="lammps-al-regression-") as tmp:
        base = args.workdir or Path(tmp)
        for variant in regression.VARIANTS:
            for door in regression.DOORS:
                for nprocs in args.nprocs:
                    result = regression.run_case(base / f"{variant}-{door}-np{nprocs}", variant, door, nprocs, ref_dir)
                    values = "".join(f"{result.rows[s][c]:>14.8g}" for s in regression.STEPS for c in regression.COLUMNS)
                    failures += not result.ok
                    print(f"{variant:<14}{door:<8}{nprocs:>5}  {values}   {result.max_deviation:10.2e}  "
                          f"{'ok' if result.ok else 'MISMATCH'}", flush=True)
    print("all runs match the reference log" if not failures else f"{failures} run(s) do not match the reference log")
    return 1 if failures else 0
