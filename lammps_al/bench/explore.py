"""Exploration benchmark: one iteration's exploration runs one after another, then all at once on the
config's executor (``[executor]``, ``[loop] concurrent_runs``), from the same starting set and first fit;
prints both wall times and the speed-up."""

from __future__ import annotations

import dataclasses
import shutil
import time
from pathlib import Path

from lammps_al.loop import explore
from lammps_al.loop.config import iter_dir, load_loop_config
from lammps_al.loop.driver import start_stage


def bench_explore(config_path: Path, workdir: Path | None = None) -> list[str]:
    cfg = load_loop_config(config_path)
    root = Path(workdir) if workdir is not None else cfg.loop.workdir.with_name(cfg.loop.workdir.name
                                                                                + "_bench_explore")
    shared = dataclasses.replace(cfg, loop=dataclasses.replace(cfg.loop, workdir=root / "start"))
    shared = dataclasses.replace(shared, fit=dataclasses.replace(
        cfg.fit, training=dataclasses.replace(cfg.fit.training, dir=root / "start" / "training")))
    start_stage(shared, show_progress=False)
    concurrent = cfg.loop.runs_at_once
    lines = [f"exploration benchmark: {len(cfg.loop.explore)} runs of {cfg.loop.nprocs} rank(s) each, executor "
             f"{cfg.fit.executor.kind!r}"]
    times = {}
    for label, at_once in (("one after another", 1), (f"{concurrent} at once", concurrent)):
        wd = root / label.replace(" ", "_")
        shutil.rmtree(wd, ignore_errors=True)
        shutil.copytree(iter_dir(shared.loop, 0) / "potential", iter_dir(dataclasses.replace(
            cfg.loop, workdir=wd), 0) / "potential")
        arm = dataclasses.replace(cfg, loop=dataclasses.replace(cfg.loop, workdir=wd, concurrent_runs=at_once))
        t = time.perf_counter()
        record = explore.explore(arm, 0, show_progress=False)
        times[label] = time.perf_counter() - t
        per_run = ", ".join(f"{n} {r.seconds:.1f} s ({r.status})" for n, r in record.runs.items())
        lines.append(f"  {label:<20s} {times[label]:7.1f} s wall   runs: {per_run}")
    a, b = times.values()
    lines.append(f"  speed-up: {a / b:.2f}x (cores: {__import__('os').cpu_count()})")
    return lines
