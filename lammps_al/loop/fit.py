"""Fitting: everything labelled so far becomes the next iteration's potential; its errors on the held-out
reference set are the learning curve."""

from __future__ import annotations

import dataclasses
import time

from lammps_al.core.records import FitRecord, HeldOutRecord
from lammps_al.loop.config import LoopConfig, iter_dir, potential_path
from lammps_al.train.held_out import held_out_errors, labelled_held_out_set
from lammps_al.train.refit import fit_potential


def config_count(metrics: dict) -> int:
    return sum(v.get("energy", {}).get("count", 0) for split in ("train", "test")
               for g, v in metrics[split].items() if g == "*ALL")


def fit(cfg: LoopConfig, k: int, show_progress: bool = True) -> FitRecord:
    """Fit on everything labelled so far; the result is iteration k's potential."""
    t = time.perf_counter()
    out = iter_dir(cfg.loop, k) / "potential"
    config = dataclasses.replace(cfg.fit, fit=dataclasses.replace(cfg.fit.fit, output_dir=out))
    outcome = fit_potential(config, show_progress=show_progress)
    metrics = outcome.metrics
    return FitRecord(potential=str(outcome.paths["potential"]), n_configurations=config_count(metrics),
                     train=metrics["train"].get("*ALL", {}), test=metrics["test"].get("*ALL", {}),
                     seconds=time.perf_counter() - t)


def held_out(cfg: LoopConfig, k: int) -> HeldOutRecord:
    """Errors of iteration k's potential on the held-out reference MD set (made once, cached)."""
    oracle = cfg.fit.oracle
    if oracle.name != "eam" or oracle.settings.get("potential", "Al_mm.eam.fs") != "Al_mm.eam.fs":
        # the held-out snapshots are labelled by the EAM reference; another oracle's potential would be
        # scored against a different reference (different absolute energies), which means nothing
        return HeldOutRecord(skipped=f"the held-out MD set is labelled by Al_mm.eam.fs, not by the oracle "
                                     f"{oracle.name!r}")
    snapshots = labelled_held_out_set(cfg.loop.workdir / "held_out.extxyz")
    return held_out_errors(potential_path(cfg.loop, k), snapshots)
