"""Selection benchmark: the loop (uncertainty + diversity) against random selection from the same
exploration MD, from one shared starting set and first fit; oracle calls to a held-out force target."""

from __future__ import annotations

import dataclasses
import json
import logging
import shutil
from pathlib import Path

from lammps_al.core.errors import LoopError
from lammps_al.core.io import atomic_write_text, json_default
from lammps_al.loop.config import iter_dir, load_loop_config
from lammps_al.loop.driver import run_loop, start_stage

log = logging.getLogger(__name__)


def calls_to_target(curve: list[tuple[int, float | None]], target: float) -> int | None:
    """Oracle calls (labels in the fit) of the first refit whose held-out force RMSE is <= target; ``curve``
    is (labels, force RMSE) per refit."""
    for labels, f in curve:
        if f is not None and f <= target:
            return int(labels)
    return None


def bench_selection(config_path: Path, target: float = 0.05, iterations: int = 8,
                    workdir: Path | None = None, show_progress: bool = False, report=log.info) -> dict:
    """The loop (uncertainty + diversity selection) against random selection from the same exploration MD
    with the same budget per iteration (max_select), from one shared starting set and first fit. Each arm
    runs until its refit reaches ``target`` eV/A on the held-out MD set or ``iterations`` pass; convergence
    by sigma does not stop either arm. Oracle calls count every label, the shared starting set included."""
    cfg = load_loop_config(config_path)
    root = (Path(workdir) if workdir is not None
            else cfg.loop.workdir.with_name(cfg.loop.workdir.name + "_bench_selection"))
    made_by = root / "config.toml"          # a bench folder resumes only the config that made it
    if made_by.is_file() and made_by.read_text() != Path(config_path).read_text():
        raise LoopError(f"{root} holds a selection benchmark made with another config ({made_by} differs "
                        f"from {config_path}): give another --workdir or remove {root}")
    root.mkdir(parents=True, exist_ok=True)
    if not made_by.is_file():
        atomic_write_text(made_by, Path(config_path).read_text())
    shared = dataclasses.replace(cfg, loop=dataclasses.replace(cfg.loop, workdir=root / "start"))
    shared = dataclasses.replace(shared, fit=dataclasses.replace(
        cfg.fit, training=dataclasses.replace(cfg.fit.training, dir=root / "start" / "training")))
    start, first = start_stage(shared, show_progress)     # both arms copy it, held-out errors included
    start_error = first.held_out.force_rmse_eV_A
    out = {"config": str(config_path), "target_force_rmse_eV_A": target, "max_select": cfg.loop.max_select,
           "start_labels": start.labelled, "start_force_rmse_eV_A": start_error, "arms": {}}
    report(f"starting set: {start['labelled']} labels, held-out force RMSE {start_error:.4f} eV/A")
    for arm in ("uncertainty", "random"):
        wd = root / arm
        if not (wd / "iter_000" / "fit.json").is_file():
            wd.mkdir(parents=True, exist_ok=True)
            shutil.copytree(root / "start" / "training", wd / "training", dirs_exist_ok=True)
            shutil.copytree(iter_dir(shared.loop, 0), wd / "iter_000", dirs_exist_ok=True)
        loop = dataclasses.replace(cfg.loop, workdir=wd, selection=arm, iterations=iterations,
                                   converged_iterations=10**6)
        fit = dataclasses.replace(cfg.fit, training=dataclasses.replace(cfg.fit.training, dir=wd / "training"))
        arm_cfg = dataclasses.replace(cfg, loop=loop, fit=fit)
        report(f"{arm} selection:")
        history = run_loop(arm_cfg, resume=True, show_progress=show_progress, report=lambda line: report("  " + line),
                           stop=lambda e: (e.held_out.force_rmse_eV_A or 1e9) <= target)
        curve = [(e.labels_total, e.held_out.force_rmse_eV_A) for e in history]
        out["arms"][arm] = {"calls_to_target": calls_to_target(curve, target), "curve": curve}
    u, r = out["arms"]["uncertainty"]["calls_to_target"], out["arms"]["random"]["calls_to_target"]
    out["ratio"] = u / r if u and r else None
    out["ratio_beyond_start"] = ((u - start.labelled) / (r - start.labelled)
                                 if u and r and r > start.labelled else None)
    out["matched_accuracy"] = matched_accuracy(out)
    atomic_write_text(root / "bench_selection.json", json.dumps(out, indent=2, default=json_default))
    return out


def matched_accuracy(out: dict) -> dict | None:
    """The best held-out force RMSE both arms reach, and the oracle calls each needed for it: the comparison
    that still means something when the target is out of reach of the model (its capacity, not the data)."""
    curves = {arm: [(n, f) for n, f in a["curve"] if f is not None] for arm, a in out["arms"].items()}
    if not all(curves.values()):
        return None
    common = max(min(f for _, f in c) for c in curves.values())
    calls = {arm: min(n for n, f in c if f <= common) for arm, c in curves.items()}
    u, r, start = calls["uncertainty"], calls["random"], out["start_labels"]
    return {"force_rmse_eV_A": common, "calls": calls, "ratio": u / r,
            "ratio_beyond_start": (u - start) / (r - start) if r > start else None}


def selection_lines(out: dict) -> list[str]:
    t = out["target_force_rmse_eV_A"]
    lines = [f"selection benchmark: oracle calls to reach a held-out force RMSE of {t} eV/A "
             f"({out['max_select']} selected per iteration; starting set {out['start_labels']} labels, "
             f"{out['start_force_rmse_eV_A']:.4f} eV/A)"]
    for arm, a in out["arms"].items():
        curve = ", ".join(f"{n}: {f:.4f}" for n, f in a["curve"])
        calls = a["calls_to_target"]
        lines.append(f"  {arm:<12s} {'not reached' if calls is None else f'{calls} calls':>12s}   curve (labels: eV/A) {curve}")
    if out["ratio"] is not None:
        lines.append(f"  ratio loop/random: {out['ratio']:.2f} (all calls), "
                     + (f"{out['ratio_beyond_start']:.2f} (calls beyond the shared starting set)"
                        if out["ratio_beyond_start"] is not None else "n/a beyond the starting set"))
    else:
        lines.append("  ratio: not available (an arm did not reach the target within its iterations)")
    m = matched_accuracy(out)
    if m is not None:
        beyond = m["ratio_beyond_start"]
        lines.append(f"  at the best accuracy both arms reach ({m['force_rmse_eV_A']:.4f} eV/A): loop "
                     f"{m['calls']['uncertainty']} calls, random {m['calls']['random']}; ratio {m['ratio']:.2f} (all "
                     f"calls), " + (f"{beyond:.2f} (beyond the starting set)" if beyond is not None else "n/a"))
    return lines
