"""The active-learning loop: explore with MD, select what the fix flagged, label it, refit; until converged.

State lives on disk, one folder per iteration::

    WORKDIR/training/                 labelled store (manifest.jsonl; labels are never duplicated)
    WORKDIR/iter_000/potential/       the potential this iteration explores with
    WORKDIR/iter_000/explore/         LAMMPS logs of the exploration runs
    WORKDIR/iter_000/flagged/         what the fix wrote (manifest.jsonl, runs/*.csv)
    WORKDIR/iter_000/STAGE.json       written atomically when a stage ends: explore, select, label, fit

``--resume`` skips every stage whose JSON exists; labelling skips labels already in the store, so a kill
at any moment loses nothing and duplicates nothing. Iteration 0 first builds and labels the starting
set. Convergence: the trajectory-averaged max per-atom sigma of the exploration runs stays below
``sigma_target`` for ``converged_iterations`` iterations and the fraction of runs that flag anything is at
most ``flag_rate``.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from lammps_al import runtime
from lammps_al.config import Config, config_from_dict, read_toml
from lammps_al.errors import ConfigError, LammpsAlError
from lammps_al.potential import atomic_write_text

log = logging.getLogger(__name__)
ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class ExploreRun:
    name: str
    input: Path
    variables: dict = field(default_factory=dict)
    kind: str = ""


@dataclass(frozen=True)
class LoopSettings:
    workdir: Path
    iterations: int = 5
    nprocs: int = 2
    max_select: int = 12
    sigma_target: float = 0.02
    converged_iterations: int = 2
    flag_rate: float = 0.25
    seed: int = 0
    model_snippet: str = "mliappy"
    potential_name: str = "Al"
    start_size: str = "standard"        # "standard" (EAM liquid included) or "small" (<= 8 atoms, for DFT)
    lammps_variables: dict = field(default_factory=dict)   # -var NAME VALUE for every exploration run
    selection: str = "uncertainty"      # "uncertainty" (the method) or "random" (its baseline, for benchmarks)
    explore: tuple[ExploreRun, ...] = ()


@dataclass
class LoopConfig:
    loop: LoopSettings
    fit: Config            # oracle, descriptor, fit, groups (the same sections as lammps-al fit)
    source: Path


LOOP_KEYS = {f.name for f in dataclasses.fields(LoopSettings)} - {"explore"}


def load_loop_config(path: Path) -> LoopConfig:
    path = Path(path)
    raw = read_toml(path)
    loop_raw = dict(raw.pop("loop", {}))
    explore_raw = raw.pop("explore", [])
    unknown = set(loop_raw) - LOOP_KEYS
    if unknown:
        raise ConfigError(f"{path}: unknown key(s) {sorted(unknown)} in [loop]; allowed: {sorted(LOOP_KEYS)}")
    base = path.parent.resolve()
    runs = []
    for i, r in enumerate(explore_raw):
        extra = set(r) - {"name", "input", "variables", "kind"}
        if extra:
            raise ConfigError(f"{path}: unknown key(s) {sorted(extra)} in [[explore]] {i}; allowed: "
                              f"['input', 'kind', 'name', 'variables']")
        if "input" not in r or "name" not in r:
            raise ConfigError(f"{path}: [[explore]] {i} needs name and input")
        inp = Path(r["input"])
        inp = inp if inp.is_absolute() else (ROOT / inp if (ROOT / inp).exists() else base / inp)
        if not inp.is_file():
            raise ConfigError(f"{path}: [[explore]] {r['name']}: input {r['input']} not found (looked in {ROOT} "
                              f"and {base})")
        runs.append(ExploreRun(r["name"], inp, dict(r.get("variables", {})), r.get("kind", r["name"])))
    if not runs:
        raise ConfigError(f"{path}: no [[explore]] runs; add at least one")
    workdir = Path(loop_raw.pop("workdir", "runs/loop"))
    workdir = workdir if workdir.is_absolute() else base / workdir
    try:
        settings = LoopSettings(workdir=workdir, explore=tuple(runs), **loop_raw)
    except TypeError as exc:
        raise ConfigError(f"{path}: [loop]: {exc}") from exc
    if settings.iterations < 1 or settings.nprocs < 1 or settings.max_select < 1:
        raise ConfigError(f"{path}: iterations, nprocs and max_select must be >= 1")
    if not settings.sigma_target > 0 or not 0 <= settings.flag_rate <= 1:
        raise ConfigError(f"{path}: sigma_target must be > 0 and flag_rate in [0, 1]")
    if settings.start_size not in ("standard", "small"):
        raise ConfigError(f"{path}: start_size must be 'standard' or 'small', got {settings.start_size!r}")
    if settings.selection not in ("uncertainty", "random"):
        raise ConfigError(f"{path}: selection must be 'uncertainty' or 'random', got {settings.selection!r}")
    if settings.model_snippet not in ("mliappy", "snap"):
        raise ConfigError(f"{path}: model_snippet must be 'mliappy' or 'snap', got {settings.model_snippet!r}")
    raw.setdefault("training", {})["dir"] = str(workdir / "training")
    raw.setdefault("fit", {})["name"] = settings.potential_name
    fit = config_from_dict(raw, path)
    if fit.descriptor is None:
        raise ConfigError(f"{path} needs a [descriptor] section for the fits")
    return LoopConfig(settings, fit, path)


# ---- stage bookkeeping -------------------------------------------------------------------------------

def iter_dir(settings: LoopSettings, k: int) -> Path:
    return settings.workdir / f"iter_{k:03d}"


def stage_done(directory: Path, stage: str) -> dict | None:
    path = directory / f"{stage}.json"
    return json.loads(path.read_text()) if path.is_file() else None


def mark_stage(directory: Path, stage: str, data: dict) -> dict:
    path = directory / f"{stage}.json"
    try:
        directory.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, json.dumps(data, indent=2, default=float))
    except OSError as exc:
        raise LammpsAlError(f"cannot write {path}: {exc.strerror or exc}. Every label so far is kept; free space "
                            f"(or fix the folder) and continue with lammps-al loop CONFIG --resume") from exc
    return data


# ---- stages ------------------------------------------------------------------------------------------

def bootstrap(cfg: LoopConfig, show_progress: bool) -> dict:
    """Iteration 0's starting set: seeded structures labelled by the oracle, then the first fit."""
    from lammps_al.label import label_with_oracle
    from lammps_al.store import LabelledStore
    from lammps_al.structures import starting_set

    s = cfg.loop
    d = iter_dir(s, 0)
    done = stage_done(d, "start")
    if done:
        return done
    t = time.perf_counter()
    configs = starting_set(cfg.fit.descriptor.elements[0], seed=s.seed, size=s.start_size)
    for i, atoms in enumerate(configs):
        atoms.info["source"] = f"start/{atoms.info['kind']}/{i}"
    store = LabelledStore(cfg.fit.training.dir)
    labelled = failed = 0
    for group in sorted({str(a.info.get("group", "start")) for a in configs}):   # "start" and "elastic"
        members = [a for a in configs if str(a.info.get("group", "start")) == group]
        summary = label_with_oracle(members, cfg.fit.oracle, store, group=group, show_progress=show_progress)
        labelled += summary.labelled
        failed += len(summary.failed)
    return mark_stage(d, "start", {"structures": len(configs), "labelled": labelled, "failed": failed,
                                   "seconds": time.perf_counter() - t})


