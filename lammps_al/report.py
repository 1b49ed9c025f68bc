"""Plots of a loop's progress, saved as PNG under its workdir (matplotlib, no screen needed).

- ``learning_curve.png``: energy and force RMSE on the held-out reference MD set of the first fit (starting
  set) and of each iteration's refit, against the number of labelled configurations;
- ``sigma_vs_error.png``: the predicted energy uncertainty of each newly labelled configuration (from the
  potential that flagged it) against its actual energy error, coloured by iteration;
- ``trajectory_sigma.png``: the max per-atom sigma along every exploration run, one panel per iteration.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def write_plots(workdir: Path) -> list[Path]:
    workdir = Path(workdir)
    state = json.loads((workdir / "history.json").read_text())
    history = state["iterations"]
    if not history:
        return []
    plt = _pyplot()
    paths = []

    points = ([state["start"]] if "start" in state else []) + history
    labels = [h["labels_total"] for h in points]
    fig, ax = plt.subplots(1, 2, figsize=(9, 3.5))
    for i, (kind, key, unit, scale) in enumerate((("energy", "energy_rmse_eV_atom", "meV/atom", 1e3),
                                                   ("force", "force_rmse_eV_A", "eV/A", 1.0))):
        rmse = [np.nan if h["held_out"][key] is None else h["held_out"][key] * scale for h in points]
        ax[i].plot(labels, rmse, "o-")
        ax[i].set_xlabel("labelled configurations")
        ax[i].set_ylabel(f"{kind} RMSE ({unit})")
        ax[i].set_title(f"held-out {kind} error")
    fig.tight_layout()
    paths.append(workdir / "learning_curve.png")
    fig.savefig(paths[-1], dpi=110)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(4.5, 4))
    for k, _ in enumerate(history):
        calib_path = workdir / f"iter_{k:03d}" / "calibration.json"
        if not calib_path.is_file():
            continue
        c = json.loads(calib_path.read_text())
        if c.get("sigma"):
            ax.loglog(c["sigma"], np.maximum(c["energy_error_per_atom"], 1e-7), "o", label=f"iteration {k}")
    ax.set_xlabel("predicted energy sigma (eV/atom)")
    ax.set_ylabel("actual |energy error| (eV/atom)")
    ax.set_title("uncertainty vs actual error")
    if ax.has_data():
        ax.legend(fontsize=7)
    fig.tight_layout()
    paths.append(workdir / "sigma_vs_error.png")
    fig.savefig(paths[-1], dpi=110)
    plt.close(fig)

    n = len(history)
    fig, axes = plt.subplots(1, n, figsize=(3.2 * n, 3), sharey=True, squeeze=False)
    for k in range(n):
        ax = axes[0, k]
        explore = json.loads((workdir / f"iter_{k:03d}" / "explore.json").read_text())
        for name, run in explore["runs"].items():
            if run["max_sigma"]:
                ax.semilogy(run["max_sigma"], label=name)
        ax.set_title(f"iteration {k}")
        ax.set_xlabel("scoring step")
    axes[0, 0].set_ylabel("max per-atom sigma (eV)")
    axes[0, 0].legend(fontsize=7)
    fig.tight_layout()
    paths.append(workdir / "trajectory_sigma.png")
    fig.savefig(paths[-1], dpi=110)
    plt.close(fig)
    return paths
