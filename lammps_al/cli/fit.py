"""Fit a linear or quadratic SNAP potential (SVD, ridge or Bayesian) on the training set.

Writes NAME.npz (coefficients, posterior covariance, provenance), NAME.snapcoeff/.snapparam for native
pair_style snap, NAME.mliap.descriptor, the include-able snippets NAME.mliappy.lammps and NAME.snap.lammps,
and NAME.metrics.json (RMSE per group, train and test). Nothing is written if the fit fails.
"""

from __future__ import annotations

from pathlib import Path

from lammps_al.train.config import load_config
from lammps_al.train.refit import fit_potential


def add_arguments(parser) -> None:
    parser.add_argument("config", type=Path, help="TOML config")
    parser.add_argument("--model", choices=["linear", "quadratic"], help="override [fit] model")
    parser.add_argument("--solver", choices=["bayes", "svd", "ridge"], help="override [fit] solver")
    parser.add_argument("--name", help="override [fit] name (file stem of the outputs)")
    parser.add_argument("--output-dir", type=Path, help="override [fit] output_dir")
    parser.add_argument("--workers", type=int, help="parallel descriptor processes")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args) -> int:
    overrides = {f"fit.{k}": v for k, v in (("model", args.model), ("solver", args.solver), ("name", args.name),
                                           ("workers", args.workers)) if v is not None}
    if args.output_dir is not None:
        overrides["fit.output_dir"] = str(args.output_dir.resolve())
    config = load_config(args.config, overrides)
    outcome = fit_potential(config, show_progress=not args.no_progress)
    m = outcome.metrics
    p = outcome.potential
    print(f"{p.model} model, 2J={p.descriptor.twojmax}, solver {config.fit.solver}: {p.coefficients.size} "
          f"coefficients, training set {p.training_set_hash}")
    selection = p.settings.get("model_selection")
    if selection:
        ranked = sorted(selection["scores"].items(), key=lambda kv: -(kv[1] if kv[1] is not None else -1e300))
        print(f"  chosen by {selection['criterion']} ({selection['rows']} rows; 'n/a': more well-determined "
              f"parameters than half the rows): " + ", ".join(
                  f"{name} {'n/a' if score is None else f'{score:.6g}'}" for name, score in ranked))
    for split in ("train", "test"):
        for group, entry in m[split].items():
            parts = [f"{k} RMSE {v['rmse']:.6g} {m['units'][k]} (n={v['count']})" for k, v in entry.items()]
            print(f"  {split:5s} {group:<20s} " + "; ".join(parts))
    t = outcome.timings
    print(f"time: descriptors {t['descriptors']:.1f} s, solve {t['solve']:.1f} s, total {t['total']:.1f} s")
    for key, path in outcome.paths.items():
        print(f"wrote {key}: {path}")
    return 0