def fit_stage(cfg: LoopConfig, k: int, show_progress: bool) -> dict:
    """Fit on everything labelled so far; the result is iteration k's potential."""
    from lammps_al.retrain import fit_potential

    d = iter_dir(cfg.loop, k)
    done = stage_done(d, "fit")
    if done:
        return done
    t = time.perf_counter()
    config = dataclasses.replace(cfg.fit, fit=dataclasses.replace(cfg.fit.fit, output_dir=d / "potential"))
    outcome = fit_potential(config, show_progress=show_progress)
    metrics = outcome.metrics
    return mark_stage(d, "fit", {
        "potential": str(outcome.paths["potential"]), "n_configurations": config_count(metrics),
        "train": metrics["train"].get("*ALL", {}), "test": metrics["test"].get("*ALL", {}),
        "seconds": time.perf_counter() - t})


def held_out_stage(cfg: LoopConfig, k: int) -> dict:
    """Errors of iteration k's potential on the held-out reference MD set (made once, cached)."""
    from lammps_al.validate import held_out_errors, labelled_held_out_set

    oracle = cfg.fit.oracle
    if oracle.name != "eam" or oracle.settings.get("potential", "Al_mm.eam.fs") != "Al_mm.eam.fs":
        # the held-out snapshots are labelled by the EAM reference; another oracle's potential would be
        # scored against a different reference (different absolute energies), which means nothing
        return {"skipped": f"the held-out MD set is labelled by Al_mm.eam.fs, not by the oracle {oracle.name!r}",
                "energy_rmse_eV_atom": None, "force_rmse_eV_A": None, "spearman_sigma_vs_force_error": None}
    snapshots = labelled_held_out_set(cfg.loop.workdir / "held_out.extxyz")
    potential = iter_dir(cfg.loop, k) / "potential" / f"{cfg.loop.potential_name}.npz"
    return held_out_errors(potential, snapshots)


