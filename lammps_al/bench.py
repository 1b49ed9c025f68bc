"""Benchmarks: figures and ratios measured side by side in one run (never a timed test)."""

from __future__ import annotations

import time
from pathlib import Path

from lammps_al.config import load_config
from lammps_al.descriptors import compute_blocks
from lammps_al.retrain import fit_potential, gather_training_set


def bench_fit(config_path: Path, workers: tuple[int, ...] = (1, 2), repeat: int = 1) -> list[str]:
    """Descriptor throughput (configurations/s) per worker count, and the share of fit time outside them."""
    config = load_config(config_path)
    configs = gather_training_set(config)
    natoms = sum(len(a) for a in configs)
    lines = [f"fit benchmark: {config_path} ({len(configs)} configurations, {natoms} atoms, "
             f"2J={config.descriptor.twojmax}, {config.fit.model})"]
    # The full fit and the multi-worker runs go first: once this process has made a LAMMPS instance (the
    # serial run does), MPI is initialised here and worker pools must be spawned instead of forked.
    outcome = fit_potential(config, write=False, show_progress=False, configs=configs)
    rates = {}
    for w in sorted(workers, reverse=True):
        best = float("inf")
        for _ in range(repeat):
            t = time.perf_counter()
            compute_blocks(configs, config.descriptor, config.reference, workers=w)
            best = min(best, time.perf_counter() - t)
        rates[w] = len(configs) / best
        lines.append(f"  descriptors, {w} worker(s): {best:7.2f} s  {rates[w]:8.1f} configurations/s  "
                     f"{natoms / best:9.0f} atoms/s")
    if len(rates) > 1:
        lo, hi = min(rates), max(rates)
        lines.append(f"  speed-up {lo} -> {hi} workers: {rates[hi] / rates[lo]:.2f}x")
    t = outcome.timings
    outside = t["total"] - t["descriptors"]
    lines.append(f"  full fit ({config.fit.workers} workers): total {t['total']:.2f} s, descriptors "
                 f"{t['descriptors']:.2f} s, solve {t['solve']:.2f} s; share outside descriptors "
                 f"{outside / t['total']:.1%}")
    return lines


MODEL_INPUT = """\
units metal
atom_style atomic
lattice fcc 4.05
region box block 0 {reps} 0 {reps} 0 {reps}
create_box 1 box
create_atoms 1 box
mass 1 26.9815
displace_atoms all random 0.05 0.05 0.05 {seed}
include {pair}
velocity all create 300 {seed} mom yes rot yes
fix nve all nve
timestep 0.002
thermo {steps}
run {steps}
"""

NATIVE_PAIR = """\
pair_style snap
pair_coeff * * {potdir}/{name}.snapcoeff {potdir}/{name}.snapparam Al
"""


def _loop_time(log: str) -> float:
    import re

    m = re.findall(r"Loop time of ([0-9.eE+-]+) on", log)
    if not m:
        raise RuntimeError(f"no loop time in LAMMPS output:\n{log[-2000:]}")
    return float(m[-1])


def bench_model(potdir: Path, reps: int = 10, steps: int = 50, every: int = 10, ranks=(1, 2),
                repeat: int = 2) -> list[str]:
    """Loop times (s) of the shipped potentials on a (4 reps^3)-atom fcc Al cell, and the target ratios.

    Every case runs ``repeat`` times, interleaved with the others (this machine is shared and noisy); the
    shortest loop time of each is kept."""
    import subprocess
    import tempfile

    from lammps_al import runtime

    potdir = Path(potdir).resolve()
    cases = {
        "linear native snap": ("Al_linear", "native"),
        "linear native + sigma": ("Al_linear", "snap"),
        "linear mliappy + sigma": ("Al_linear", "mliappy"),
        "quadratic native snap": ("Al_quadratic", "native"),
        "quadratic mliappy + sigma": ("Al_quadratic", "mliappy"),
    }
    times: dict[tuple[str, int], float] = {}
    natoms = 4 * reps**3
    lines = [f"model benchmark: {natoms} fcc Al atoms, {steps} MD steps, sigma every {every} steps, "
             f"best of {repeat} interleaved runs"]
    with tempfile.TemporaryDirectory(prefix="lammps-al-bench-") as tmp:
        work = Path(tmp)
        (work / "native_linear.lammps").write_text(NATIVE_PAIR.format(potdir=potdir, name="Al_linear"))
        (work / "native_quadratic.lammps").write_text(NATIVE_PAIR.format(potdir=potdir, name="Al_quadratic"))
        for _ in range(repeat):
            for label, (name, mode) in cases.items():
                pair = (work / f"native_{name.split('_')[1]}.lammps" if mode == "native"
                        else potdir / f"{name}.{mode}.lammps")
                (work / f"in.{mode}.{name}").write_text(
                    MODEL_INPUT.format(reps=reps, seed=4928, pair=pair, steps=steps))
                for n in ranks:
                    cmd = runtime.mpi_command(n, str(runtime.find_lmp()), "-nocite", "-log", "none", "-in",
                                              f"in.{mode}.{name}", "-var", "lal_potdir", str(potdir),
                                              "-var", "lal_score_every", str(every))
                    proc = subprocess.run(cmd, cwd=work, env=runtime.lammps_env(), capture_output=True, text=True,
                                          timeout=1800)
                    if proc.returncode != 0:
                        raise RuntimeError(f"{label} on {n} rank(s) failed:\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}")
                    t = _loop_time(proc.stdout)
                    times[(label, n)] = min(t, times.get((label, n), float("inf")))
        for label in cases:
            for n in ranks:
                lines.append(f"  {label:<28s} {n} rank(s): {times[(label, n)]:8.2f} s "
                             f"({times[(label, n)] / steps * 1e3:7.1f} ms/step)")
    r1 = ranks[0]
    lines.append("ratios (target):")
    lines.append(f"  quadratic mliappy+sigma / native quadratic: "
                 f"{times[('quadratic mliappy + sigma', r1)] / times[('quadratic native snap', r1)]:.3f} (<= 1.05)")
    lines.append(f"  linear native+sigma / native linear:        "
                 f"{times[('linear native + sigma', r1)] / times[('linear native snap', r1)]:.3f} (<= 1.10)")
    lines.append(f"  linear mliappy+sigma / native linear:       "
                 f"{times[('linear mliappy + sigma', r1)] / times[('linear native snap', r1)]:.3f} (no target)")
    if len(ranks) > 1:
        r2 = ranks[-1]
        for label in cases:
            lines.append(f"  speed-up {r1} -> {r2} ranks, {label:<28s}: {times[(label, r1)] / times[(label, r2)]:.2f}x "
                         f"(>= 1.8)")
    return lines


