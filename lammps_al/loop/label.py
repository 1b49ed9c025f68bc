"""Labelling: the selected configurations through the oracle, into the loop's store (group ``iterNNN``)."""

from __future__ import annotations

import time

from ase.io import read

from lammps_al.core.errors import DatasetError
from lammps_al.core.records import LabelFailure, LabelStageRecord, SelectRecord
from lammps_al.loop.config import LoopConfig
from lammps_al.train.label import label_with_oracle
from lammps_al.train.store import LabelledStore


def group_name(k: int) -> str:
    return f"iter{k:03d}"


def label(cfg: LoopConfig, k: int, selected: SelectRecord, show_progress: bool = True) -> LabelStageRecord:
    t = time.perf_counter()
    configs = []
    for item in selected.selected:
        try:
            atoms = read(item.file)
        except Exception as exc:  # noqa: BLE001 - ase raises many kinds on a damaged file
            raise DatasetError(f"selected configuration {item.file} cannot be read: {exc}") from None
        atoms.info["source"] = item.file
        configs.append(atoms)
    summary = label_with_oracle(configs, cfg.fit.oracle, LabelledStore(cfg.fit.training.dir), group=group_name(k),
                                show_progress=show_progress, executor=cfg.fit.executor, workdir=cfg.loop.workdir)
    return LabelStageRecord(labelled=summary.labelled, skipped=summary.skipped,
                            failed=[LabelFailure(source=s, error=e.splitlines()[0]) for s, e in summary.failed],
                            seconds=time.perf_counter() - t, cost_natoms3=summary.cost_natoms3,
                            oracle_seconds=summary.seconds)
