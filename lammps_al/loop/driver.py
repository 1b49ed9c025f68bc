"""The active-learning loop: explore with MD, select what the fix flagged, label it, refit; until converged.

State lives on disk, one folder per iteration::

    WORKDIR/training/                 labelled store (manifest.jsonl; labels are never duplicated)
    WORKDIR/iter_000/start.json       the starting set (iteration 0 only)
    WORKDIR/iter_000/potential/       the potential this iteration explores with
    WORKDIR/iter_000/explore/NAME/    each exploration run's folder and LAMMPS log
    WORKDIR/iter_000/flagged/         what the fix wrote (manifest.jsonl, runs/*.csv, runs/*.json)
    WORKDIR/iter_000/STAGE.json       each stage's record, written atomically when it ends
    WORKDIR/history.json              the learning curve and one summary per iteration

Each iteration: material, elastic (strained cells when the potential's C11/C12/C44 are uncertain), explore,
select, label, calibrate, and the next iteration's fit and held-out errors.

``--resume`` skips every stage whose record exists (:mod:`lammps_al.loop.stages`); labelling skips labels
already in the store, so a kill at any moment loses nothing and duplicates nothing. Convergence: the
trajectory-averaged max per-atom sigma of the exploration runs stays below ``sigma_target`` for
``converged_iterations`` iterations and the fraction of runs that flag anything is at most ``flag_rate``.
"""

from __future__ import annotations

import logging
from typing import Callable

from lammps_al.core.errors import LoopError
from lammps_al.core.io import atomic_write_text
from lammps_al.core.records import (CalibrationRecord, ElasticRecord, ExploreRecord, FitRecord, HeldOutRecord, HeldOutSummary, History,
                                    IterationSummary, LabelStageRecord, LearningPoint, MaterialRecord, SelectRecord,
                                    StartRecord, write_marker)
from lammps_al.loop import calibrate, elastic, explore, fit, label, material, select, start
from lammps_al.loop.config import LoopConfig, LoopSettings, iter_dir, potential_path
from lammps_al.loop.report import summary_lines, write_plots
from lammps_al.loop.stages import run_stage, workdir_lock

log = logging.getLogger(__name__)
CONFIG_COPY = "loop.toml"


def converged(history: list[IterationSummary], settings: LoopSettings) -> bool:
    tail = history[-settings.converged_iterations:]
    return (len(tail) == settings.converged_iterations and all(
        h.trajectory_sigma is not None and h.trajectory_sigma < settings.convergence_target
        and h.flag_fraction <= settings.flag_rate for h in tail))


def start_stage(cfg: LoopConfig, show_progress: bool = True) -> tuple[StartRecord, LearningPoint]:
    """Iteration 0: the starting set labelled, the first fit and its held-out errors. Returns the start
    record and the learning curve's first point."""
    d0 = iter_dir(cfg.loop, 0)
    started = run_stage(d0, StartRecord, lambda: start.build_start(cfg, show_progress))
    first = run_stage(d0, FitRecord, lambda: fit.fit(cfg, 0, show_progress))
    held = run_stage(d0, HeldOutRecord, lambda: fit.held_out(cfg, 0))
    return started, LearningPoint(labels_total=first.n_configurations, held_out=HeldOutSummary.of(held),
                                  cost_natoms3=first.cost_natoms3, model=first.model)


def iteration(cfg: LoopConfig, k: int, show_progress: bool = True) -> IterationSummary:
    """Explore, select, label, calibrate with iteration k's potential; fit iteration k+1's."""
    d, nxt = iter_dir(cfg.loop, k), iter_dir(cfg.loop, k + 1)
    run_stage(d, MaterialRecord, lambda: material.material(cfg, k))
    checked = run_stage(d, ElasticRecord, lambda: elastic.elastic(cfg, k, show_progress))
    explored = run_stage(d, ExploreRecord, lambda: explore.explore(cfg, k, show_progress))
    selected = run_stage(d, SelectRecord, lambda: select.select(cfg, k))
    labelled = run_stage(d, LabelStageRecord, lambda: label.label(cfg, k, selected, show_progress))
    calib = run_stage(d, CalibrationRecord, lambda: calibrate.calibrate(cfg, k))
    fitted = run_stage(nxt, FitRecord, lambda: fit.fit(cfg, k + 1, show_progress))
    held = run_stage(nxt, HeldOutRecord, lambda: fit.held_out(cfg, k + 1))
    return IterationSummary(
        iteration=k, trajectory_sigma=explored.trajectory_sigma, flag_fraction=explored.flag_fraction,
        flagged=selected.flagged, selected=len(selected.selected), labelled=labelled.labelled,
        labels_total=fitted.n_configurations, held_out=HeldOutSummary.of(held), calibration_n=calib.n,
        calibration_spearman=calib.spearman, calibration_scale=calib.scale, test=fitted.test, train=fitted.train,
        crashed=explored.crashed, halted=explored.halted,
        seconds={"elastic": checked.seconds, "explore": explored.seconds, "label": labelled.seconds,
                 "fit": fitted.seconds},
        cost_natoms3=fitted.cost_natoms3, model=fitted.model,
        runner_up=(fitted.selection or {}).get("runner_up") or "",
        reached=[f"{name}: {', '.join(run.reached) or run.status}" for name, run in explored.runs.items()],
        elastic=elastic.elastic_line(checked))


def run_loop(cfg: LoopConfig, resume: bool = False, show_progress: bool = True, report: Callable = log.info,
             stop: Callable[[IterationSummary], bool] | None = None) -> list[IterationSummary]:
    """The loop; ``stop(summary)`` returning True ends it after that iteration (benchmarks stop at a target)."""
    s = cfg.loop
    if s.workdir.exists() and any(s.workdir.iterdir()) and not resume:
        raise LoopError(f"{s.workdir} already holds a loop: continue it with --resume, or choose another "
                        f"[loop] workdir")
    try:
        s.workdir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise LoopError(f"cannot create the loop's workdir {s.workdir}: {exc.strerror}") from None
    with workdir_lock(s.workdir):
        try:        # the config this loop last ran with, beside its state (validate reads its [oracle])
            atomic_write_text(s.workdir / CONFIG_COPY, cfg.source.read_text())
        except OSError:
            pass    # a config given as a path that has gone: nothing to copy
        return _run(cfg, show_progress, report, stop)


def _run(cfg: LoopConfig, show_progress: bool, report: Callable, stop) -> list[IterationSummary]:
    s = cfg.loop
    history: list[IterationSummary] = []
    started, first_point = start_stage(cfg, show_progress)
    report(f"starting set: {started.structures} structures, {started.labelled} labelled now")
    for k in range(s.iterations):
        entry = iteration(cfg, k, show_progress)
        history.append(entry)
        write_marker(s.workdir, History(start=first_point, iterations=history))
        for line in summary_lines(entry, s.convergence_target):
            report(line)
        if stop is not None and stop(entry):
            break
        if converged(history, s):
            report(f"converged after iteration {k}: trajectory-averaged sigma below {s.convergence_target} and flag "
                   f"fraction <= {s.flag_rate} for {s.converged_iterations} iterations")
            break
    write_marker(s.workdir, History(start=first_point, iterations=history,
                                    final_potential=str(potential_path(s, len(history))),
                                    converged=converged(history, s)))
    for path in write_plots(s.workdir):
        report(f"plot: {path}")
    return history
