"""Rank 0's side of on-the-fly learning: the labelled store, the oracle, the posterior, the files.

Everything here runs on one rank, inside the running LAMMPS job: the oracle and the descriptor calculations
are confined to ``MPI.COMM_SELF`` so that the other ranks, waiting in a broadcast, take no part.
"""

from __future__ import annotations

import csv
import json
import logging
import os
import re
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
from lammps_al.train.crystal import (CHECKS, FACTORS, Rows, gradients, model_crystal, new_cells_needed, oracle_check,
                                     relative_sigma, smallest_factor, weighted_config, weighted_rows, worst)
from lammps_al.train.dataset import config_hash
from lammps_al.train.descriptors import SnapWorker
from lammps_al.train.fitters import (candidates_of, column_index, default_candidates, evidence_scores,
                                     weighted_design)
from lammps_al.train.label import compute_labels, labelled_copy
from lammps_al.train.oracles import OracleSpec, make_calculator
from lammps_al.train.solvers import BayesianUpdate, solve_bayes_gram
from lammps_al.train.store import LabelledStore
from lammps_al.train.structures import ELASTIC_GROUP

log = logging.getLogger(__name__)

SURPRISE = 4.0        # mean square of new rows' standardised residuals that calls for the evidence again
CALIBRATION_UPDATES = 10     # bayes_force's calibration: the updates it averages over

CSV_COLUMNS = ("step", "time_ps", "temp_K", "max_sigma", "rms_sigma", "flag", "action", "labels", "model",
               "scale", "oracle_s", "update_s", "log_evidence", "crystal", "check_s")
CRYSTAL_SOURCE = re.compile(r"^(\w+)/(?:iter|step)(\d+)/(\w+)/a=([0-9.]+)/")


