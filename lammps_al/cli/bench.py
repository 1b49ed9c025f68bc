"""Benchmarks that print figures and ratios from one run.

  lammps-al bench fit CONFIG   descriptor throughput (configurations/s, 1 vs N workers) and the share
                               of the fit's time spent outside descriptor computation
"""

from __future__ import annotations

from pathlib import Path

from lammps_al import bench


def add_arguments(parser) -> None:
    parser.add_argument("what", choices=["fit"], help="which benchmark")
    parser.add_argument("config", type=Path, help="TOML config of the fit to measure")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="worker counts to compare")
    parser.add_argument("--repeat", type=int, default=2, help="repeats per measurement (best is kept)")


def run(args) -> int:
    for line in bench.bench_fit(args.config, tuple(args.workers), args.repeat):
        print(line, flush=True)
    return 0
