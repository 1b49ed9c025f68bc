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
  lammps-al bench otf [--csv otf/otf.csv]
                               on-the-fly learning: the MD loop with the fix alone and with the OTF snippet
                               (learning, no label), their ratio; one update's time from an OTF run's CSV
  lammps-al bench explore LOOP.toml
                               one iteration's exploration runs one after another vs at once on the
                               config's executor, and the speed-up
"""

from __future__ import annotations

from pathlib import Path

from lammps_al.core.errors import ConfigError
from lammps_al.core.resources import shipped_dir


def add_arguments(parser) -> None:
    parser.add_argument("what", choices=["fit", "model", "fix", "selection", "explore", "otf"], help="which benchmark")
    parser.add_argument("config", type=Path, nargs="?", help="fit: TOML config of the fit to measure; "
                        "selection, explore: the loop's TOML config")
    parser.add_argument("--target", type=float, default=0.05, help="selection: held-out force RMSE, eV/A")
    parser.add_argument("--iterations", type=int, default=8, help="selection: most iterations per arm")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="selection: seeds (default 0 1 2)")
    parser.add_argument("--workdir", type=Path, help="selection, explore: where the runs go (default: the loop's "
                        "workdir + '_bench_selection' / '_bench_explore'); selection resumes there")
    parser.add_argument("--potentials", type=Path, default=None,
                        help="model, fix: folder of Al_linear/Al_quadratic (default: the shipped potentials)")
    parser.add_argument("--steps", type=int, default=None, help="model, fix, otf: MD steps per run (default 50; "
                                                                 "otf 2000)")
    parser.add_argument("--reps", type=int, default=None, help="model, fix, otf: fcc cells per edge, 4 reps^3 atoms "
                                                                "(default 10; otf 4)")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="worker counts to compare")
    parser.add_argument("--repeat", type=int, default=2, help="repeats per measurement (best is kept)")
    parser.add_argument("--nprocs", type=int, default=1, help="otf: MPI ranks")
    parser.add_argument("--csv", type=Path, help="otf: an OTF run's otf.csv for the update times")


def run(args) -> int:
    potentials = args.potentials or shipped_dir("potentials")
    if args.what in ("fit", "selection", "explore") and args.config is None:
        raise ConfigError(f"lammps-al bench {args.what} needs a CONFIG (the "
                          f"{'fit' if args.what == 'fit' else 'loop'}'s TOML file)")
    if args.what == "fix":
        from lammps_al.bench.fix import bench_fix

        lines = bench_fix(potentials, reps=args.reps or 10, steps=args.steps or 50, repeat=args.repeat)
    elif args.what == "model":
        from lammps_al.bench.model import bench_model

        lines = bench_model(potentials, reps=args.reps or 10, steps=args.steps or 50, repeat=args.repeat)
    elif args.what == "selection":
        from lammps_al.bench.selection import bench_selection, selection_lines

        out = bench_selection(args.config, target=args.target, iterations=args.iterations, seeds=tuple(args.seeds),
                              workdir=args.workdir, report=lambda line: print(line, flush=True))
        lines = selection_lines(out)
    elif args.what == "otf":
        from lammps_al.bench.otf import bench_otf, update_lines

        lines = bench_otf(potentials, shipped_dir("in_files"), reps=args.reps or 4, steps=args.steps or 2000,
                          repeat=args.repeat, nprocs=args.nprocs)
        if args.csv is not None:
            lines += update_lines(args.csv)
    elif args.what == "explore":
        from lammps_al.bench.explore import bench_explore

        lines = bench_explore(args.config, workdir=args.workdir)
    else:
        from lammps_al.bench.fit import bench_fit

        lines = bench_fit(args.config, tuple(args.workers), args.repeat)
    for line in lines:
        print(line, flush=True)
    return 0
