"""Running a reference oracle on configurations, in parallel worker processes.

Each worker builds the oracle's calculator once and labels configurations one by one (BLAS/OpenMP pinned
to one thread per worker). The parent process alone writes the store, so there is one writer. A
configuration already labelled by the same oracle with the same settings is skipped; an oracle failure
(an exception, no SCF convergence) is recorded in the manifest with its message and reported, never
dropped.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
import traceback
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
from ase import Atoms
from ase.io import read

from lammps_al.dataset import DatasetError, config_hash
from lammps_al.oracles import OracleSpec, make_calculator
from lammps_al.progress import ProgressBar
from lammps_al.store import LabelledStore, LabelRecord

log = logging.getLogger(__name__)

INPUT_SUFFIXES = (".extxyz", ".xyz")


def read_inputs(paths: Sequence[Path]) -> list[Atoms]:
    """Configurations from files and folders (folders: every ``*.extxyz``/``*.xyz`` inside, sorted)."""
    out: list[Atoms] = []
    for path in paths:
        path = Path(path)
        if path.is_dir():
            files = sorted(p for p in path.rglob("*") if p.suffix in INPUT_SUFFIXES and not p.name.startswith("."))
        elif path.is_file():
            files = [path]
        else:
            raise DatasetError(f"label input {path} does not exist")
        for f in files:
            try:
                frames = read(f, index=":")
            except Exception as exc:
                raise DatasetError(f"{f} cannot be read as a structure file: {exc}") from exc
            for i, atoms in enumerate(frames):
                if not np.all(np.isfinite(atoms.positions)):
                    raise DatasetError(f"{f} frame {i}: positions contain NaN or inf")
                atoms.info.setdefault("source", f"{f}@{i}")
                out.append(atoms)
    return out


# ---- worker side -----------------------------------------------------------------------------------

_CALC = None


def _init_worker(spec: OracleSpec, mpi_rank: bool = False) -> None:
    from lammps_al.runtime import pin_threads

    pin_threads(1)
    global _CALC
    _CALC = make_calculator(spec, serial=mpi_rank)


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
        raise RuntimeError(f"oracle returned non-finite energy/forces (energy={energy})")
    return {"energy": energy, "forces": forces, "stress": stress}


def _label_one(job):
    index, atoms = job
    try:
        return index, compute_labels(_CALC, atoms), None
    except Exception as exc:  # the oracle's failure is data: recorded, not raised
        return index, None, f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=3)}"


# ---- parent side -----------------------------------------------------------------------------------

@dataclass
class LabelSummary:
    labelled: int = 0
    skipped: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)   # (source, error)

    def lines(self) -> list[str]:
        out = [f"labelled {self.labelled}, already labelled (skipped) {self.skipped}, failed {len(self.failed)}"]
        for source, error in self.failed:
            out.append(f"  FAILED {source}: {error.splitlines()[0]}")
        return out


def mpi_executor(workers: int, spec: OracleSpec):
    """An ``mpi4py.futures.MPIPoolExecutor`` whose ranks each hold one oracle. Launch the command under
    ``mpirun -np N+1 python -m mpi4py.futures -m lammps_al.cli ...`` (N worker ranks; the first runs the
    command); without that launcher mpi4py spawns workers itself where the MPI library allows it."""
    try:
        from mpi4py.futures import MPIPoolExecutor
    except ImportError as exc:
        raise DatasetError(f"[oracle] executor = 'mpi' needs mpi4py: {exc}") from exc
    return MPIPoolExecutor(max_workers=workers, initializer=_init_worker, initargs=(spec, True))


def label_with_oracle(configs: Sequence[Atoms], oracle, store: LabelledStore, group: str,
                      show_progress: bool = True, workers: int | None = None) -> LabelSummary:
    """``label_configurations`` as a config's ``[oracle]`` section (an ``OracleConfig``) sets it up: its
    calculator and settings, its ``workers`` (unless given) and its ``executor``."""
    return label_configurations(configs, OracleSpec(oracle.name, dict(oracle.settings)), store, group=group,
                                workers=workers or oracle.workers, show_progress=show_progress,
                                executor=oracle.executor)


def label_configurations(configs: Sequence[Atoms], spec: OracleSpec, store: LabelledStore, group: str,
                         workers: int = 2, show_progress: bool = True, executor: str = "local") -> LabelSummary:
    """Label ``configs`` with ``spec`` into ``store`` (skipping those already labelled by this oracle).
    ``executor``: "local" (worker processes on this machine) or "mpi" (mpi4py.futures ranks)."""
    oracle_hash = spec.settings_hash()
    done = store.labelled_keys()
    summary = LabelSummary()
    todo: list[tuple[int, Atoms]] = []
    seen: set[str] = set()
    for i, atoms in enumerate(configs):
        key = config_hash(atoms)
        if (key, oracle_hash) in done or key in seen:
            summary.skipped += 1
            continue
        seen.add(key)
        todo.append((i, atoms))
    if not todo:
        return summary
    bar = ProgressBar(len(todo), f"labelling ({spec.name})", enabled=show_progress)

    def record_result(index: int, labels: dict | None, error: str | None) -> None:
        atoms = configs[index]
        source = str(atoms.info.get("source", f"configuration {index}"))
        rec = LabelRecord(hash=config_hash(atoms), oracle=spec.name, oracle_hash=oracle_hash,
                          status="ok" if error is None else "failed", group=group, natoms=len(atoms),
                          error=error, source=source)
        if error is not None:
            store.add_failure(rec)
            summary.failed.append((source, error))
        else:
            labelled = Atoms(numbers=atoms.numbers, positions=atoms.positions, cell=atoms.cell, pbc=atoms.pbc)
            for key in ("id", "flagged", "buffer", "per_atom_sigma"):
                if key in atoms.arrays:
                    labelled.arrays[key] = atoms.arrays[key]
            labelled.info.update({k: v for k, v in atoms.info.items()
                                  if isinstance(v, (int, float, str)) and not k.startswith("REF_")})
            labelled.info["REF_energy"] = labels["energy"]
            labelled.arrays["REF_forces"] = labels["forces"]
            if labels["stress"] is not None:
                labelled.info["REF_stress"] = labels["stress"]
            labelled.info.update({"oracle": spec.name, "oracle_hash": oracle_hash, "group": group,
                                  "stress_unit": "eV/A^3 (ASE sign: positive is tensile)"})
            store.add_label(labelled, rec)
            summary.labelled += 1
        bar.update()

    workers = max(1, min(workers, len(todo)))
    if executor == "mpi":
        with mpi_executor(workers, spec) as pool:
            futures = [pool.submit(_label_one, job) for job in todo]
            for fut in as_completed(futures):
                record_result(*fut.result())
    elif workers == 1:
        _init_worker(spec)
        for job in todo:
            record_result(*_label_one(job))
    else:
        from lammps_al.runtime import THREAD_VARIABLES

        for var in THREAD_VARIABLES:
            os.environ[var] = "1"
        from lammps_al.descriptors import pool_start_method

        ctx = mp.get_context(pool_start_method())
        with ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init_worker, initargs=(spec,)) as pool:
            futures = [pool.submit(_label_one, job) for job in todo]
            for fut in as_completed(futures):
                record_result(*fut.result())
    bar.close()
    return summary