FIX_INPUT = """\
units metal
atom_style atomic
atom_modify map array
lattice fcc 4.05
region box block 0 {reps} 0 {reps} 0 {reps}
create_box 1 box
create_atoms 1 box
mass 1 26.9815
reset_atoms id sort yes
replicate {replicate} {replicate} {replicate}
displace_atoms all random 0.05 0.05 0.05 {seed}
include {pair}
{fix}
velocity all create 300 {seed} mom yes rot yes loop geom
fix nve all nve
timestep {dt}
thermo {steps}
run {steps}
"""


def bench_fix(potdir: Path, reps: int = 10, steps: int = 50, every: int = 10, repeat: int = 2) -> list[str]:
    """Cost of the uncertainty fix relative to the MD loop, write time of a flagged configuration, and the
    time to cut a local environment from a 4,000- and a 32,000-atom cell."""
    import csv
    import subprocess
    import tempfile

    from lammps_al import runtime
    from lammps_al.store import read_jsonl

    potdir = Path(potdir).resolve()
    root = Path(__file__).resolve().parents[1]
    fix_snippet = root / "in_files" / "lammps_al_fix.lammps"
    pair = potdir / "Al_linear.snap.lammps"
    natoms = 4 * reps**3
    lines = [f"fix benchmark: {natoms} fcc Al atoms, linear SNAP (native mode), score every {every} steps"]

    def modify_time(text: str) -> float:
        import re

        m = re.findall(r"^Modify\s*\|\s*([0-9.eE+-]+)", text, re.M)
        return float(m[-1]) if m else float("nan")

    def run(work: Path, name: str, fix: str, replicate: int = 1, dt: float = 0.002, nsteps: int = steps,
            **variables) -> tuple[float, list[dict]]:
        (work / name).write_text(FIX_INPUT.format(reps=reps, replicate=replicate, seed=4928, pair=pair, fix=fix,
                                                  steps=nsteps, dt=dt))
        outdir = work / f"out-{name}"
        cmd = [str(runtime.find_lmp()), "-nocite", "-log", "none", "-in", name, "-var", "lal_potdir", str(potdir),
               "-var", "lal_score_every", str(every), "-var", "lal_fix_outdir", str(outdir)]
        for k, v in variables.items():
            cmd += ["-var", k, str(v)]
        proc = subprocess.run(cmd, cwd=work, env=runtime.lammps_env(), capture_output=True, text=True, timeout=3600)
        if proc.returncode != 0:
            raise RuntimeError(f"{name} failed:\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}")
        run.modify = modify_time(proc.stdout)
        run.fix_ms = sum(float(r["fix_ms"]) for r in csv.DictReader(open(p))) if (p := next(
            iter((outdir / "runs").glob("*.csv")), None)) else 0.0
        return _loop_time(proc.stdout), read_jsonl(outdir / "manifest.jsonl")

    with tempfile.TemporaryDirectory(prefix="lammps-al-bench-fix-") as tmp:
        work = Path(tmp)
        loops, modify, fix_seconds = {"without": [], "with": []}, {"without": [], "with": []}, []
        for _ in range(repeat):
            loops["without"].append(run(work, "in.without", "")[0])
            modify["without"].append(run.modify)
            loops["with"].append(run(work, "in.with", f"include {fix_snippet}", lal_flag=100.0, lal_halt=1000.0)[0])
            modify["with"].append(run.modify)
            fix_seconds.append(run.fix_ms / 1e3)
        loop = min(loops["with"])
        lines.append(f"  MD loop, best of {repeat}: without the fix {min(loops['without']):.2f} s, with it "
                     f"{loop:.2f} s (whole-loop differences here are dominated by run-to-run noise in Pair)")
        lines.append(f"  the fix's own time (its callbacks, every {every} steps, nothing flagged): "
                     f"{min(fix_seconds) * 1e3:.1f} ms = {min(fix_seconds) / loop:.2%} of the loop (target <= 3 %)")
        lines.append(f"  LAMMPS Modify time (scoring + fix + integrator): without {min(modify['without']):.3f} s, "
                     f"with {min(modify['with']):.3f} s: {(min(modify['with']) - min(modify['without'])) / loop:+.2%} "
                     f"of the loop")
        _, written = run(work, "in.write", f"include {fix_snippet}", nsteps=3 * every, lal_flag=1e-9, lal_halt=1000.0,
                         lal_min_write_interval=0, lal_max_writes=3, lal_dedup=0)
        times = [e["write_seconds"] for e in written]
        lines.append(f"  writing one flagged {natoms}-atom configuration: {min(times):.3f} s (best of {len(times)}; "
                     f"target <= 0.1 s)")
        cut = {}
        for replicate in (1, 2):
            _, envs = run(work, f"in.env{replicate}", f"include {fix_snippet}", replicate=replicate, dt=0.0,
                          nsteps=every, lal_flag=1e-9, lal_halt=1000.0, lal_local_above=100, lal_max_envs=4)
            cut[natoms * replicate**3] = min(e["cut_seconds"] for e in envs)
        (n_small, t_small), (n_big, t_big) = sorted(cut.items())
        lines.append(f"  cutting a local environment: {t_small * 1e3:.1f} ms from {n_small} atoms, {t_big * 1e3:.1f} ms "
                     f"from {n_big} atoms; ratio {t_big / t_small:.2f} (target within 20 %)")
    return lines


