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


def first_at_target(points: list[dict], target: float) -> dict | None:
    """The first learning-curve point (labels, cost, force RMSE) at or below the target."""
    return next((p for p in points if p["force_rmse"] is not None and p["force_rmse"] <= target), None)


ARMS = ("uncertainty", "random")


def run_arms(cfg, root: Path, seed: int, target: float, iterations: int, show_progress: bool, report) -> dict:
    """One seed: a shared starting set and first fit, then each arm until its refit reaches the target."""
    loop = dataclasses.replace(cfg.loop, seed=seed, workdir=root / "start")
    shared = dataclasses.replace(cfg, loop=loop, fit=dataclasses.replace(
        cfg.fit, training=dataclasses.replace(cfg.fit.training, dir=root / "start" / "training")))
    start, first = start_stage(shared, show_progress)          # both arms copy it, held-out errors included
    if not (root / "start" / "held_out.extxyz").is_file():
        from lammps_al.loop.fit import held_out

        held_out(shared, 0)
    out = {"seed": seed, "start_labels": start.labelled, "start_cost_natoms3": first.cost_natoms3, "arms": {}}
    report(f"seed {seed}: starting set {start.labelled} labels, held-out force RMSE "
           f"{first.held_out.force_rmse_eV_A:.4f} eV/A")
    for arm in ARMS:
        wd = root / arm
        if not (wd / "iter_000" / "fit.json").is_file():
            wd.mkdir(parents=True, exist_ok=True)
            shutil.copytree(root / "start" / "training", wd / "training", dirs_exist_ok=True)
            shutil.copytree(iter_dir(shared.loop, 0), wd / "iter_000", dirs_exist_ok=True)
            shutil.copy(root / "start" / "held_out.extxyz", wd / "held_out.extxyz")
        arm_loop = dataclasses.replace(cfg.loop, seed=seed, workdir=wd, selection=arm, iterations=iterations,
                                       converged_iterations=10**6)
        fit = dataclasses.replace(cfg.fit, training=dataclasses.replace(cfg.fit.training, dir=wd / "training"))
        report(f"seed {seed}, {arm} selection:")
        history = run_loop(dataclasses.replace(cfg, loop=arm_loop, fit=fit), resume=True, show_progress=show_progress,
                           report=lambda line: report("  " + line),
                           stop=lambda e: (e.held_out.force_rmse_eV_A or 1e9) <= target)
        points = [{"labels": first.labels_total, "cost_natoms3": first.cost_natoms3,
                   "force_rmse": first.held_out.force_rmse_eV_A}]
        points += [{"labels": e.labels_total, "cost_natoms3": e.cost_natoms3, "force_rmse": e.held_out.force_rmse_eV_A}
                   for e in history]
        hit = first_at_target(points, target)
        out["arms"][arm] = {"curve": points, "calls_to_target": hit["labels"] if hit else None,
                            "cost_to_target": hit["cost_natoms3"] if hit else None}
    return out


def bench_selection(config_path: Path, target: float = 0.05, iterations: int = 8, seeds=(0, 1, 2),
                    workdir: Path | None = None, show_progress: bool = False, report=log.info) -> dict:
    """The loop (uncertainty + diversity selection) against random selection (uniform draws from snapshots the
    same exploration MD wrote, the same cutting and the same model-growth rule), each from the same starting
    set and first fit, for each seed; each arm runs until its refit reaches ``target`` eV/A on the held-out
    MD set or ``iterations`` pass (convergence by sigma stops neither). Oracle cost counts every label, the
    shared starting set included: calls, and the sum over labelled cells of natoms^3."""
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
    out = {"config": str(config_path), "target_force_rmse_eV_A": target, "max_select": cfg.loop.max_select,
           "iterations": iterations, "seeds": [run_arms(cfg, root / f"seed{seed}", seed, target, iterations,
                                                         show_progress, report) for seed in seeds]}
    out["summary"] = summarise(out)
    out["ladder"] = ladder(out)
    atomic_write_text(root / "bench_selection.json", json.dumps(out, indent=2, default=json_default))
    plot(out, root / "bench_selection.png")
    return out


def _mean_spread(values):
    import numpy as np

    values = [v for v in values if v is not None]
    if not values:
        return None, None, 0
    return float(np.mean(values)), float(np.std(values, ddof=1)) if len(values) > 1 else 0.0, len(values)


def compare(reached: dict[str, tuple[list, list]]) -> dict:
    """Per arm, from its seeds' (calls, costs) to a target (None where a seed did not reach it): mean and spread
    of each, how many seeds reached it; loop / random ratios of the means where every seed of both did."""
    out = {}
    for arm in ARMS:
        calls, costs = reached[arm]
        out[arm] = {"calls": _mean_spread(calls), "cost_natoms3": _mean_spread(costs),
                    "reached": sum(c is not None for c in calls), "of": len(calls)}
    u, r = out["uncertainty"], out["random"]
    both = u["reached"] == u["of"] and r["reached"] == r["of"]
    out["ratio_calls"] = u["calls"][0] / r["calls"][0] if both else None
    out["ratio_cost"] = u["cost_natoms3"][0] / r["cost_natoms3"][0] if both else None
    return out


