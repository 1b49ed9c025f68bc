"""Fitting: everything labelled so far becomes the next iteration's potential; its errors on the held-out
reference set are the learning curve."""

from __future__ import annotations

import dataclasses
import logging
import time

from lammps_al.core.records import FitRecord, HeldOutRecord
from lammps_al.loop.config import LoopConfig, iter_dir, potential_path
from lammps_al.train.held_out import held_out_errors, labelled_held_out_set
from lammps_al.train.refit import fit_potential

log = logging.getLogger(__name__)


def config_count(metrics: dict) -> int:
    return sum(v.get("energy", {}).get("count", 0) for split in ("train", "test")
               for g, v in metrics[split].items() if g == "*ALL")


def fit(cfg: LoopConfig, k: int, show_progress: bool = True) -> FitRecord:
    """Fit on everything labelled so far; the result is iteration k's potential. The elastic group's stress and
    the vacancy group's energy weigh what iteration k-1's check chose (:mod:`lammps_al.loop.elastic`) unless
    the config sets those groups' weights."""
    from lammps_al.loop.elastic import factors_for_fit
    from lammps_al.train.crystal import weighted_config

    t = time.perf_counter()
    out = iter_dir(cfg.loop, k) / "potential"
    config = dataclasses.replace(cfg.fit, fit=dataclasses.replace(cfg.fit.fit, output_dir=out))
    config = weighted_config(config, factors_for_fit(cfg, k))     # what the crystal check chose
    outcome = fit_potential(config, show_progress=show_progress)
    metrics = outcome.metrics
    potential = outcome.potential
    selection = potential.settings.get("model_selection") or {}
    return FitRecord(potential=str(outcome.paths["potential"]),
                     n_configurations=int(potential.settings.get("n_configurations", config_count(metrics))),
                     train=metrics["train"].get("*ALL", {}), test=metrics["test"].get("*ALL", {}),
                     seconds=time.perf_counter() - t, model=f"{potential.model}:{potential.descriptor.twojmax}",
                     selection=selection, cost_natoms3=store_cost(cfg))


def store_cost(cfg: LoopConfig) -> float:
    """Sum of natoms^3 over every configuration labelled so far (the store's manifest)."""
    from lammps_al.train.store import LabelledStore

    records = {(r.hash, r.oracle_hash): r for r in LabelledStore(cfg.fit.training.dir).records() if r.status == "ok"}
    return float(sum(float(r.natoms) ** 3 for r in records.values()))


def held_out(cfg: LoopConfig, k: int) -> HeldOutRecord:
    """Errors of iteration k's potential on the oracle's held-out MD set, made once per workdir from MD the loop
    never uses (its own seed): for an oracle LAMMPS can run, MD with the oracle in LAMMPS at temperatures
    relative to its melting point; for any other (DFT), the oracle's own MD in 8-atom cells, ``[loop]
    held_out_snapshots`` per system (0: none), its cost estimated first against ``[loop] held_out_budget``."""
    from lammps_al.train.held_out import oracle_held_out_set, oracle_md_plan, reference_plan
    from lammps_al.train.lammps_calc import oracle_pair
    from lammps_al.train.oracles import OracleSpec, make_calculator

    oracle = cfg.fit.oracle
    spec = OracleSpec(oracle.name, dict(oracle.settings))
    cache = cfg.loop.workdir / "held_out.extxyz"
    elements = tuple(cfg.fit.descriptor.elements)
    element = elements[0]
    if oracle_pair(spec) is not None:
        plan = None if cache.is_file() else reference_plan(spec, elements, cfg.loop.workdir)
        snapshots = labelled_held_out_set(cache, plan, spec)
    else:
        if cfg.loop.held_out_snapshots == 0:
            return HeldOutRecord(skipped="no held-out set ([loop] held_out_snapshots = 0)")
        if len(elements) > 1:
            return HeldOutRecord(skipped=f"no held-out set: the oracle's own MD in small cells is for one element, "
                                         f"not {list(elements)} (an oracle LAMMPS runs makes one for a binary)")
        make = lambda: make_calculator(spec)
        plan = None if cache.is_file() else oracle_md_plan(make, element, cfg.loop.held_out_snapshots,
                                                           cfg.loop.held_out_budget, report=log.info)
        snapshots = oracle_held_out_set(cache, plan, make)
    return held_out_errors(potential_path(cfg.loop, k), snapshots)