HELD_OUT_KEYS = ("energy_rmse_eV_atom", "force_rmse_eV_A", "spearman_sigma_vs_force_error")


def start_stage(cfg: LoopConfig, show_progress: bool) -> tuple[dict, dict]:
    """Iteration 0: the starting set labelled, the first fit and its held-out errors (cached in
    iter_000/held_out.json). Returns the start stage's record and the learning curve's first point."""
    start = bootstrap(cfg, show_progress)
    first = fit_stage(cfg, 0, show_progress)
    d0 = iter_dir(cfg.loop, 0)
    held = stage_done(d0, "held_out") or mark_stage(d0, "held_out", held_out_stage(cfg, 0))
    return start, {"labels_total": first["n_configurations"], "held_out": {k: held[k] for k in HELD_OUT_KEYS}}


def config_count(metrics: dict) -> int:
    return sum(v.get("energy", {}).get("count", 0) for split in ("train", "test")
               for g, v in metrics[split].items() if g == "*ALL")


RANDOM_POOL_VARIABLES = {"lal_flag": 1e-12, "lal_max_writes": 100000, "lal_dedup": 0}


def explore_stage(cfg: LoopConfig, k: int, show_progress: bool = True) -> dict:
    """Run every exploration input with iteration k's potential and the fix; record what happened."""
    s = cfg.loop
    d = iter_dir(s, k)
    done = stage_done(d, "explore")
    if done:
        return done
    t0 = time.perf_counter()
    potdir = d / "potential"
    snippet = potdir / f"{s.potential_name}.{s.model_snippet}.lammps"
    flagged = d / "flagged"
    logs = d / "explore"
    logs.mkdir(parents=True, exist_ok=True)
    from lammps_al.progress import ProgressBar

    runs = {}
    bar = ProgressBar(len(s.explore), f"exploring (iteration {k})", enabled=show_progress)
    for j, run in enumerate(s.explore):
        run_id = run.name
        seed = 1000 * (s.seed + 1) + 37 * k + j + 1
        cmd = runtime.mpi_command(s.nprocs, str(runtime.find_lmp()), "-nocite", "-in", str(run.input),
                                  "-log", str(logs / f"{run_id}.log"), "-screen", "none",
                                  "-var", "potential", str(snippet), "-var", "lal_potdir", str(potdir),
                                  "-var", "lal_fix_outdir", str(flagged), "-var", "lal_run_id", run_id,
                                  "-var", "seed", str(seed))
        variables = {**s.lammps_variables, **run.variables}
        if s.selection == "random":     # the baseline draws from everything the MD visits: write every
            variables.update(RANDOM_POOL_VARIABLES)   # lal_min_write_interval steps, whatever the sigma
        for name, value in variables.items():
            cmd += ["-var", name, str(value)]
        t = time.perf_counter()
        proc = subprocess.run(cmd, cwd=ROOT, env=runtime.lammps_env(), capture_output=True, text=True,
                              stdin=subprocess.DEVNULL, timeout=7200)
        text = proc.stdout + proc.stderr + _read(logs / f"{run_id}.log")
        status = "completed" if proc.returncode == 0 else ("halted" if "lammps_al: HALT" in text else "crashed")
        steps = read_run_log(flagged / "runs" / f"{run_id}.csv")
        runs[run_id] = {"kind": run.kind, "status": status, "seconds": time.perf_counter() - t, "seed": seed,
                        "scoring_steps": len(steps), "flagged": any(r["action"] != "none" for r in steps),
                        "mean_max_sigma": float(np.mean([r["max_sigma"] for r in steps])) if steps else None,
                        "max_sigma": [r["max_sigma"] for r in steps], "temperature": [r["temp_K"] for r in steps]}
        if status == "crashed":
            runs[run_id]["error"] = "\n".join(text.strip().splitlines()[-15:])
            log.warning("exploration run %s crashed (exit %d); its log: %s", run_id, proc.returncode,
                        logs / f"{run_id}.log")
        bar.update()
    bar.close()
    sig = [r["mean_max_sigma"] for r in runs.values() if r["mean_max_sigma"] is not None]
    return mark_stage(d, "explore", {
        "runs": runs, "trajectory_sigma": float(np.mean(sig)) if sig else None,
        "flag_fraction": float(np.mean([r["flagged"] for r in runs.values()])) if runs else 0.0,
        "crashed": [n for n, r in runs.items() if r["status"] == "crashed"], "seconds": time.perf_counter() - t0})


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""


