"""Refitting a potential from the training set: gather, split, fit (the model kind's fitter), give each
scorer its data, record the training-score statistics, write.

The result is written only after the whole fit succeeded, into a temporary folder first and then moved
file by file, so a failed fit never overwrites an existing potential.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from ase import Atoms

from lammps_al.core.errors import DatasetError
from lammps_al.core.io import disk_error, json_default
from lammps_al.core.potential import Potential, command_line, now
from lammps_al.core.records import write_training_scores
from lammps_al.models.registry import FitProducts, model_for, produce_scorer_data, score_statistics, stamp
from lammps_al.train.config import Config, DataSource
from lammps_al.train.dataset import (dataset_hash, deduplicate, read_extxyz, read_fitsnap_dir, read_fitsnap_json,
                                     require_labels)
from lammps_al.train.fitters import FitState, fitter_for
from lammps_al.train.lammps_files import write_all
from lammps_al.train.solvers import FitResult
from lammps_al.train.store import LabelledStore

log = logging.getLogger(__name__)


def read_source(source: DataSource) -> list[Atoms]:
    fmt = source.format
    path = source.path
    if not path.exists():
        raise DatasetError(f"[training] source {path} does not exist")
    if fmt == "auto":
        fmt = "fitsnap-json" if (path.is_dir() and any(path.glob("*/*.json"))) or path.suffix == ".json" else "extxyz"
    if fmt == "fitsnap-json":
        configs = read_fitsnap_dir(path) if path.is_dir() else [read_fitsnap_json(path)]
        if source.group:
            for a in configs:
                a.info["group"] = source.group
        return configs
    files = sorted(path.glob("*.extxyz")) + sorted(path.glob("*.xyz")) if path.is_dir() else [path]
    if not files:
        raise DatasetError(f"no extxyz files in {path}")
    out = []
    for f in files:
        out.extend(read_extxyz(f, group=source.group))
    return out


def gather_training_set(config: Config) -> list[Atoms]:
    """The labelled store plus extra sources, deduplicated, each checked for labels."""
    configs: list[Atoms] = []
    store = LabelledStore(config.training.dir)
    if store.manifest.is_file():
        configs.extend(store.load())
    for source in config.training.sources:
        extra = read_source(source)
        for atoms in extra:
            atoms.info["held_out"] = bool(source.test)
        configs.extend(extra)
    if not configs:
        raise DatasetError(f"no training data: {store.manifest} does not exist and no [training] sources are "
                           f"given in {config.source}")
    configs, dropped = deduplicate(configs)
    if dropped:
        log.info("dropped %d duplicate configuration(s)", dropped)
    for atoms in configs:
        require_labels(atoms, str(atoms.info.get("source", "configuration")), need_forces=False)
    return configs


def split_train_test(configs: list[Atoms], config: Config) -> np.ndarray:
    """Boolean mask of test configurations: held-out sources, plus a seeded random fraction of each group."""
    rng = np.random.default_rng(config.fit.seed)
    groups = np.array([str(a.info.get("group", "default")) for a in configs])
    held_out = np.array([bool(a.info.get("held_out", False)) for a in configs])
    test = held_out.copy()
    for g in sorted(set(groups[~held_out])):
        idx = np.flatnonzero((groups == g) & ~held_out)
        n_test = int(round(config.test_fraction_for(g) * len(idx)))
        if n_test:
            test[rng.choice(idx, size=n_test, replace=False)] = True
    return test


@dataclass
class FitOutcome:
    potential: Potential
    result: FitResult
    metrics: dict
    paths: dict
    timings: dict
    state: FitState | None = None


def finish_potential(state: FitState, config: Config, configs: list[Atoms], test: np.ndarray) -> Potential:
    """Provenance, the scorers' data and the training-score statistics on top of what the fitter made."""
    potential = state.potential
    result = state.result
    train_all = state.metrics["train"].get("*ALL", {})
    potential.noise = {"noise_precision": result.noise_precision, "prior_precision": result.prior_precision,
                       **{f"train_{k}_rmse": v["rmse"] for k, v in train_all.items()},
                       **{k: v for k, v in result.info.items() if k in ("gamma", "log_evidence", "rank")}}
    potential.training_set_hash = dataset_hash(configs)
    potential.settings = {"fit": {k: (str(v) if isinstance(v, Path) else v) for k, v in config.fit.__dict__.items()},
                          "groups": {g: gw.__dict__ for g, gw in config.groups.items()},
                          "config_file": str(config.source), "n_configurations": len(configs),
                          "n_test_configurations": int(test.sum())}
    if state.selection is not None:
        potential.settings["model_selection"] = state.selection
    potential.created, potential.command = now(), command_line()
    model = model_for(stamp(potential))
    training = state.training_atoms(test) if state.atoms is not None else None
    forces = training.force_features if training is not None else None
    elements = training.element if training is not None else None
    products = FitProducts(potential, model, potential.covariance, state.descriptors, seed=config.fit.seed,
                           force_features=forces)
    potential.arrays.update(produce_scorer_data(products))
    if config.fit.calibrate and state.atoms is not None and state.design is not None:
        from lammps_al.train.calibration import apply_scales, cross_validated_scales

        apply_scales(potential, cross_validated_scales(potential, state.design, state.weights, state.train_rows,
                                                       state.atoms, state.solver_options, seed=config.fit.seed))
    write_training_scores(potential, score_statistics(potential, model, state.descriptors, forces, elements))
    return potential


def fit_potential(config: Config, write: bool = True, show_progress: bool = True,
                  configs: list[Atoms] | None = None) -> FitOutcome:
    """Run the whole fit described by ``config``; write the potential files and metrics.json if ``write``."""
    t0 = time.perf_counter()
    configs = configs if configs is not None else gather_training_set(config)
    test = split_train_test(configs, config)
    timings = {"read": time.perf_counter() - t0}
    state = fitter_for(config.fit.model).fit(config, configs, test, show_progress=show_progress)
    timings.update(state.timings)
    potential = finish_potential(state, config, configs, test)
    metrics = state.metrics
    metrics["training_set_hash"] = potential.training_set_hash
    metrics["potential_hash"] = potential.content_hash()
    metrics["timings_s"] = timings
    paths: dict = {}
    if write:
        paths = write_outputs(potential, metrics, config.fit.output_dir, config.fit.name)
    timings["total"] = time.perf_counter() - t0
    return FitOutcome(potential, state.result, metrics, paths, timings, state)


def write_outputs(potential: Potential, metrics: dict, out_dir: Path, name: str) -> dict:
    """Write every file into a temporary folder first, then move them into ``out_dir``."""
    out_dir = Path(out_dir)
    rel = os.path.relpath(out_dir, Path.cwd())
    potdir = rel if not rel.startswith("..") else str(out_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix=f".{name}.", dir=out_dir) as tmp:
            staged = write_all(potential, Path(tmp), name, potdir_in_snippet=potdir)
            metrics_path = Path(tmp) / f"{name}.metrics.json"
            metrics_path.write_text(json.dumps(metrics, indent=2, default=json_default))
            staged["metrics"] = metrics_path
            final = {}
            for key, path in staged.items():
                target = out_dir / path.name
                os.replace(path, target)
                final[key] = target
    except OSError as exc:
        raise disk_error(out_dir / f"{name}.npz", exc) from exc
    return final
