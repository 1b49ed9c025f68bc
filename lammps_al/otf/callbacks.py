"""What every rank runs for on-the-fly learning, called from ``in_files/lammps_al_otf.lammps``.

``setup`` (once, after the potential snippet and the fix snippet): every rank reads the config; rank 0 builds
the learner and the posterior of the store, the others wait in the broadcast that brings it; every rank
installs it in the running model. ``end_of_step`` (every ``lal_score_every`` steps, after the fix's own
callback): on a step where the fix wrote a configuration, rank 0 labels and updates and one broadcast brings
the new coefficients and covariance; on the other steps every rank updates the flag threshold from the same
history (the fix's allreduced scores: no communication) and checks convergence. ``finish`` (after the run):
the final posterior with the evidence maximised again, the plot.
"""

from __future__ import annotations

import logging
from collections import deque
from pathlib import Path

import numpy as np

from lammps_al.core.errors import InputScriptError, LammpsAlError
from lammps_al.core.potential import COEFFICIENTS, COVARIANCE, Potential
from lammps_al.inrun import adapter
from lammps_al.inrun.callbacks import fail_setup, guarded, lammps_handle, mpi_comm
from lammps_al.inrun.fix import active_fix
from lammps_al.models.registry import calibration_key, model_for

log = logging.getLogger(__name__)
OFF = 1e300          # a threshold nothing reaches


class OTFState:
    def __init__(self, comm, otf, learner=None):
        self.comm, self.otf, self.learner = comm, otf, learner
        self.rank = comm.Get_rank()
        self.learning = True
        self.finished = False
        self.history: deque = deque(maxlen=otf.window)
        self.below_since: float | None = None     # simulated time (ps) the trajectory average fell below target
        self.trajectory: deque = deque()          # (time_ps, rms_sigma) within converge_ps
        self.flag = None
        self.updates = 0


_STATE: OTFState | None = None


def install(payload: dict) -> None:
    """Put the payload's coefficients and covariance into the running model on this rank (in place: the ML-IAP
    model object LAMMPS calls stays the same)."""
    scoring = adapter.active_scoring()
    old = scoring.potential
    arrays = {COEFFICIENTS: payload["coefficients"], COVARIANCE: payload["covariance"]}
    if payload.get("scale") is not None:         # bayes_force in eV/A, calibrated on the labels so far
        arrays[calibration_key("bayes_force")] = np.array([payload["scale"]])
    potential = Potential(elements=old.elements, model=old.model, descriptor=old.descriptor,
                          reference=old.reference, arrays=arrays)
    model = model_for(potential)
    from lammps_al.models.registry import make_scorer

    scorer = make_scorer(potential, model, scoring.scorer_name)
    scoring.model, scoring.scorer, scoring.potential = model, scorer, potential
    if adapter._FORCE is not None:               # a force-feature scorer writes sigma from its own callback
        adapter._FORCE.scorer = scorer
    fix = active_fix()
    fix.potential_hash = potential.content_hash()
    fix.written_descriptors = []                 # near-duplicates are judged against what the new model knows


def _checked(config_path: str):
    """The config and the running potential's scoring, or the first thing wrong with them."""
    from lammps_al.otf.config import load_otf_config

    config, otf = load_otf_config(Path(config_path))
    scoring = adapter.active_scoring()
    if not isinstance(scoring, adapter.ScoredModel):
        raise InputScriptError("on-the-fly learning updates the Python model in place: include a potential's "
                               "mliappy snippet (NAME.mliappy.lammps) before lammps_al_otf.lammps")
    if COVARIANCE not in scoring.potential.arrays or scoring.potential.model not in ("linear", "quadratic"):
        raise InputScriptError(f"on-the-fly learning needs a Bayesian SNAP potential (linear or quadratic with a "
                               f"posterior covariance); {scoring.potential.model!r} potential without one given")
    if scoring.scorer_name not in ("bayes", "bayes_force"):
        raise InputScriptError(f"lal_scorer = {scoring.scorer_name!r}: on-the-fly learning scores with the "
                               f"posterior it updates; set -var lal_scorer bayes_force (or bayes)")
    return config, otf, scoring


def check(ptr, config_path: str) -> None:
    """Before the fix is set up: the config and the potential (a clear message on every rank otherwise)."""
    lmp = lammps_handle(ptr)
    try:
        _checked(config_path)
    except LammpsAlError as exc:
        fail_setup(str(exc), lmp)


