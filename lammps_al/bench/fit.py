"""Fit benchmark: descriptor throughput per worker count and the share of a fit spent outside descriptors."""

from __future__ import annotations

import time
from pathlib import Path

from lammps_al.train.config import load_config
from lammps_al.train.descriptors import compute_blocks
from lammps_al.train.refit import fit_potential, gather_training_set


def bench_fit(config_path: Path, workers: tuple[int, ...] = (1, 2), repeat: int = 1) -> list[str]:
    """Descriptor throughput (configurations/s) per worker count, and the share of fit time outside them."""
    config = load_config(config_path)
    configs = gather_training_set(config)
    natoms = sum(len(a) for a in configs)
    lines = [f"fit benchmark: {config_path} ({len(configs)} configurations, {natoms} atoms, "
             f"2J={config.descriptor.twojmax}, {config.fit.model})"]
    # The full fit and the multi-worker runs go first: once this process has made a LAMMPS instance (the
    # serial run does), MPI is initialised here and worker pools must be spawned instead of forked.
    outcome = fit_potential(config, write=False, show_progress=False, configs=configs)
    rates = {}
    for w in sorted(workers, reverse=True):
        best = float("inf")
        for _ in range(repeat):
            t = time.perf_counter()
            compute_blocks(configs, config.descriptor, config.reference, workers=w)
            best = min(best, time.perf_counter() - t)
        rates[w] = len(configs) / best
        lines.append(f"  descriptors, {w} worker(s): {best:7.2f} s  {rates[w]:8.1f} configurations/s  "
                     f"{natoms / best:9.0f} atoms/s")
    if len(rates) > 1:
        lo, hi = min(rates), max(rates)
        lines.append(f"  speed-up {lo} -> {hi} workers: {rates[hi] / rates[lo]:.2f}x")
    t = outcome.timings
    outside = t["total"] - t["descriptors"]
    lines.append(f"  full fit ({config.fit.workers} workers): total {t['total']:.2f} s, descriptors "
                 f"{t['descriptors']:.2f} s, solve {t['solve']:.2f} s; share outside descriptors "
                 f"{outside / t['total']:.1%}")
    return lines