def summarise(out: dict) -> dict:
    """Per arm: mean and spread over the seeds of the calls and natoms^3 cost to the target (seeds that did
    not reach it are counted as not reached); loop / random ratios of the means."""
    return compare({arm: ([s["arms"][arm]["calls_to_target"] for s in out["seeds"]],
                          [s["arms"][arm]["cost_to_target"] for s in out["seeds"]]) for arm in ARMS})


LADDER = (1.4, 1.2, 1.1, 1.0)      # targets, as multiples of the benchmark's own, printed from the same curves


def ladder(out: dict) -> list[dict]:
    """For targets looser than the benchmark's (its learning curves cross them on the way), :func:`compare`
    at each: near a model's floor one refit more or less decides whether an arm crosses the target, so the
    curve up to it tells as much."""
    rows = []
    for factor in LADDER:
        t = factor * out["target_force_rmse_eV_A"]
        reached = {}
        for arm in ARMS:
            hits = [first_at_target(seed["arms"][arm]["curve"], t) for seed in out["seeds"]]
            reached[arm] = ([h["labels"] if h else None for h in hits],
                            [h["cost_natoms3"] if h else None for h in hits])
        rows.append({"factor": factor, "target": t, **compare(reached)})
    return rows


def plot(out: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    colours = {"uncertainty": "tab:blue", "random": "tab:orange"}
    for seed in out["seeds"]:
        for arm in ARMS:
            curve = [p for p in seed["arms"][arm]["curve"] if p["force_rmse"] is not None]
            label = f"{arm} (seed {seed['seed']})"
            axes[0].plot([p["labels"] for p in curve], [p["force_rmse"] for p in curve], "o-", color=colours[arm],
                         alpha=0.7, label=label)
            axes[1].loglog([p["cost_natoms3"] for p in curve], [p["force_rmse"] for p in curve], "o-",
                           color=colours[arm], alpha=0.7)
    for ax, xlabel in zip(axes, ("oracle calls (labelled configurations)", "oracle cost: sum of natoms^3")):
        ax.axhline(out["target_force_rmse_eV_A"], color="k", ls="--", lw=1)
        ax.set_xlabel(xlabel)
        ax.set_ylabel("held-out force RMSE (eV/A)")
    axes[0].legend(fontsize=7)
    fig.suptitle("uncertainty-driven selection vs random selection from the same MD")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def selection_lines(out: dict) -> list[str]:
    t = out["target_force_rmse_eV_A"]
    lines = [f"selection benchmark: oracle calls and cost (sum of natoms^3 over labelled cells) to reach a held-out "
             f"force RMSE of {t} eV/A, {out['max_select']} selected per iteration, at most {out['iterations']} "
             f"iterations, seeds {[s['seed'] for s in out['seeds']]}"]
    for seed in out["seeds"]:
        for arm in ARMS:
            a = seed["arms"][arm]
            curve = ", ".join(f"{p['labels']}: {p['force_rmse']:.4f}" for p in a["curve"] if p["force_rmse"])
            reached = (f"{a['calls_to_target']} calls, cost {a['cost_to_target']:.3g}" if a["calls_to_target"]
                       else "not reached")
            lines.append(f"  seed {seed['seed']} {arm:<12s} {reached:>30s}   curve (labels: eV/A) {curve}")
    s = out["summary"]
    for arm in ARMS:
        (c, cs, _), (k, ks, _) = s[arm]["calls"], s[arm]["cost_natoms3"]
        lines.append(f"  {arm:<12s} reached in {s[arm]['reached']} of {s[arm]['of']} seeds: " + (
            f"{c:.1f} +- {cs:.1f} calls, cost {k:.3g} +- {ks:.2g} natoms^3" if c is not None else "-"))
    if s["ratio_calls"] is not None:
        lines.append(f"  ratio loop / random (means): calls {s['ratio_calls']:.2f}, cost {s['ratio_cost']:.2f}")
    else:
        lines.append("  ratio: not available (an arm did not reach the target in every seed)")
    lines.append("  on the way (the same curves), mean calls and cost to each target; ratios where all seeds of both "
                 "arms reached it:")
    for row in out.get("ladder") or ladder(out):
        parts = []
        for arm in ARMS:
            a = row[arm]
            parts.append(f"{arm} {a['reached']}/{a['of']}" + (
                f" {a['calls'][0]:.1f} calls {a['cost_natoms3'][0]:.3g}" if a["calls"][0] is not None else ""))
        ratio = (f"ratios {row['ratio_calls']:.2f} calls, {row['ratio_cost']:.2f} cost"
                 if row["ratio_calls"] is not None else "ratios n/a")
        lines.append(f"    {row['target']:.3f} eV/A: " + "; ".join(parts) + f"; {ratio}")
    return lines