class Learner:
    """The posterior of every label in ``OUTDIR/training`` for the running potential's model form."""

    def __init__(self, config: Config, otf: OTFSettings, outdir: Path, potential: Potential, comm_self=None):
        self.base_config, self.otf, self.outdir = config, otf, Path(outdir)
        self.store = LabelledStore(self.outdir / "training")
        # the crystal check's factors on its groups' weights (chosen before their rows went in: kept across runs)
        self.factors_file = self.outdir / "crystal.json"
        self.factors: dict[str, float] = (json.loads(self.factors_file.read_text())["factors"]
                                          if self.factors_file.is_file() else {})
        self.config = weighted_config(config, self.factors)
        self.flagged = self.outdir / "flagged"
        self.spec = OracleSpec(config.oracle.name, dict(config.oracle.settings))
        self.oracle_hash = self.spec.settings_hash()
        self.template = potential
        self.settings = model_class(potential.model).descriptor_settings(potential.descriptor)
        self.worker = SnapWorker(self.settings, potential.reference, comm=comm_self)
        self.crystal_rows = Rows(self.settings, lambda cells: [
            self.worker.compute(a, str(a.info.get("source", "crystal check"))) for a in cells])
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
        self.ratios: list[float] = []                 # per update: mean square actual / predicted force error
        self.scale: float | None = None               # bayes_force's calibration (:meth:`calibrate`)
        self.labels = 0                 # labelled in this run (flagged configurations)
        self.checked = 0                # labelled in this run by the crystal check
        self.failed = 0
        self.since_evidence = 0
        self.seen_entries = 0
        self.csv = self.outdir / "otf.csv"
        self.potential_path = self.outdir / "potential" / f"{otf.potential_name}.npz"

    # -- rows --

    def rows(self, configs: list[Atoms]):
        """The weighted rows of ``configs`` (A, b, weights, kinds), the rows of zero weight left out."""
        return self._rows_with(self.config, configs)

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
        self.solve(maximise=True)
        crystal = self.check_crystal(0)
        # the check's rows are data the evidence has not seen: maximised again (the model form too) if any
        payload = self.publish(maximise=bool(crystal), action="start")      # one file written
        payload["crystal"] = crystal
        return payload

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
        self.calibrate(A[kind == 1], b[kind == 1], w[kind == 1])
        self.posterior.add(A, b, w)
        # the evidence is maximised again every K labels (the model form chosen again too), or, for the running
        # model's prior and noise only, when the new rows say the noise model is wrong: their residuals under
        # the current mean, in units of its noise (1/sqrt(beta) per unit-weight row), have a mean square above
        # 4 (the noise is underestimated by more than 2x)
        choose = self.since_evidence >= self.otf.reoptimise_every
        maximise = choose or surprise > SURPRISE
        if choose:
            self.since_evidence = 0
        crystal, check_s = "", 0.0
        if maximise:                  # a new model form or noise level: the crystal check, before publishing
            self.solve(maximise=True, choose=choose)
            t2 = time.perf_counter()
            crystal = self.check_crystal(step)
            check_s = time.perf_counter() - t2
        # the check's rows maximised in (the model form chosen again only on a choosing update); else at the
        # precisions just maximised, if so
        payload = self.publish(bool(crystal), "update", choose=choose)
        payload.update(oracle_s=t1 - t0, update_s=time.perf_counter() - t1 - check_s, check_s=check_s,
                       labels_run=self.labels, crystal=crystal)
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

    def calibrate(self, A_force, b_force, w_force) -> None:
        """Each update tells how far the model that flagged its labels was from the truth: the force
        components' mean square actual error over the posterior's predictive variance for them, the model's
        part (what bayes_force reports per atom) plus the noise's, 1 / (beta w^2) (the error no amount of data
        removes at this model size). Its mean over the last ``CALIBRATION_UPDATES`` updates, each counted
        once, is the scale (squared) on bayes_force: > 1 when the posterior is too confident where the run is
        now. Without the noise in it the scale ran away in a liquid whose errors sat at the noise level (to 14
        after 90 labels, each label calling for the next); summed over every label instead of per update, the
        first labels of an untrained model (predicted variance 100x today's) set it for good."""
        if self.current is None or not len(A_force):
            return
        error = A_force @ self.current - b_force
        variance = np.sum((A_force @ self.covariance) * A_force, axis=1) + 1.0 / (self.beta * w_force ** 2)
        self.ratios.append(float(error @ error) / float(variance.sum()))
        self.scale = float(np.sqrt(np.mean(self.ratios[-CALIBRATION_UPDATES:])))

    # -- the crystal check --

    def check_crystal(self, step: int) -> str:
        """The loop's crystal check (:mod:`lammps_al.loop.elastic`) on the posterior just maximised: at the
        lattice constant of the model's own cubic crystal, when twice the posterior std of C11/C12/C44 or of the
        unrelaxed vacancy energy (times bayes_force's calibration, when above 1) exceeds ``[otf]
        crystal_tolerance`` of the value, that group's cells are labelled (once per lattice constant within
        0.5 %, or 0.1 % where no factor on the cells within 0.5 % meets the tolerance:
        :func:`~lammps_al.train.crystal.new_cells_needed`) and its rows of their kind weigh the smallest factor
        in ``FACTORS`` (never going down) at which the posterior updated with them says 2 std <= tolerance. The
        factor is written to ``crystal.json`` before the rows go in, the rows already in the posterior are
        re-weighted in place (their count unchanged), so the posterior stays the one a fit of the store with
        those group weights gives. Returns what was done, for the CSV ("" for nothing)."""
        tol = self.otf.crystal_tolerance
        if tol == 0 or self.current is None:
            return ""
        element = self.template.elements[0]
        from lammps_al.core.elements import element_data

        found = model_crystal(self.crystal_rows, element, self.current, element_data(element).volume)
        if found is None:
            log.info("lammps_al otf: the model has no cubic crystal minimum yet; crystal check skipped")
            return ""
        structure, a0 = found
        grads = gradients(self.crystal_rows, element, structure, a0)
        scale = max(1.0, self.scale or 1.0)
        covariance = self.covariance
        done = []
        for check in CHECKS:
            kinds_on = (self.config.fit.energy, self.config.fit.force, self.config.fit.stress)[check.kind]
            default = getattr(self.base_config.weights_for("default"), check.weight)
            if not kinds_on or default == 0:
                continue
            pairs = self._stored(check.group) if check.group == ELASTIC_GROUP else None
            if pairs is not None and self._oracle_unstable(step, a0, done, pairs):
                continue
            if worst(relative_sigma(grads, self.current, self.covariance * scale ** 2), check.properties) <= tol:
                continue
            pairs = pairs if pairs is not None else self._stored(check.group)
            stored = [atoms for _, atoms in pairs]
            lattices = [a for a, _ in pairs]
            f0 = self.factors.get(check.group, 1.0)
            fixed = check.group in self.base_config.groups        # the config weighs the group itself
            weights = self.base_config.weights_for(check.group)
            old = weighted_rows(self.crystal_rows, stored, weights, kind=check.kind)[0] if stored else None

            def search(new):
                return smallest_factor(
                    check, (f0,) if fixed else tuple(f for f in FACTORS if f >= f0), f0, grads, self.current,
                    covariance, self.beta, scale, tol, old=old,
                    new=weighted_rows(self.crystal_rows, new, weights) if new else None)

            new = check.make_cells(element, structure, a0, step, stage="step") \
                if new_cells_needed(lattices, a0) else []
            chosen, searched, met = search(new)
            if not met and not new and new_cells_needed(lattices, a0, failed=True):
                new = check.make_cells(element, structure, a0, step, stage="step")
                chosen, searched, met = search(new)
            covariance = searched
            if chosen == f0 and not new:
                continue
            if chosen != f0:
                self._set_factor(check.group, chosen, stored)
            labelled = [x for x in (self.label(atoms, check.group) for atoms in new) if x is not None]
            if labelled:
                A, b, w, _ = self.rows(labelled)
                self.posterior.add(A, b, w)
            if labelled and check.group == ELASTIC_GROUP:      # what do the oracle's own cells say?
                self._oracle_unstable(step, a0, done, self._stored(ELASTIC_GROUP))
            self.checked += len(labelled)
            done.append(f"{check.group} {len(labelled)} cells x{self.factors.get(check.group, 1.0):g}")
        if done:
            log.warning("lammps_al otf: crystal check at step %d (%s a = %.4f A): %s", step, structure, a0,
                        "; ".join(done))
        return "; ".join(done)

    def _oracle_unstable(self, step: int, a0: float, done: list[str], pairs: list[tuple[float, Atoms]]) -> bool:
        """Whether the oracle's own elastic constants from its strained cells (``pairs``: the elastic group's
        stored cells) fail Born's conditions (its stresses are not converged); then it says so and their stress
        weight goes back to x1 (weighing up stresses the oracle got wrong would teach the model an unstable
        crystal), unless the config weighs the group."""
        warning = oracle_check(pairs, a0)[1]
        if not warning:
            return False
        log.warning("lammps_al otf: crystal check at step %d: %s", step, warning)
        if self.factors.get(ELASTIC_GROUP, 1.0) != 1.0 and ELASTIC_GROUP not in self.base_config.groups:
            self._set_factor(ELASTIC_GROUP, 1.0, [atoms for _, atoms in pairs])
            done.append(f"{ELASTIC_GROUP} x1 (the oracle's own crystal fails Born's conditions)")
        return True

    def _set_factor(self, group: str, factor: float, stored: list[Atoms]) -> None:
        """``group``'s factor on its default weight, written to ``crystal.json`` before its rows already in the
        posterior (``stored``) are re-weighted in place."""
        self.factors[group] = factor
        _write_json(self.factors_file, {"factors": self.factors})
        old_config, self.config = self.config, weighted_config(self.base_config, self.factors)
        if stored:                               # the rows already in, weighed as the new factor says
            A, b, w_old, _ = self._rows_with(old_config, stored)
            self.posterior.reweight(A, b, w_old, self._rows_with(self.config, stored)[2])

    def _rows_with(self, config, configs):
        blocks = [self.worker.compute(a, str(a.info.get("source", "configuration"))) for a in configs]
        dm, w = weighted_design(config, configs, blocks, self.settings)
        keep = w > 0
        return dm.A[keep], dm.b[keep], w[keep], dm.kind[keep]

    def _stored(self, group: str) -> list[tuple[float, Atoms]]:
        """(lattice constant, labelled cell) of every cell the crystal check put into ``group`` (a loop's
        check's too, when the store is shared)."""
        out = []
        for r in self.store.records():
            m = CRYSTAL_SOURCE.match(r.source or "")
            if r.status == "ok" and r.group == group and m and m.group(1) == group and r.file:
                atoms = _read(self.store.dir / r.file)
                atoms.info["group"], atoms.info["source"] = group, r.source
                out.append((float(m.group(4)), atoms))
        return out

    # -- the potential --

    def solve(self, maximise: bool, choose: bool = True):
        """The posterior of the chosen model; with ``maximise`` (or none chosen yet) every candidate's evidence
        is maximised and the best one whose fit leaves half the rows to the noise (gamma <= rows / 2) is chosen
        (without ``choose``: the chosen model's evidence only). Returns the coefficients and covariance over all
        columns (zeros outside the chosen model's) and the solver's result."""
        u = self.posterior
        mean = u.b_sum / u.rows
        variance = max(u.btb / u.rows - mean**2, 0.0)
        if maximise and not choose and self.chosen is not None:
            idx = self.columns[self.chosen]
            result = solve_bayes_gram(u.G[np.ix_(idx, idx)], u.Atb[idx], u.btb, u.rows, b_variance=variance)
            self.alpha, self.beta = result.prior_precision, result.noise_precision
        elif maximise or self.chosen is None:
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

    def publish(self, maximise: bool, action: str, choose: bool = True) -> dict:
        flat, covariance, result = self.solve(maximise, choose)
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
            self.write_fit_config()
        else:
            save(potential, self.potential_path)
        return {"action": action, "coefficients": coefficients, "covariance": covariance, "model": self.chosen,
                "scale": self.scale,
                "log_evidence": result.info["log_evidence"], "labels_total": len(self.store.labelled_keys())}

    def write_fit_config(self) -> Path:
        """``OUTDIR/fit.toml``: the batch fit of the store that gives the in-run model (``lammps-al fit
        OUTDIR/fit.toml``): the config's sections without [otf], the store, the running potential's descriptor,
        the candidates the learner chose among, and the crystal check's group weights."""
        import dataclasses

        import tomli_w

        from lammps_al.core.config import read_toml

        raw = {k: v for k, v in read_toml(Path(self.base_config.source)).items() if k != "otf"}
        raw["training"] = {"dir": str(self.store.dir.resolve())}      # the store alone, as in the run
        raw["descriptor"] = {k: v for k, v in self.template.descriptor.to_dict().items() if k != "quadraticflag"}
        raw["fit"] = {**raw.get("fit", {}), "model": "auto", "candidates": [c.name for c in self.candidates],
                      "name": f"{self.otf.potential_name}_refit",
                      "output_dir": str((self.outdir / "refit").resolve())}
        groups = raw.setdefault("groups", {})
        for group in self.factors:
            if group not in self.base_config.groups:
                weights = dataclasses.asdict(self.config.weights_for(group))
                groups[group] = {k: v for k, v in weights.items() if v is not None and v != {}}
        path = self.outdir / "fit.toml"
        tmp = path.with_suffix(".toml.tmp")
        tmp.write_text("# lammps-al fit " + str(path) + ": the store's batch fit, the in-run model to rounding\n"
                       + tomli_w.dumps(raw))
        os.replace(tmp, path)
        return path

    def record(self, row: dict) -> None:
        new = not self.csv.is_file()
        with open(self.csv, "a", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=CSV_COLUMNS, extrasaction="ignore")
            if new:
                writer.writeheader()
            writer.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})

    def close(self) -> None:
        self.worker.close()


def _write_json(path: Path, data: dict) -> None:
    """Atomically: a kill leaves the old file or the new one."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=1) + "\n")
    os.replace(tmp, path)


def _read(path: Path) -> Atoms:
    from ase.io import read

    atoms = read(path)
    atoms.info.setdefault("source", str(path))
    return atoms
