"""Rank 0's side of on-the-fly learning: the labelled store, the oracle, the posterior, the files.

Everything here runs on one rank, inside the running LAMMPS job: the oracle and the descriptor calculations
are confined to ``MPI.COMM_SELF`` so that the other ranks, waiting in a broadcast, take no part.
"""

from __future__ import annotations

import csv
import logging
import time
from pathlib import Path

import numpy as np
from ase import Atoms

from lammps_al.core.errors import LammpsAlError
from lammps_al.core.potential import COEFFICIENTS, COVARIANCE, Potential, command_line, now, save
from lammps_al.core.records import LabelRecord, read_flagged
from lammps_al.models.registry import calibration_key, model_class
from lammps_al.otf.config import OTFSettings
from lammps_al.train.config import Config
from lammps_al.train.dataset import config_hash
from lammps_al.train.descriptors import SnapWorker
from lammps_al.train.fitters import (candidates_of, column_index, default_candidates, evidence_scores,
                                     weighted_design)
from lammps_al.train.label import compute_labels, labelled_copy
from lammps_al.train.oracles import OracleSpec, make_calculator
from lammps_al.train.solvers import BayesianUpdate, solve_bayes_gram
from lammps_al.train.store import LabelledStore

log = logging.getLogger(__name__)

SURPRISE = 4.0        # mean square of new rows' standardised residuals that calls for the evidence again

CSV_COLUMNS = ("step", "time_ps", "temp_K", "max_sigma", "rms_sigma", "flag", "action", "labels", "model",
               "scale", "oracle_s", "update_s", "log_evidence")