def read_run_log(path: Path) -> list[dict]:
    import csv

    if not path.is_file():
        return []
    out = []
    for row in csv.DictReader(open(path)):
        out.append({"step": int(row["step"]), "temp_K": float(row["temp_K"]), "max_sigma": float(row["max_sigma"]),
                    "mean_sigma": float(row["mean_sigma"]), "action": row["action"]})
    return out


def candidate_features(cfg: LoopConfig, k: int, files: list[Path]) -> np.ndarray:
    """Per candidate configuration, the bispectrum of its most uncertain atom (the environment that made
    the fix flag it), computed with iteration k's descriptor settings; columns scaled to unit spread."""
    from ase.io import read

    from lammps_al.descriptors import SnapWorker
    from lammps_al.potential import load

    potential = load(iter_dir(cfg.loop, k) / "potential" / f"{cfg.loop.potential_name}.npz")
    nd = potential.descriptor.n_descriptors
    worker = SnapWorker(potential.descriptor, potential.reference)
    rows = []
    try:
        for f in files:
            atoms = read(f)
            block = worker.compute(atoms)
            sigma = atoms.arrays.get("per_atom_sigma")
            i = int(np.argmax(sigma)) if sigma is not None else 0
            rows.append(block.per_atom[i, :nd])
    finally:
        worker.close()
    X = np.array(rows, dtype=float)
    spread = X.std(axis=0)
    return X / np.where(spread > 0, spread, 1.0)


def diverse_selection(sigma: np.ndarray, features: np.ndarray, kinds: list[str], cap: int) -> list[int]:
    """Greedy: kinds take turns; within a kind the next pick maximises sigma times the descriptor-space distance
    to everything picked so far (the most uncertain first). Uncertain and different from what is chosen."""
    sigma = np.asarray(sigma, dtype=float)
    chosen: list[int] = []
    min_dist = np.full(len(sigma), np.inf)
    order = sorted(set(kinds))
    left = {kind: [i for i, k in enumerate(kinds) if k == kind] for kind in order}
    while len(chosen) < cap and any(left.values()):
        for kind in order:
            if not left[kind] or len(chosen) >= cap:
                continue
            cand = left[kind]
            score = sigma[cand] * (min_dist[cand] if chosen else 1.0)
            pick = cand[int(np.argmax(score))]
            chosen.append(pick)
            cand.remove(pick)
            min_dist = np.minimum(min_dist, np.linalg.norm(features - features[pick], axis=1))
    return chosen


def select_stage(cfg: LoopConfig, k: int) -> dict:
    """Up to max_select flagged configurations. ``selection = "uncertainty"``: structure kinds take turns and
    within a kind the most uncertain configuration farthest in descriptor space from those already chosen
    goes next. ``"random"``: uniformly at random (seeded) from everything the exploration wrote (the baseline
    of ``lammps-al bench selection``)."""
    from lammps_al.store import read_jsonl

    d = iter_dir(cfg.loop, k)
    done = stage_done(d, "select")
    if done:
        return done
    s = cfg.loop
    entries = [e for e in read_jsonl(d / "flagged" / "manifest.jsonl") if (d / "flagged" / e["file"]).is_file()]
    kind_of = {r.name: r.kind for r in s.explore}
    kinds = [kind_of.get(e["run_id"], e["run_id"]) for e in entries]
    cap = min(s.max_select, len(entries))
    if s.selection == "random":
        rng = np.random.default_rng(1000 * s.seed + k)
        chosen = sorted(rng.choice(len(entries), size=cap, replace=False).tolist()) if cap else []
    elif cap:
        features = candidate_features(cfg, k, [d / "flagged" / e["file"] for e in entries])
        chosen = diverse_selection(np.array([e["max_sigma"] for e in entries]), features, kinds, cap)
    else:
        chosen = []
    return mark_stage(d, "select", {"flagged": len(entries), "selection": s.selection, "selected": [
        {"file": str(d / "flagged" / entries[i]["file"]), "run_id": entries[i]["run_id"],
         "kind": kinds[i], "max_sigma": entries[i]["max_sigma"]}
        for i in chosen]})