def setup(ptr, config_path: str, outdir: str) -> None:
    global _STATE
    lmp = lammps_handle(ptr)
    comm = mpi_comm(lmp)
    import ase.parallel

    # ASE broadcasts what read() returns over its own MPI world when it finds one: rank 0 reads files alone
    # here, while the other ranks wait in this module's broadcasts, so ASE must not
    ase.parallel.world = ase.parallel.DummyMPI()
    try:
        config, otf, scoring = _checked(config_path)
        if active_fix() is None:
            raise InputScriptError("the uncertainty fix is not set up: lammps_al_otf.lammps includes it; include "
                                   "the OTF snippet after the potential snippet only")
    except LammpsAlError as exc:
        fail_setup(str(exc), lmp)
    state = OTFState(comm, otf)
    payload = None
    if state.rank == 0:
        try:
            from mpi4py import MPI

            from lammps_al.otf.learner import Learner

            state.learner = Learner(config, otf, Path(outdir), scoring.potential, comm_self=MPI.COMM_SELF)
            payload = state.learner.start()
        except LammpsAlError as exc:
            payload = {"error": str(exc)}
    payload = comm.bcast(payload, root=0)
    if "error" in payload:
        fail_setup(payload["error"], lmp)
    install(payload)
    state.flag = otf.flag_floor
    fix = active_fix()
    fix.settings.flag, fix.settings.halt = state.flag, OFF       # the fix halts nothing while learning
    _STATE = state
    if state.rank == 0:
        log.warning("lammps_al otf: %d labels in the store, model %s, flag threshold %.4g, target %.4g",
                    payload["labels_total"], payload["model"], state.flag, otf.target)


@guarded
def end_of_step(ptr) -> None:
    state = _STATE
    if state is None or state.finished:
        return
    fix = active_fix()
    scores = fix.last_scores
    step = int(lammps_handle(ptr).extract_global("ntimestep"))
    if scores.get("step") != step:
        return
    otf = state.otf
    if not state.learning:
        # converged: plain MD with the final model, until the error passes the last flag threshold again (a
        # heating ramp reaching what the model has not seen): then learning resumes
        if not scores["max_sigma"] >= state.flag:
            return
        state.learning = True
        state.trajectory.clear()
        state.below_since = None
        fix.settings.flag, fix.settings.halt = state.flag, OFF
        if state.rank == 0:
            state.learner.record({**scores, "flag": state.flag, "action": "resumed"})
            log.warning("lammps_al otf: learning resumes at step %d: max sigma %.4g >= flag threshold %.4g", step,
                        scores["max_sigma"], state.flag)
        return
    wrote = fix.last_write_step == step          # the same on every rank
    row = {**scores, "flag": state.flag, "action": "none", "labels": "", "model": ""}
    updated = False
    if wrote:
        payload = state.learner.learn(step) if state.rank == 0 else None
        payload = state.comm.bcast(payload, root=0)
        if payload["action"] != "failed":
            updated = True
            install(payload)
            state.updates += 1
            state.trajectory.clear()
            state.below_since = None
        row.update(action=payload["action"], oracle_s=payload.get("oracle_s", 0.0),
                   update_s=payload.get("update_s", 0.0), log_evidence=payload.get("log_evidence", ""),
                   labels=payload.get("labels_total", 0), model=payload.get("model", ""),
                   scale=payload.get("scale") or "", crystal=payload.get("crystal", ""),
                   check_s=payload.get("check_s", ""))
    if not updated and scores["max_sigma"] >= otf.halt_factor * otf.target:
        # far out of the domain and nothing learnt from it (the oracle failed, or no write was allowed): stop
        # cleanly here instead of running on into garbage
        fix._halt(lammps_handle(ptr), step, scores["max_sigma"], scores["temp_K"],
                  f"max per-atom uncertainty {scores['max_sigma']:.4g} >= [otf] halt_factor x target = "
                  f"{otf.halt_factor * otf.target:.4g} at step {step} and no label could be learnt from it "
                  f"(see {Path(state.learner.outdir if state.learner else '.') / 'training' / 'manifest.jsonl'})")
        row["action"] = "halt"
        if state.rank == 0:
            state.learner.record(row)
        return
    # the flag threshold follows the recent history of the error (every rank holds the same scores)
    if np.isfinite(scores["max_sigma"]):
        state.history.append(scores["max_sigma"])
    state.flag = max(otf.flag_floor, (1 + otf.cx) * float(np.mean(state.history))) if state.history else state.flag
    fix.settings.flag = state.flag
    # convergence: the trajectory-averaged error below the target for converge_ps of simulated time
    state.trajectory.append((scores["time_ps"], scores["rms_sigma"]))
    while state.trajectory and state.trajectory[0][0] < scores["time_ps"] - otf.converge_ps:
        state.trajectory.popleft()
    average = float(np.mean([s for _, s in state.trajectory]))
    if average < otf.target:
        state.below_since = scores["time_ps"] if state.below_since is None else state.below_since
    else:
        state.below_since = None
    labels = state.learner.labels if state.rank == 0 else 0
    converged = state.below_since is not None and scores["time_ps"] - state.below_since >= otf.converge_ps
    enough = wrote and payload.get("labels_run", 0) >= otf.max_labels        # payload: the same on every rank
    stop = converged or enough
    if stop:
        state.learning = False
        state.finished = enough                   # max_labels: no more learning in this run
        fix.settings.flag, fix.settings.halt = OFF, OFF
        row["action"] = "converged" if converged else "max_labels"
    if state.rank == 0:
        state.learner.record(row)
        if converged:
            log.warning("lammps_al otf: converged at step %d: the trajectory-averaged error %.4g stayed below %.4g "
                        "for %.2f ps; the run goes on with the final model (%d labels this run)", step, average,
                        otf.target, otf.converge_ps, labels)
        elif enough:
            log.warning("lammps_al otf: [otf] max_labels = %d reached at step %d; the run goes on with the model "
                        "it has", otf.max_labels, step)