class Learner:
    """The posterior of every label in ``OUTDIR/training`` for the running potential's model form."""

    def __init__(self, config: Config, otf: OTFSettings, outdir: Path, potential: Potential, comm_self=None):
        self.config, self.otf, self.outdir = config, otf, Path(outdir)
        self.store = LabelledStore(self.outdir / "training")
        self.flagged = self.outdir / "flagged"
        self.spec = OracleSpec(config.oracle.name, dict(config.oracle.settings))
        self.oracle_hash = self.spec.settings_hash()
        self.template = potential
        self.settings = model_class(potential.model).descriptor_settings(potential.descriptor)
        self.worker = SnapWorker(self.settings, potential.reference, comm=comm_self)
        self.calc = make_calculator(self.spec, serial=comm_self is not None)
        n_columns = int(np.asarray(potential.arrays[COEFFICIENTS]).size)
        self.posterior = BayesianUpdate(n_columns)
        # the model grows with its data: linear and quadratic SNAP at every 2J up to the running potential's,
        # each a subset of its columns (the others held at zero), chosen by the evidence (SelectingFitter's rule)
        kinds = ("linear", "quadratic") if potential.model == "quadratic" else ("linear",)
        top = self.settings.twojmax
        self.candidates = [c for c in (candidates_of(config.fit, self.settings) if config.fit.candidates else
                                       default_candidates(top)) if c.kind in kinds and c.twojmax <= top]
        if not self.candidates:
            raise LammpsAlError(f"none of [fit] candidates {list(config.fit.candidates)} fits inside the running "
                                f"{potential.model} SNAP potential (2J = {top}): give candidates of at most that size")
        self.columns = {c.name: column_index(self.settings, c) for c in self.candidates}
        self.chosen: str | None = None
        self.alpha = self.beta = None
        self.current: np.ndarray | None = None      # the posterior mean over all columns
        self.covariance: np.ndarray | None = None
        self.actual_sq = self.predicted_sq = 0.0      # the labels' force errors, actual and predicted
        self.scale: float | None = None               # bayes_force's calibration: sqrt(actual / predicted)
        self.labels = 0                 # labelled in this run
        self.failed = 0
        self.since_evidence = 0
        self.seen_entries = 0
        self.csv = self.outdir / "otf.csv"
        self.potential_path = self.outdir / "potential" / f"{otf.potential_name}.npz"

    # -- rows --

    def rows(self, configs: list[Atoms]):
        blocks = [self.worker.compute(a, str(a.info.get("source", "configuration"))) for a in configs]
        dm, w = weighted_design(self.config, configs, blocks, self.settings)
        keep = w > 0
        return dm.A[keep], dm.b[keep], w[keep], dm.kind[keep]

    # -- labels --

    def label(self, atoms: Atoms, group: str) -> Atoms | None:
        """One oracle call into the store; a failure is recorded there and returns None."""
        key = config_hash(atoms)
        source = str(atoms.info.get("source", "configuration"))
        start = time.perf_counter()
        try:
            labels = compute_labels(self.calc, atoms)
        except Exception as exc:  # noqa: BLE001 - the oracle's failure is data: recorded, the run goes on
            self.store.add_failure(LabelRecord(hash=key, oracle=self.spec.name, oracle_hash=self.oracle_hash,
                                               status="failed", group=group, natoms=len(atoms),
                                               error=f"{type(exc).__name__}: {exc}", source=source,
                                               seconds=round(time.perf_counter() - start, 4)))
            log.warning("lammps_al otf: the oracle failed on %s (%s: %s); the run goes on with the model it has",
                        source, type(exc).__name__, exc)
            self.failed += 1
            return None
        labelled = labelled_copy(atoms, labels, self.spec.name, self.oracle_hash, group)
        record = self.store.add_label(labelled, LabelRecord(
            hash=key, oracle=self.spec.name, oracle_hash=self.oracle_hash, status="ok", group=group,
            natoms=len(atoms), source=source, seconds=round(time.perf_counter() - start, 4)))
        stored = _read(self.store.dir / record.file)     # the rows of what a fit of the store will read
        stored.info["group"], stored.info["source"] = group, source
        return stored

    def start(self) -> dict:
        """The posterior of the store (labelled with the starting set first when it is empty, and with what a
        killed run flagged but did not label); the potential written; the payload every rank installs."""
        from lammps_al.train.structures import starting_set

        if not [r for r in self.store.records() if r.status == "ok"]:
            if self.otf.start == "none":
                raise LammpsAlError(f"{self.store.manifest} holds no labels and [otf] start = \"none\": label a "
                                    f"starting set into it, or set [otf] start = \"minimal\"")
            for atoms in starting_set(self.template.elements[0], size=self.otf.start):
                self.label(atoms, "start")
        done = self.store.labelled_keys()
        entries = read_flagged(self.flagged)
        self.seen_entries = len(entries)
        for entry in entries:                       # flagged by a run that was killed before it labelled them
            if not (self.flagged / entry.file).is_file():
                continue
            atoms = _read(self.flagged / entry.file)
            if (config_hash(atoms), self.oracle_hash) not in done:
                self.label(atoms, self.otf.group)
        configs = self.store.load()
        if not configs:
            raise LammpsAlError(f"no labels in {self.store.manifest}: the oracle failed on every starting "
                                f"configuration (see the failures recorded there)")
        A, b, w, _ = self.rows(configs)
        self.posterior.add(A, b, w)
        return self.publish(maximise=True, action="start")

    def learn(self, step: int) -> dict:
        """Label what the fix wrote since the last call and update the posterior."""
        entries = read_flagged(self.flagged)
        new = entries[self.seen_entries:]
        self.seen_entries = len(entries)
        t0 = time.perf_counter()
        labelled = []
        for entry in new:
            atoms = self.label(_read(self.flagged / entry.file), self.otf.group)
            if atoms is not None:
                labelled.append(atoms)
        t1 = time.perf_counter()
        if not labelled:
            return {"action": "failed", "oracle_s": t1 - t0, "update_s": 0.0, "labels_run": self.labels}
        self.labels += len(labelled)
        self.since_evidence += len(labelled)
        A, b, w, kind = self.rows(labelled)
        surprise = self.surprise(A, b, w)
        self.calibrate(A[kind == 1], b[kind == 1])
        self.posterior.add(A, b, w)
        # the evidence is maximised again every K labels, or when the new rows say the noise model is wrong:
        # their residuals under the current mean, in units of its noise (1/sqrt(beta) per unit-weight row),
        # have a mean square above 4 (the noise is underestimated by more than 2x)
        maximise = self.since_evidence >= self.otf.reoptimise_every or surprise > SURPRISE
        if maximise:
            self.since_evidence = 0
        payload = self.publish(maximise, "update")
        payload.update(oracle_s=t1 - t0, update_s=time.perf_counter() - t1, labels_run=self.labels)
        return payload

    def finish(self) -> dict:
        """The final posterior with the evidence maximised again (what ``lammps-al fit`` on the store gives)."""
        return self.publish(maximise=True, action="final")

    def surprise(self, A, b, w) -> float:
        """Mean square of the new rows' residuals under the current posterior mean, in units of the noise."""
        if self.current is None or self.beta is None:
            return 0.0
        z = (b - A @ self.current) * w
        return float(self.beta * np.mean(z**2))

    def calibrate(self, A_force, b_force) -> None:
        """Each label tells how far the model that flagged it was from the truth: the force components' actual
        errors against the posterior's predicted variance for them (what bayes_force reports per atom). Their
        ratio over every label so far is the scale that makes bayes_force an error in eV/A."""
        if self.current is None or not len(A_force):
            return
        error = A_force @ self.current - b_force
        variance = np.sum((A_force @ self.covariance) * A_force, axis=1)
        self.actual_sq += float(error @ error)
        self.predicted_sq += float(variance.sum())
        if self.predicted_sq > 0:
            self.scale = float(np.sqrt(self.actual_sq / self.predicted_sq))

    # -- the potential --

    def solve(self, maximise: bool):
        """The posterior of the chosen model; with ``maximise`` (or none chosen yet) every candidate's evidence
        is maximised and the best one whose fit leaves half the rows to the noise (gamma <= rows / 2) is chosen.
        Returns the coefficients and covariance over all columns (zeros outside the chosen model's) and the
        solver's result."""
        u = self.posterior
        mean = u.b_sum / u.rows
        variance = max(u.btb / u.rows - mean**2, 0.0)
        if maximise or self.chosen is None:
            scores = {name: r for name, r in evidence_scores(u.G, u.Atb, u.btb, u.rows, self.columns,
                                                             variance).items() if r is not None}
            if not scores:
                raise LammpsAlError(f"no candidate model can be fitted to the {u.rows} rows of "
                                    f"{self.store.manifest}: label more configurations or give smaller [fit] "
                                    f"candidates")
            self.chosen = max(scores, key=lambda name: scores[name].info["log_evidence"])
            result = scores[self.chosen]
            self.alpha, self.beta = result.prior_precision, result.noise_precision
        else:
            idx = self.columns[self.chosen]
            result = solve_bayes_gram(u.G[np.ix_(idx, idx)], u.Atb[idx], u.btb, u.rows, alpha=self.alpha,
                                      beta=self.beta, b_variance=variance)
        idx = self.columns[self.chosen]
        coefficients = np.zeros(u.G.shape[0])
        covariance = np.zeros_like(u.G)
        coefficients[idx] = result.coefficients
        covariance[np.ix_(idx, idx)] = result.covariance
        self.current, self.covariance = coefficients, covariance
        return coefficients, covariance, result

    def publish(self, maximise: bool, action: str) -> dict:
        flat, covariance, result = self.solve(maximise)
        coefficients = flat.reshape(np.asarray(self.template.arrays[COEFFICIENTS]).shape)
        arrays = {COEFFICIENTS: coefficients, COVARIANCE: covariance}
        if self.scale is not None:
            arrays[calibration_key("bayes_force")] = np.array([self.scale])
        potential = Potential(elements=self.template.elements, model=self.template.model,
                              descriptor=self.template.descriptor, reference=self.template.reference,
                              arrays=arrays,
                              noise={"noise_precision": result.noise_precision,
                                     "prior_precision": result.prior_precision,
                                     "log_evidence": result.info["log_evidence"], "gamma": result.info["gamma"]},
                              settings={"otf": {"rows": int(self.posterior.rows), "action": action,
                                                "model": self.chosen}})
        if action == "final":          # with its LAMMPS companions and snippets (validate runs it natively)
            from lammps_al.train.lammps_files import write_all

            potential.created, potential.command = now(), command_line()
            write_all(potential, self.potential_path.parent, self.otf.potential_name)
        else:
            save(potential, self.potential_path)
        return {"action": action, "coefficients": coefficients, "covariance": covariance, "model": self.chosen,
                "scale": self.scale,
                "log_evidence": result.info["log_evidence"], "labels_total": len(self.store.labelled_keys())}

    def record(self, row: dict) -> None:
        new = not self.csv.is_file()
        with open(self.csv, "a", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=CSV_COLUMNS, extrasaction="ignore")
            if new:
                writer.writeheader()
            writer.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})

    def close(self) -> None:
        self.worker.close()


def _read(path: Path) -> Atoms:
    from ase.io import read

    atoms = read(path)
    atoms.info.setdefault("source", str(path))
    return atoms