def label_stage(cfg: LoopConfig, k: int, show_progress: bool) -> dict:
    from ase.io import read

    from lammps_al.label import label_with_oracle
    from lammps_al.store import LabelledStore

    d = iter_dir(cfg.loop, k)
    done = stage_done(d, "label")
    if done:
        return done
    t = time.perf_counter()
    selected = stage_done(d, "select")["selected"]
    configs = []
    for item in selected:
        atoms = read(item["file"])
        atoms.info["source"] = item["file"]
        configs.append(atoms)
    summary = label_with_oracle(configs, cfg.fit.oracle, LabelledStore(cfg.fit.training.dir), group=f"iter{k:03d}",
                                show_progress=show_progress)
    return mark_stage(d, "label", {"labelled": summary.labelled, "skipped": summary.skipped,
                                   "failed": [{"source": s, "error": e.splitlines()[0]} for s, e in summary.failed],
                                   "seconds": time.perf_counter() - t})


def calibration(cfg: LoopConfig, k: int) -> dict:
    """The Bayesian uncertainty of each newly labelled configuration's energy per atom, sqrt(Phi^T Sigma Phi)/N
    with Phi the sum of its atoms' feature vectors, from the potential that flagged it, against that potential's
    actual energy error per atom: a scale factor (RMS error / RMS sigma) and the Spearman rank correlation.
    It needs no extra reference calculation: these configurations were labelled anyway."""
    from scipy.stats import spearmanr

    from lammps_al.descriptors import SnapWorker
    from lammps_al.models.snap import model_from_potential
    from lammps_al.potential import load
    from lammps_al.store import LabelledStore

    d = iter_dir(cfg.loop, k)
    potential = load(d / "potential" / f"{cfg.loop.potential_name}.npz")
    model = model_from_potential(potential)
    group = f"iter{k:03d}"
    labelled = [a for a in LabelledStore(cfg.fit.training.dir).load() if a.info.get("group") == group]
    if len(labelled) < 3:
        return {"n": len(labelled)}
    worker = SnapWorker(potential.descriptor, potential.reference)
    sig, err = [], []
    try:
        for atoms in labelled:
            blk = worker.compute(atoms)
            B = blk.per_atom[:, :potential.descriptor.n_descriptors]
            e_pred = float(model.energies(blk.types, B).sum()) + blk.ref_energy
            phi = model.features(B)
            if potential.covariance is None:
                sig.append(np.nan)
            else:
                nf = phi.shape[1]
                total = np.zeros(potential.coefficients.size)
                for e in range(len(potential.elements)):
                    total[e * nf:(e + 1) * nf] = phi[blk.types == e].sum(axis=0)
                sig.append(float(np.sqrt(max(total @ potential.covariance @ total, 0.0))) / len(atoms))
            err.append(abs(e_pred - atoms.info["REF_energy"]) / len(atoms))
    finally:
        worker.close()
    sig, err = np.array(sig), np.array(err)
    ok = np.isfinite(sig)
    rho = float(spearmanr(sig[ok], err[ok]).statistic) if ok.sum() >= 3 else float("nan")
    return {"n": int(ok.sum()), "spearman": rho, "scale": float(np.sqrt(np.mean(err[ok] ** 2) / np.mean(sig[ok] ** 2))),
            "sigma": sig.tolist(), "energy_error_per_atom": err.tolist()}


# ---- the loop ------------------------------------------------------------------------------------------

def converged(history: list[dict], settings: LoopSettings) -> bool:
    tail = history[-settings.converged_iterations:]
    return (len(tail) == settings.converged_iterations and all(
        h["trajectory_sigma"] is not None and h["trajectory_sigma"] < settings.sigma_target
        and h["flag_fraction"] <= settings.flag_rate for h in tail))


