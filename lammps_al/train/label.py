"""Running a reference oracle on configurations, as tasks on an executor.

Each worker builds the oracle's calculator once (cached per oracle in the worker process) and labels
configurations one by one, BLAS/OpenMP pinned to one thread. The calling process alone writes the store,
so there is one writer. A configuration already labelled by the same oracle with the same settings is
skipped; an oracle failure (an exception, no SCF convergence, NaN) is recorded in the manifest with its
message and reported, never dropped; a worker that dies is an :class:`~lammps_al.core.errors.OracleError`
and every label finished before it is kept.
"""

from __future__ import annotations

import logging
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
from ase import Atoms
from ase.io import read

from lammps_al.core.errors import DatasetError, LammpsAlError, OracleError
from lammps_al.core.progress import ProgressBar
from lammps_al.core.records import KEPT_COLUMNS, LabelRecord
from lammps_al.executors import ExecutorConfig, make_executor
from lammps_al.train.dataset import config_hash
from lammps_al.train.oracles import OracleSpec, make_calculator
from lammps_al.train.store import LabelledStore

log = logging.getLogger(__name__)

INPUT_SUFFIXES = (".extxyz", ".xyz")


def read_inputs(paths: Sequence[Path]) -> list[Atoms]:
    """Configurations from files and folders (folders: every ``*.extxyz``/``*.xyz`` inside, sorted)."""
    out: list[Atoms] = []
    for path in paths:
        path = Path(path)
        if path.is_dir():
            files = sorted(p for p in path.rglob("*") if p.suffix in INPUT_SUFFIXES and not p.name.startswith("."))
            if not files:
                raise DatasetError(f"label input {path} is a folder without structure files (looked for "
                                   f"{', '.join('*' + s for s in INPUT_SUFFIXES)} in it and its subfolders)")
        elif path.is_file():
            files = [path]
        else:
            raise DatasetError(f"label input {path} does not exist")
        for f in files:
            try:
                frames = read(f, index=":")
            except Exception as exc:  # noqa: BLE001 - ase raises many kinds on a malformed file
                raise DatasetError(f"{f} cannot be read as a structure file: {exc}") from None
            for i, atoms in enumerate(frames):
                if not np.all(np.isfinite(atoms.positions)):
                    raise DatasetError(f"{f} frame {i}: positions contain NaN or inf")
                atoms.info.setdefault("source", f"{f}@{i}")
                out.append(atoms)
    return out


# ---- worker side -----------------------------------------------------------------------------------

_CALCULATORS: dict[tuple[str, bool], object] = {}


def _calculator(spec: OracleSpec, confined: bool):
    from lammps_al.core.runtime import pin_threads

    key = (spec.settings_hash(), confined)
    if key not in _CALCULATORS:
        pin_threads(1)
        _CALCULATORS[key] = make_calculator(spec, serial=confined)
    return _CALCULATORS[key]


def compute_labels(calc, atoms: Atoms) -> dict:
    """Energy (eV), forces (eV/A) and, for periodic cells, stress (eV/A^3, ASE sign) from ``calc``."""
    from ase.calculators.calculator import PropertyNotImplementedError

    work = atoms.copy()
    work.calc = calc
    energy = float(work.get_potential_energy())
    forces = np.array(work.get_forces(), dtype=float)
    stress = None
    if all(work.pbc):
        try:
            stress = np.array(work.get_stress(voigt=True), dtype=float)
        except PropertyNotImplementedError:
            stress = None
    if not np.isfinite(energy) or not np.all(np.isfinite(forces)):
        raise OracleError(f"oracle returned non-finite energy/forces (energy={energy})")
    if stress is not None and not np.all(np.isfinite(stress)):
        raise OracleError(f"oracle returned a non-finite stress {stress.tolist()}")
    if forces.shape != (len(atoms), 3):
        raise OracleError(f"oracle returned forces of shape {forces.shape} for {len(atoms)} atoms")
    return {"energy": energy, "forces": forces, "stress": stress}


def label_task(spec: OracleSpec, atoms: Atoms, confined: bool = False):
    """One oracle call (runs on a worker): (labels, None, seconds) or (None, error text, seconds)."""
    start = time.perf_counter()
    try:
        return compute_labels(_calculator(spec, confined), atoms), None, time.perf_counter() - start
    except Exception as exc:  # noqa: BLE001 - the oracle's failure is data: recorded, not raised
        return None, f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=3)}", time.perf_counter() - start


# ---- caller side -----------------------------------------------------------------------------------

