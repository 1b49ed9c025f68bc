"""The crystal's elastic constants and vacancy decided by the posterior: label the small cells that pin them
when the model does not know them.

A Bayesian SNAP potential's energy and stress are linear in its coefficients, so are its C11, C12 and C44
(central differences of the stress of the perfect cubic cell under +-1 % xx and yz strains) and its unrelaxed
vacancy formation energy E(N-1) - (N-1)/N E(N) in the 2x2x2 cubic cell: P = g . beta, with the posterior
variance g^T Sigma g. The exploration MD says little about either at 0 K: the Al demo's C44 came out 16-23 %
stiff, its vacancy -2 to -22 % off (its per-atom energy rows cannot resolve 0.1 eV in a 255-atom cell). The cells
that pin them are small (4-atom strained cells, natoms^3 64; the 31-atom vacancy cell, 29791, one MD cell's
worth). So each iteration, before exploring, the stage checks the potential it explores with, each group in
turn (``elastic``: C11, C12, C44 by the stress rows of its strained cells; ``vacancy``: E_vac by the energy
row of its vacancy cell):

- if twice the posterior std of each of its properties is within ``[loop] elastic_tolerance`` (relative) of
  the value, nothing happens (the std times the loop's last calibration scale, RMS actual / predicted error
  of the newly labelled energies, when that is above 1: the bare posterior was 2.5x too confident about the
  Al demo's C44);
- else its cells at the model's own lattice constant are labelled (once per lattice constant within 0.5 %,
  or within 0.1 % where no factor on the cells already within 0.5 % meets the tolerance), and the factor on
  the default weight of its row kind that the group gets in the next fits is the smallest of ``FACTORS``
  (never below the last one) at which the posterior updated with those rows (a rank-k update of the
  precision at the fit's hyperparameters) says 2 std <= tolerance.

A config's own ``[groups.elastic]`` / ``[groups.vacancy]`` wins over the factor. Skipped, with the reason
recorded, for a potential without a posterior covariance, a host crystal that is not cubic, or
``elastic_tolerance = 0``. The cells, gradients and weights: :mod:`lammps_al.train.crystal` (on-the-fly
learning checks the same way).
"""

from __future__ import annotations

import logging
import re
import time

from ase.io import read

from lammps_al.core import potential as potential_io
from lammps_al.core.records import CalibrationRecord, ElasticRecord, MaterialRecord, read_marker
from lammps_al.loop.config import LoopConfig, iter_dir, potential_path
from lammps_al.train.crystal import (CHECKS, CUBIC, FACTORS, VACANCY_GROUP, Rows, gradients,
                                     new_cells_needed, oracle_check, relative_sigma, smallest_factor,
                                     weighted_rows, worst)
from lammps_al.train.label import label_with_oracle
from lammps_al.train.store import LabelledStore
from lammps_al.train.structures import ELASTIC_GROUP

log = logging.getLogger(__name__)

FACTOR_FIELD = {ELASTIC_GROUP: "stress_factor", VACANCY_GROUP: "vacancy_energy_factor"}