def run_loop(cfg: LoopConfig, resume: bool = False, show_progress: bool = True, report=print,
             stop=None) -> list[dict]:
    """The loop; ``stop(entry)`` returning True ends it after that iteration (benchmarks stop at a target)."""
    s = cfg.loop
    if s.workdir.exists() and any(s.workdir.iterdir()) and not resume:
        raise LammpsAlError(f"{s.workdir} already holds a loop: continue it with --resume, or choose another "
                            f"[loop] workdir")
    s.workdir.mkdir(parents=True, exist_ok=True)
    history: list[dict] = []
    start, start_point = start_stage(cfg, show_progress)
    report(f"starting set: {start['structures']} structures, {start['labelled']} labelled now")
    for k in range(s.iterations):
        d = iter_dir(s, k)
        t = {}
        explored = explore_stage(cfg, k, show_progress)
        t["explore"] = explored["seconds"]
        selected = select_stage(cfg, k)
        labelled = label_stage(cfg, k, show_progress)
        t["label"] = labelled["seconds"]
        calib = stage_done(d, "calibration") or mark_stage(d, "calibration", calibration(cfg, k))
        nxt = iter_dir(s, k + 1)
        nxt.mkdir(parents=True, exist_ok=True)
        fitted = fit_stage(cfg, k + 1, show_progress)
        t["fit"] = fitted["seconds"]
        held = stage_done(nxt, "held_out") or mark_stage(nxt, "held_out", held_out_stage(cfg, k + 1))
        entry = {"iteration": k, "trajectory_sigma": explored["trajectory_sigma"],
                 "flag_fraction": explored["flag_fraction"], "flagged": selected["flagged"],
                 "selected": len(selected["selected"]), "labelled": labelled["labelled"],
                 "labels_total": fitted["n_configurations"], "test": fitted["test"], "train": fitted["train"],
                 "held_out": {k2: held[k2] for k2 in HELD_OUT_KEYS},
                 "calibration": {k2: v for k2, v in calib.items() if k2 in ("n", "spearman", "scale")},
                 "crashed": explored["crashed"], "seconds": t}
        history.append(entry)
        mark_stage(s.workdir, "history", {"start": start_point, "iterations": history})
        for line in summary_lines(entry, s):
            report(line)
        if stop is not None and stop(entry):
            break
        if converged(history, s):
            report(f"converged after iteration {k}: trajectory-averaged sigma below {s.sigma_target} and flag "
                   f"fraction <= {s.flag_rate} for {s.converged_iterations} iterations")
            break
    final = iter_dir(s, len(history)) / "potential" / f"{s.potential_name}.npz"
    mark_stage(s.workdir, "history", {"start": start_point, "iterations": history, "final_potential": str(final),
                                      "converged": converged(history, s)})
    from lammps_al.report import write_plots

    for path in write_plots(s.workdir):
        report(f"plot: {path}")
    return history


def summary_lines(e: dict, s: LoopSettings) -> list[str]:
    held = e["held_out"]
    if held["force_rmse_eV_A"] is None:
        refit = "held-out MD set skipped (it is labelled by the EAM reference, not by this oracle)"
    else:
        refit = (f"energy RMSE {held['energy_rmse_eV_atom'] * 1e3:.2f} meV/atom, force RMSE "
                 f"{held['force_rmse_eV_A']:.4f} eV/A on the held-out MD set, Spearman(sigma, error) "
                 f"{held['spearman_sigma_vs_force_error']:.2f}")
    c = e["calibration"]
    sig = e["trajectory_sigma"]
    lines = [f"iteration {e['iteration']}: trajectory sigma {sig if sig is None else f'{sig:.4g}'} "
             f"(target {s.sigma_target:g}), runs flagging {e['flag_fraction']:.0%}, flagged {e['flagged']}, "
             f"selected {e['selected']}, labelled {e['labelled']} (total {e['labels_total']})",
             f"  refit: {refit}; calibration: "
             f"n={c.get('n')}, Spearman {c.get('spearman', float('nan')):.2f}, scale {c.get('scale', float('nan')):.2f}",
             "  time: " + ", ".join(f"{k} {v:.0f} s" for k, v in e["seconds"].items())]
    if e["crashed"]:
        lines.append(f"  CRASHED exploration runs: {', '.join(e['crashed'])} (see their logs)")
    return lines