@dataclass
class LabelSummary:
    labelled: int = 0
    skipped: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)   # (source, error)
    seconds: float = 0.0                                            # oracle time summed over calls
    cost_natoms3: float = 0.0                                       # sum over labelled cells of natoms^3

    def lines(self) -> list[str]:
        out = [f"labelled {self.labelled}, already labelled (skipped) {self.skipped}, failed {len(self.failed)}"]
        for source, error in self.failed:
            out.append(f"  FAILED {source}: {error.splitlines()[0]}")
        return out


def label_with_oracle(configs: Sequence[Atoms], oracle, store: LabelledStore, group: str,
                      show_progress: bool = True, workers: int | None = None,
                      executor: ExecutorConfig | None = None, workdir: Path | None = None) -> LabelSummary:
    """``label_configurations`` as a config's ``[oracle]`` section (an ``OracleConfig``) sets it up."""
    return label_configurations(configs, OracleSpec(oracle.name, dict(oracle.settings)), store, group=group,
                                workers=workers or oracle.workers, show_progress=show_progress,
                                executor=executor, workdir=workdir)


def label_configurations(configs: Sequence[Atoms], spec: OracleSpec, store: LabelledStore, group: str,
                         workers: int = 2, show_progress: bool = True, executor: ExecutorConfig | None = None,
                         workdir: Path | None = None) -> LabelSummary:
    """Label ``configs`` with ``spec`` into ``store`` (skipping those already labelled by this oracle), as
    ``workers`` tasks at once on ``executor`` (default: local processes)."""
    oracle_hash = spec.settings_hash()
    done = store.labelled_keys()
    summary = LabelSummary()
    todo: list[int] = []
    seen: set[str] = set()
    for i, atoms in enumerate(configs):
        key = config_hash(atoms)
        if (key, oracle_hash) in done or key in seen:
            summary.skipped += 1
            continue
        seen.add(key)
        todo.append(i)
    if not todo:
        return summary
    bar = ProgressBar(len(todo), f"labelling ({spec.name})", enabled=show_progress)

    def record_result(index: int, labels: dict | None, error: str | None, seconds: float) -> None:
        atoms = configs[index]
        source = str(atoms.info.get("source", f"configuration {index}"))
        rec = LabelRecord(hash=config_hash(atoms), oracle=spec.name, oracle_hash=oracle_hash,
                          status="ok" if error is None else "failed", group=group, natoms=len(atoms),
                          error=error, source=source, seconds=round(seconds, 4))
        summary.seconds += seconds
        if error is not None:
            store.add_failure(rec)
            summary.failed.append((source, error))
        else:
            store.add_label(labelled_copy(atoms, labels, spec.name, oracle_hash, group), rec)
            summary.labelled += 1
            summary.cost_natoms3 += float(len(atoms)) ** 3
        bar.update()

    try:
        with make_executor(executor, min(workers, len(todo)), "tasks", workdir) as pool:
            futures = {pool.submit(label_task, spec, configs[i], pool.confines_mpi): i for i in todo}
            for fut in pool.as_completed(futures):
                try:
                    result = fut.result()
                except LammpsAlError:
                    raise
                except Exception as exc:  # noqa: BLE001 - a worker died (killed, out of memory, native crash)
                    unfinished = [str(configs[i].info.get("source", f"configuration {i}"))
                                  for f, i in futures.items() if not f.done() or f.exception() is not None]
                    raise OracleError(f"an oracle worker ({spec.name}) died ({type(exc).__name__}: {exc}) while "
                                      f"labelling one of: {', '.join(unfinished)}. The {summary.labelled} label(s) "
                                      f"finished before it are kept in {store.manifest}; run again to label the "
                                      f"rest") from None
                record_result(futures[fut], *result)
    finally:
        bar.close()
    return summary


def labelled_copy(atoms: Atoms, labels: dict, oracle: str, oracle_hash: str, group: str) -> Atoms:
    """A plain copy of ``atoms`` (cell, positions, the fix's per-atom marks, scalar info) with its labels."""
    labelled = Atoms(numbers=atoms.numbers, positions=atoms.positions, cell=atoms.cell, pbc=atoms.pbc)
    for key in KEPT_COLUMNS:
        if key in atoms.arrays:
            labelled.arrays[key] = atoms.arrays[key]
    labelled.info.update({k: v for k, v in atoms.info.items()
                          if isinstance(v, (int, float, str)) and not k.startswith("REF_")})
    labelled.info["REF_energy"] = labels["energy"]
    labelled.arrays["REF_forces"] = labels["forces"]
    if labels["stress"] is not None:
        labelled.info["REF_stress"] = labels["stress"]
    labelled.info.update({"oracle": oracle, "oracle_hash": oracle_hash, "group": group,
                          "stress_unit": "eV/A^3 (ASE sign: positive is tensile)"})
    return labelled