def elastic(cfg: LoopConfig, k: int, show_progress: bool = True) -> ElasticRecord:
    s = cfg.loop
    previous = read_marker(iter_dir(s, k - 1), ElasticRecord) if k > 0 else None
    before = {c.group: getattr(previous, FACTOR_FIELD[c.group]) if previous else 1.0 for c in CHECKS}
    kept = {FACTOR_FIELD[g]: f for g, f in before.items()}
    tol = s.elastic_tolerance
    if tol == 0:
        return ElasticRecord(**kept, skipped="[loop] elastic_tolerance = 0")
    mat = read_marker(iter_dir(s, k), MaterialRecord)
    if mat is None or mat.structure not in CUBIC:
        return ElasticRecord(**kept, skipped=f"the model's crystal is {mat.structure if mat else 'unknown'}, not "
                             f"cubic ({', '.join(CUBIC)})")
    pot = potential_io.load(potential_path(s, k))
    cov = pot.covariance
    if cov is None or "noise_precision" not in pot.noise:
        return ElasticRecord(**kept, structure=mat.structure, a0=mat.a0,
                             skipped="the potential has no posterior covariance ([fit] solver = 'bayes' has one)")
    t = time.perf_counter()
    beta = pot.coefficients.ravel()
    rows = Rows.of(pot)
    grads = gradients(rows, mat.element, mat.structure, mat.a0)
    constants = {name: float(g @ beta) for name, g in grads.items()}
    calib = read_marker(iter_dir(s, k - 1), CalibrationRecord) if k > 0 else None
    scale = max(1.0, calib.scale) if calib is not None and calib.scale else 1.0
    sigma = relative_sigma(grads, beta, cov * scale ** 2)
    store = LabelledStore(cfg.fit.training.dir)
    covariance = cov
    noise = float(pot.noise["noise_precision"])
    labelled, cost, chosen = {}, 0.0, dict(before)
    oracle, warning = {}, ""

    def oracle_unstable(stored) -> bool:
        """Whether the oracle's own constants from its strained cells fail Born's conditions: then weighing up
        stresses it got wrong would teach them, so the elastic group's factor is x1."""
        nonlocal oracle, warning
        oracle, warning = oracle_check([(a, atoms) for _, a, atoms in stored], mat.a0)
        if warning:
            log.warning("elastic check: %s", warning)
            chosen[ELASTIC_GROUP] = 1.0
        return bool(warning)

    for check in CHECKS:
        stored = _stored(store, check.group) if check.group == ELASTIC_GROUP else None
        if stored is not None and oracle_unstable(stored):
            continue
        if worst(sigma, check.properties) <= tol:
            continue
        weights = cfg.fit.weights_for(check.group)
        f0 = before[check.group]
        if check.group in cfg.fit.groups:            # the config weighs the group itself
            candidates = (f0,)
        else:
            candidates = tuple(f for f in FACTORS if f >= f0) or (f0,)

        def label(cells):
            summary = label_with_oracle(cells, cfg.fit.oracle, store, group=check.group,
                                        show_progress=show_progress, executor=cfg.fit.executor, workdir=s.workdir)
            if summary.failed:
                log.warning("%s: %d cell(s) failed to label: %s", check.group, len(summary.failed),
                            "; ".join(e.splitlines()[0] for _, e in summary.failed))
            return summary.cost_natoms3

        def search(stored):
            new = [atoms for it, _, atoms in stored if it == k]      # not in the fit yet (also before a kill)
            old = [atoms for it, _, atoms in stored if it < k]
            return new, smallest_factor(
                check, candidates, f0, grads, beta, covariance, noise, scale, tol,
                new=weighted_rows(rows, new, weights) if new else None,
                old=weighted_rows(rows, old, weights, kind=check.kind)[0] if old else None)

        stored = stored if stored is not None else _stored(store, check.group)
        if new_cells_needed([a for _, a, _ in stored], mat.a0):
            cost += label(check.make_cells(mat.element, mat.structure, mat.a0, k))
            stored = _stored(store, check.group)
            if check.group == ELASTIC_GROUP and oracle_unstable(stored):    # what its new cells say
                labelled[check.group] = sum(1 for it, _, _ in stored if it == k)
                continue
        new, (factor, updated, met) = search(stored)
        if not met and not new and new_cells_needed([a for _, a, _ in stored], mat.a0, failed=True):
            cost += label(check.make_cells(mat.element, mat.structure, mat.a0, k))
            new, (factor, updated, met) = search(_stored(store, check.group))
        labelled[check.group] = len(new)
        chosen[check.group], covariance = factor, updated       # the next check sees this one's rows
    predicted = relative_sigma(grads, beta, covariance * scale ** 2)
    return ElasticRecord(structure=mat.structure, a0=mat.a0, constants=constants, sigma_relative=sigma,
                         calibration_scale=scale, labelled=labelled, cost_natoms3=cost,
                         **{FACTOR_FIELD[g]: f for g, f in chosen.items()},
                         predicted_sigma_relative=predicted, oracle_constants=oracle, warning=warning,
                         seconds=time.perf_counter() - t)


SOURCE = re.compile(r"^(elastic|vacancy)/iter(\d+)/\w+/a=([0-9.]+)/")


def _stored(store: LabelledStore, group: str) -> list[tuple[int, float, object]]:
    """(iteration, lattice constant, configuration) of every cell this stage labelled into ``store``'s
    ``group`` (a start set's elastic cells, named otherwise, are part of every fit already)."""
    out = []
    for r in store.records():
        m = SOURCE.match(r.source or "")
        if r.status == "ok" and r.group == group and m and m.group(1) == group and r.file:
            out.append((int(m.group(2)), float(m.group(3)), read(store.dir / r.file, format="extxyz")))
    return out


UNITS = {"E_vac": "eV"}


def elastic_line(r: ElasticRecord) -> str:
    """One line for the iteration's summary."""
    if r.skipped:
        return f"not checked ({r.skipped})"
    parts = ", ".join(f"{k} {v:.3g} {UNITS.get(k, 'GPa')} +- {100 * r.sigma_relative[k]:.1f} %"
                      for k, v in r.constants.items())
    line = f"{parts} (posterior x {r.calibration_scale:.2f}, a = {r.a0:.4f} A)"
    for check in CHECKS:
        if check.group in r.labelled:
            kind = "stress" if check.kind == 2 else "energy"
            line += (f"; {check.group}: {r.labelled[check.group]} new cell(s), {kind} weight "
                     f"x{getattr(r, FACTOR_FIELD[check.group]):g}")
    if r.oracle_constants:
        line += "; oracle's own " + ", ".join(f"{k} {v:.3g}" for k, v in r.oracle_constants.items()) + " GPa"
    if r.warning:
        line += f" (WARNING: {r.warning})"
    if r.labelled:
        line += " (then " + ", ".join(f"{k} +- {100 * v:.1f} %" for k, v in r.predicted_sigma_relative.items()) + ")"
    return line


def factors_for_fit(cfg: LoopConfig, k: int) -> dict[str, float]:
    """Per group, the factor on the default weight of its chosen row kind that iteration k's fit uses: the
    record of iteration k-1 (none before there is one)."""
    record = read_marker(iter_dir(cfg.loop, k - 1), ElasticRecord) if k > 0 else None
    return {c.group: getattr(record, FACTOR_FIELD[c.group]) for c in CHECKS} if record else {}