def calls_to_target(history: list[dict], target: float) -> int | None:
    """Oracle calls (labels in the fit) of the first refit whose held-out force RMSE is <= target."""
    for e in history:
        f = e["held_out"]["force_rmse_eV_A"]
        if f is not None and f <= target:
            return int(e["labels_total"])
    return None


def bench_selection(config_path: Path, target: float = 0.05, iterations: int = 8,
                    workdir: Path | None = None, show_progress: bool = False, report=print) -> dict:
    """The loop (uncertainty + diversity selection) against random selection from the same exploration MD
    with the same budget per iteration (max_select), from one shared starting set and first fit. Each arm
    runs until its refit reaches ``target`` eV/A on the held-out MD set or ``iterations`` pass; convergence
    by sigma does not stop either arm. Oracle calls count every label, the shared starting set included."""
    import dataclasses
    import json
    import shutil

    from lammps_al.errors import LammpsAlError
    from lammps_al.loop import iter_dir, load_loop_config, run_loop, start_stage
    from lammps_al.potential import atomic_write_text

    cfg = load_loop_config(config_path)
    root = (Path(workdir) if workdir is not None
            else cfg.loop.workdir.with_name(cfg.loop.workdir.name + "_bench_selection"))
    made_by = root / "config.toml"          # a bench folder resumes only the config that made it
    if made_by.is_file() and made_by.read_text() != Path(config_path).read_text():
        raise LammpsAlError(f"{root} holds a selection benchmark made with another config ({made_by} differs "
                            f"from {config_path}): give another --workdir or remove {root}")
    root.mkdir(parents=True, exist_ok=True)
    if not made_by.is_file():
        atomic_write_text(made_by, Path(config_path).read_text())
    shared = dataclasses.replace(cfg, loop=dataclasses.replace(cfg.loop, workdir=root / "start"))
    shared = dataclasses.replace(shared, fit=dataclasses.replace(
        cfg.fit, training=dataclasses.replace(cfg.fit.training, dir=root / "start" / "training")))
    start, first = start_stage(shared, show_progress)     # both arms copy it, held-out errors included
    start_error = first["held_out"]["force_rmse_eV_A"]
    out = {"config": str(config_path), "target_force_rmse_eV_A": target, "max_select": cfg.loop.max_select,
           "start_labels": start["labelled"], "start_force_rmse_eV_A": start_error, "arms": {}}
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
                           stop=lambda e: (e["held_out"]["force_rmse_eV_A"] or 1e9) <= target)
        out["arms"][arm] = {"calls_to_target": calls_to_target(history, target),
                            "curve": [(e["labels_total"], e["held_out"]["force_rmse_eV_A"]) for e in history]}
    u, r = out["arms"]["uncertainty"]["calls_to_target"], out["arms"]["random"]["calls_to_target"]
    out["ratio"] = u / r if u and r else None
    out["ratio_beyond_start"] = ((u - start["labelled"]) / (r - start["labelled"])
                                 if u and r and r > start["labelled"] else None)
    out["matched_accuracy"] = matched_accuracy(out)
    atomic_write_text(root / "bench_selection.json", json.dumps(out, indent=2, default=float))
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
