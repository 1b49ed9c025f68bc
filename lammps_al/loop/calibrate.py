"""Calibration of the uncertainty against what labelling revealed, with no extra reference calculation.

The configurations labelled in iteration k were flagged by iteration k's potential; that potential's
Bayesian uncertainty of each one's energy per atom, sqrt(Phi^T Sigma Phi)/N (Phi: the sum of its atoms'
feature vectors per element), is set against its actual energy error per atom: a scale factor (RMS error /
RMS sigma) and the Spearman rank correlation.
"""

from __future__ import annotations

import numpy as np

from lammps_al.core.potential import load
from lammps_al.core.records import CalibrationRecord
from lammps_al.loop.config import LoopConfig, potential_path
from lammps_al.loop.label import group_name
from lammps_al.models.registry import make_scorer, model_for
from lammps_al.train.descriptors import SnapWorker
from lammps_al.train.store import LabelledStore


def calibrate(cfg: LoopConfig, k: int) -> CalibrationRecord:
    from scipy.stats import spearmanr

    potential = load(potential_path(cfg.loop, k))
    model = model_for(potential)
    labelled = [a for a in LabelledStore(cfg.fit.training.dir).load() if a.info.get("group") == group_name(k)]
    if len(labelled) < 3 or potential.covariance is None:
        return CalibrationRecord(n=len(labelled))
    bayes = make_scorer(potential, model, "bayes", calibrated=False)
    worker = SnapWorker(potential.descriptor.with_quadratic(False), potential.reference)
    sig, err = [], []
    try:
        for atoms in labelled:
            blk = worker.compute(atoms)
            e_pred = float(model.energies(blk.types, blk.per_atom).sum()) + blk.ref_energy
            sig.append(bayes.total(blk.types, blk.per_atom) / len(atoms))
            err.append(abs(e_pred - atoms.info["REF_energy"]) / len(atoms))
    finally:
        worker.close()
    sig, err = np.array(sig), np.array(err)
    rho = float(spearmanr(sig, err).statistic)
    return CalibrationRecord(n=len(sig), spearman=rho if np.isfinite(rho) else None,
                             scale=float(np.sqrt(np.mean(err ** 2) / np.mean(sig ** 2))),
                             sigma=sig.tolist(), energy_error_per_atom=err.tolist())
