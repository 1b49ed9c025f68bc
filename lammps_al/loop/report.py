"""Plots of a loop's progress, saved as PNG under its workdir (matplotlib, no screen needed).

- ``learning_curve.png``: energy and force RMSE on the held-out reference MD set of the first fit (starting
  set) and of each iteration's refit, against the number of labelled configurations;
- ``sigma_vs_error.png``: the predicted energy uncertainty of each newly labelled configuration (from the
  potential that flagged it) against its actual energy error, coloured by iteration;
- ``trajectory_sigma.png``: the max per-atom sigma along every exploration run, one panel per iteration.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from lammps_al.core.records import CalibrationRecord, ExploreRecord, History, IterationSummary, read_marker


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def write_plots(workdir: Path) -> list[Path]:
    workdir = Path(workdir)
    state = read_marker(workdir, History)
    if state is None or not state.iterations:
        return []
    history = state.iterations
    plt = _pyplot()
    paths = []

    points = ([state.start] if state.start is not None else []) + history
    labels = [h.labels_total for h in points]
    fig, ax = plt.subplots(1, 2, figsize=(9, 3.5))
    for i, (kind, key, unit, scale) in enumerate((("energy", "energy_rmse_eV_atom", "meV/atom", 1e3),
                                                   ("force", "force_rmse_eV_A", "eV/A", 1.0))):
        values = [getattr(h.held_out, key) for h in points]
        rmse = [np.nan if v is None else v * scale for v in values]
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
        c = read_marker(workdir / f"iter_{k:03d}", CalibrationRecord)
        if c is not None and c.sigma:
            ax.loglog(c.sigma, np.maximum(c.energy_error_per_atom, 1e-7), "o", label=f"iteration {k}")
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
        explore = read_marker(workdir / f"iter_{k:03d}", ExploreRecord)
        for name, run in (explore.runs.items() if explore is not None else ()):
            if run.max_sigma:
                ax.semilogy(run.max_sigma, label=name)
        ax.set_title(f"iteration {k}")
        ax.set_xlabel("scoring step")
    axes[0, 0].set_ylabel("max per-atom sigma (eV)")
    axes[0, 0].legend(fontsize=7)
    fig.tight_layout()
    paths.append(workdir / "trajectory_sigma.png")
    fig.savefig(paths[-1], dpi=110)
    plt.close(fig)
    return paths


def summary_lines(e: IterationSummary, sigma_target: float) -> list[str]:
    """One iteration on one screen: exploration, selection, labels, the refit's held-out errors, calibration,
    time per stage."""
    held = e.held_out
    if held.force_rmse_eV_A is None:
        refit = "no held-out MD set ([loop] held_out_snapshots = 0)"
    else:
        rho = held.spearman_sigma_vs_force_error
        refit = (f"energy RMSE {held.energy_rmse_eV_atom * 1e3:.2f} meV/atom, force RMSE "
                 f"{held.force_rmse_eV_A:.4f} eV/A on the held-out MD set, Spearman(sigma, error) "
                 f"{'n/a' if rho is None else f'{rho:.2f}'}")
        if held.force_error_ratio is not None:
            refit += f", RMS actual/predicted force error {held.force_error_ratio:.2f} ({held.ratio_scorer})"
    sig = e.trajectory_sigma

    def fmt(v):
        return "n/a" if v is None else f"{v:.2f}"

    model = f"model {e.model}" + (f" (runner-up {e.runner_up})" if e.runner_up else "")
    lines = [f"iteration {e.iteration}: trajectory sigma {'n/a' if sig is None else f'{sig:.4g}'} "
             f"(target {sigma_target:g}), runs flagging {e.flag_fraction:.0%}, candidates {e.flagged}, "
             f"selected {e.selected}, labelled {e.labelled} (total {e.labels_total}, cost "
             f"{e.cost_natoms3:.3g} natoms^3)",
             f"  refit {model}: {refit}",
             f"  energy uncertainty of the new labels (the potential that flagged them): n={e.calibration_n}, "
             f"Spearman(sigma, error) {fmt(e.calibration_spearman)}, RMS actual/predicted "
             f"{fmt(e.calibration_scale)}"]
    if e.elastic:
        lines.append(f"  elastic constants of the potential explored with: {e.elastic}")
    if e.reached:
        lines.append("  runs reached:")
        lines += [f"    {r}" for r in e.reached]
    lines.append("  time: " + ", ".join(f"{k} {v:.0f} s" for k, v in e.seconds.items()))
    if e.halted:
        lines.append(f"  halted exploration runs: {', '.join(e.halted)}")
    if e.crashed:
        lines.append(f"  CRASHED exploration runs: {', '.join(e.crashed)} (see their logs)")
    return lines
