"""Benchmarks that print figures and ratios from one run.

  lammps-al bench fit CONFIG   descriptor throughput (configurations/s, 1 vs N workers) and the share
                               of the fit's time spent outside descriptor computation
  lammps-al bench fix          the uncertainty fix: its cost in the MD loop, writing a flagged 4,000-atom
                               configuration, cutting a local environment from 4,000 vs 32,000 atoms
  lammps-al bench model        the shipped Al potentials in LAMMPS on a 4,000-atom cell: native
                               pair_style snap vs mliappy and native mode with sigma every 10 steps,
                               1 and 2 MPI ranks, and the ratios the targets are set on
  lammps-al bench selection LOOP.toml
                               oracle calls the loop needs to reach a held-out force RMSE (--target)
                               against random selection from the same exploration MD, and their ratio
"""

from __future__ import annotations

from pathlib import Path

from lammps_al import bench


def add_arguments(parser) -> None:
    parser.add_argument("what", choices=["fit", "model", "fix", "selection"], help="which benchmark")
    parser.add_argument("config", type=Path, nargs="?", help="fit: TOML config of the fit to measure; "
                        "selection: the loop's TOML config")
    parser.add_argument("--target", type=float, default=0.05, help="selection: held-out force RMSE, eV/A")
    parser.add_argument("--iterations", type=int, default=8, help="selection: most iterations per arm")
    parser.add_argument("--workdir", type=Path, help="selection: where both arms run (default: the loop's workdir + "
                        "'_bench_selection'); it resumes there")
    parser.add_argument("--potentials", type=Path, default=Path("potentials"), help="model: folder of Al_linear/Al_quadratic")
    parser.add_argument("--steps", type=int, default=50, help="model: MD steps per run")
    parser.add_argument("--reps", type=int, default=10, help="model: fcc cells per edge (4 reps^3 atoms)")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="worker counts to compare")
    parser.add_argument("--repeat", type=int, default=2, help="repeats per measurement (best is kept)")


def run(args) -> int:
    if args.what == "fix":
        lines = bench.bench_fix(args.potentials, reps=args.reps, steps=args.steps, repeat=args.repeat)
    elif args.what == "model":
        lines = bench.bench_model(args.potentials, reps=args.reps, steps=args.steps, repeat=args.repeat)
    elif args.what == "selection":
        if args.config is None:
            raise SystemExit("lammps-al bench selection needs the loop's CONFIG")
        out = bench.bench_selection(args.config, target=args.target, iterations=args.iterations,
                                    workdir=args.workdir, report=lambda line: print(line, flush=True))
        lines = bench.selection_lines(out)
    else:
        if args.config is None:
            raise SystemExit("lammps-al bench fit needs a CONFIG")
        lines = bench.bench_fit(args.config, tuple(args.workers), args.repeat)
    for line in lines:
        print(line, flush=True)
    return 0