@guarded
def finish(ptr) -> None:
    """After the run: the final posterior (evidence maximised again), installed everywhere, and the plot."""
    state = _STATE
    if state is None:
        return
    payload = None
    if state.rank == 0:
        payload = state.learner.finish()
        plot(state.learner.csv, state.learner.outdir / "otf.png")
    payload = state.comm.bcast(payload, root=0)
    install(payload)
    if state.rank == 0:
        log.warning("lammps_al otf: final potential %s (%d labels in the store)", state.learner.potential_path,
                    payload["labels_total"])


def plot(csv_path: Path, out: Path) -> None:
    import csv

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    import numpy as np

    if not Path(csv_path).is_file():
        return
    with open(csv_path) as fh:
        rows = list(csv.DictReader(fh))
    if not rows:
        return
    t = np.array([float(r["time_ps"]) for r in rows])
    # learning off (converged): plain MD, no rows until it resumes; the lines break there, the span is shaded
    quiet = [(t[i], t[i + 1]) for i, r in enumerate(rows[:-1]) if r["action"] == "converged"]
    if rows[-1]["action"] == "converged":
        quiet.append((t[-1], None))
    gaps = set(np.nonzero(np.diff(t) > 1.5 * np.median(np.diff(t)))[0] + 1) if len(t) > 2 else set()

    def broken(values):
        return np.insert(np.asarray(values, dtype=float), sorted(gaps), np.nan)

    tb = broken(t)
    fig, ax = plt.subplots(figsize=(8, 4))
    ax.plot(tb, broken([float(r["max_sigma"]) for r in rows]), lw=0.8, label="max per-atom sigma")
    ax.plot(tb, broken([float(r["rms_sigma"]) for r in rows]), lw=0.8, label="RMS per-atom sigma")
    ax.plot(tb, broken([min(float(r["flag"]), 1e3) for r in rows]), "k--", lw=0.8, label="flag threshold")
    for i, (start, end) in enumerate(quiet):
        ax.axvspan(start, end if end is not None else max(t[-1], start), color="tab:green", alpha=0.12, lw=0,
                   label="converged: plain MD" if i == 0 else None)
    for r, x in zip(rows, t):
        if r["action"] in ("update", "failed"):
            ax.axvline(x, color="tab:red" if r["action"] == "update" else "tab:gray", lw=0.5, alpha=0.5)
    ax.set_yscale("log")
    ax.set_xlabel("simulated time (ps)")
    ax.set_ylabel("sigma (scorer units)")
    ax.set_title("on-the-fly learning: sigma along the trajectory, labels (red lines)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
