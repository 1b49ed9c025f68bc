"""Refitting a SNAP potential from the training set: gather, split, describe, weight, solve, report, write.

The result is written only after the whole fit succeeded, and through temporary files and renames, so a
failed fit never overwrites an existing potential.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from ase import Atoms

from lammps_al.config import Config, DataSource
from lammps_al.dataset import (DatasetError, dataset_hash, deduplicate, read_extxyz, read_fitsnap_dir,
                               read_fitsnap_json, require_labels)
from lammps_al.descriptors import (DescriptorBlock, DesignMatrix, SNAPSettings, compute_blocks, design_matrix)
from lammps_al.fit import FitError, FitResult, solve
from lammps_al.potential import Potential, command_line, now, write_all
from lammps_al.progress import ProgressBar
from lammps_al.store import LabelledStore

log = logging.getLogger(__name__)

KIND_NAMES = ("energy", "force", "stress")
KIND_UNITS = {"energy": "eV/atom", "force": "eV/A", "stress": "bar"}


def read_source(source: DataSource) -> list[Atoms]:
    fmt = source.format
    path = source.path
    if fmt == "auto":
        fmt = "fitsnap-json" if (path.is_dir() and any(path.glob("*/*.json"))) or path.suffix == ".json" else "extxyz"
    if fmt == "fitsnap-json":
        if path.is_dir():
            configs = read_fitsnap_dir(path)
        else:
            configs = [read_fitsnap_json(path)]
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


def row_weights(dm: DesignMatrix, configs: list[Atoms], config: Config) -> np.ndarray:
    groups = [str(a.info.get("group", "default")) for a in configs]
    table = np.array([[getattr(config.weights_for(g), f"{k}_weight") for k in KIND_NAMES] for g in groups])
    return table[dm.config, dm.kind]


def error_metrics(dm: DesignMatrix, predicted: np.ndarray, configs: list[Atoms], test: np.ndarray) -> dict:
    """Unweighted RMSE and MAE per row kind, overall and per group, for train and test configurations."""
    groups = np.array([str(a.info.get("group", "default")) for a in configs])
    row_group = groups[dm.config]
    row_test = test[dm.config]
    err = predicted - dm.b
    out: dict = {"units": KIND_UNITS}
    for split, mask_split in (("train", ~row_test), ("test", row_test)):
        section: dict = {}
        for gname in ["*ALL", *sorted(set(groups))]:
            mask_g = mask_split if gname == "*ALL" else mask_split & (row_group == gname)
            entry = {}
            for k, kind in enumerate(KIND_NAMES):
                m = mask_g & (dm.kind == k)
                if m.any():
                    entry[kind] = {"count": int(m.sum()), "rmse": float(np.sqrt(np.mean(err[m] ** 2))),
                                   "mae": float(np.mean(np.abs(err[m])))}
            if entry:
                section[gname] = entry
        out[split] = section
    return out


@dataclass
class FitOutcome:
    potential: Potential
    result: FitResult
    metrics: dict
    paths: dict
    timings: dict


COMMITTEE_SIZE = 32


def training_features(potential: Potential, blocks: list[DescriptorBlock], mask: np.ndarray) -> list[np.ndarray]:
    """Per element, the feature vectors (rows: atoms) of the configurations selected by ``mask``."""
    from lammps_al.models.snap import model_from_potential

    model = model_from_potential(potential)
    d = potential.descriptor.n_descriptors
    per_element: list[list[np.ndarray]] = [[] for _ in potential.elements]
    for blk, keep in zip(blocks, mask):
        if keep:
            phi = model.features(blk.per_atom[:, :d])
            for e in range(len(potential.elements)):
                per_element[e].append(phi[blk.types == e])
    return [np.vstack(x) if x else np.zeros((0, 1 + potential.descriptor.n_features)) for x in per_element]


def attach_uncertainty_data(potential: Potential, features: list[np.ndarray], seed: int = 0) -> None:
    """Committee samples (from the posterior) and MaxVol grade projectors (from the training atoms'
    ``features``, per element)."""
    from lammps_al.uncertainty import grade_projector, posterior_samples

    if potential.covariance is not None:
        potential.committee = posterior_samples(potential.coefficients.ravel(), potential.covariance,
                                                k=COMMITTEE_SIZE, seed=seed)
    if all(len(f) > 0 for f in features):
        potential.grade = [grade_projector(f) for f in features]


def training_score_stats(potential: Potential, features: list[np.ndarray]) -> dict:
    """Percentiles of every available per-atom score over the training atoms (their ``features``, per
    element); the fix calibrates its thresholds on them."""
    from lammps_al.uncertainty import SCORERS, ScorerError, make_scorer

    stats = {}
    for name in SCORERS:
        try:
            scorer = make_scorer(potential, name)
        except ScorerError:
            continue
        values = np.concatenate([scorer(np.full(len(f), e), f) for e, f in enumerate(features) if len(f)])
        stats[name] = {"count": int(values.size), "mean": float(values.mean()),
                       **{f"p{q:g}": float(np.percentile(values, q)) for q in (50, 90, 95, 99, 99.9)},
                       "max": float(values.max())}
    return stats


def fit_potential(config: Config, write: bool = True, show_progress: bool = True,
                  configs: list[Atoms] | None = None) -> FitOutcome:
    """Run the whole fit described by ``config``; write the potential files and metrics.json if ``write``."""
    import time

    if config.descriptor is None:
        raise DatasetError(f"{config.source} has no [descriptor] section: a fit needs the SNAP settings")
    settings: SNAPSettings = config.descriptor
    want_quadratic = config.fit.model == "quadratic"
    if bool(settings.quadraticflag) != want_quadratic:
        settings = SNAPSettings.from_dict({**settings.to_dict(), "quadraticflag": int(want_quadratic)})
    timings = {}
    t0 = time.perf_counter()
    configs = configs if configs is not None else gather_training_set(config)
    test = split_train_test(configs, config)
    t1 = time.perf_counter()
    timings["read"] = t1 - t0
    bar = ProgressBar(len(configs), "descriptors", enabled=show_progress)
    blocks = compute_blocks(configs, settings, config.reference, workers=config.fit.workers,
                            progress=lambda i, n: bar.update())
    bar.close()
    t2 = time.perf_counter()
    timings["descriptors"] = t2 - t1
    dm = design_matrix(configs, blocks, settings, energy=config.fit.energy, force=config.fit.force,
                       stress=config.fit.stress)
    w = row_weights(dm, configs, config)
    train_rows = ~test[dm.config]
    if not np.any(w[train_rows]):
        raise FitError(f"all training rows have zero weight: check [groups] in {config.source}")
    options = {}
    if config.fit.solver == "bayes":
        options = {"alpha": config.fit.alpha, "beta": config.fit.beta}
    elif config.fit.solver == "ridge":
        options = {"alpha": config.fit.ridge_alpha}
    else:
        options = {"rcond": config.fit.rcond}
    keep = train_rows & (w > 0)
    result = solve(dm.A[keep], dm.b[keep], w[keep], config.fit.solver, **options)
    predicted = dm.A @ result.coefficients
    metrics = error_metrics(dm, predicted, configs, test)
    t3 = time.perf_counter()
    timings["solve"] = t3 - t2
    ne = len(settings.elements)
    coefficients = result.coefficients.reshape(ne, -1)
    train_all = metrics["train"].get("*ALL", {})
    noise = {"noise_precision": result.noise_precision, "prior_precision": result.prior_precision,
             **{f"train_{k}_rmse": v["rmse"] for k, v in train_all.items()}}
    noise.update({k: v for k, v in result.info.items() if k in ("gamma", "log_evidence", "rank")})
    fit_settings = {"fit": {k: (str(v) if isinstance(v, Path) else v) for k, v in config.fit.__dict__.items()},
                    "groups": {g: gw.__dict__ for g, gw in config.groups.items()},
                    "config_file": str(config.source), "n_configurations": len(configs),
                    "n_test_configurations": int(test.sum())}
    potential = Potential(elements=settings.elements, model=config.fit.model, descriptor=settings,
                          coefficients=coefficients, covariance=result.covariance, reference=config.reference,
                          noise=noise, training_set_hash=dataset_hash(configs), settings=fit_settings,
                          created=now(), command=command_line())
    features = training_features(potential, blocks, ~test)
    attach_uncertainty_data(potential, features, seed=config.fit.seed)
    potential.extra["training_scores"] = training_score_stats(potential, features)
    metrics["training_set_hash"] = potential.training_set_hash
    metrics["potential_hash"] = potential.content_hash()
    metrics["timings_s"] = timings
    paths: dict = {}
    if write:
        paths = write_outputs(potential, metrics, config.fit.output_dir, config.fit.name)
    timings["total"] = time.perf_counter() - t0
    return FitOutcome(potential, result, metrics, paths, timings)


def write_outputs(potential: Potential, metrics: dict, out_dir: Path, name: str) -> dict:
    """Write every file into a temporary folder first, then move them into ``out_dir``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rel = os.path.relpath(out_dir, Path.cwd())
    potdir = rel if not rel.startswith("..") else str(out_dir)
    with tempfile.TemporaryDirectory(prefix=f".{name}.", dir=out_dir) as tmp:
        staged = write_all(potential, Path(tmp), name, potdir_in_snippet=potdir)
        metrics_path = Path(tmp) / f"{name}.metrics.json"
        metrics_path.write_text(json.dumps(metrics, indent=2, default=float))
        staged["metrics"] = metrics_path
        final = {}
        for key, path in staged.items():
            target = out_dir / path.name
            os.replace(path, target)
            final[key] = target
    return final
