"""Iteration 0: the starting set, labelled by the oracle (the first fit is :mod:`lammps_al.loop.fit`)."""

from __future__ import annotations

import time
from collections import Counter

from lammps_al.core.records import StartRecord
from lammps_al.loop.config import LoopConfig
from lammps_al.train.label import label_with_oracle
from lammps_al.train.store import LabelledStore
from lammps_al.train.structures import starting_set


def build_start(cfg: LoopConfig, show_progress: bool = True) -> StartRecord:
    """Seeded starting structures labelled into the loop's store (groups "start" and "elastic")."""
    s = cfg.loop
    t = time.perf_counter()
    configs = starting_set(tuple(cfg.fit.descriptor.elements), seed=s.seed, size=s.start_size)
    for i, atoms in enumerate(configs):
        atoms.info["source"] = f"start/{atoms.info['kind']}/{i}"
    store = LabelledStore(cfg.fit.training.dir)
    labelled = failed = 0
    cost = 0.0
    for group in sorted({str(a.info.get("group", "start")) for a in configs}):
        members = [a for a in configs if str(a.info.get("group", "start")) == group]
        summary = label_with_oracle(members, cfg.fit.oracle, store, group=group, show_progress=show_progress,
                                    executor=cfg.fit.executor, workdir=s.workdir)
        labelled += summary.labelled
        failed += len(summary.failed)
        cost += summary.cost_natoms3
    return StartRecord(structures=len(configs), labelled=labelled, failed=failed,
                       seconds=time.perf_counter() - t, kinds=dict(Counter(a.info["kind"] for a in configs)),
                       cost_natoms3=cost, max_natoms=max(len(a) for a in configs))
