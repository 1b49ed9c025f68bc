"""The executor interface, its config section and its registry."""

from __future__ import annotations

import concurrent.futures as cf
import importlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Iterable, Iterator, Literal

from lammps_al.core.errors import ConfigError, ExecutorError

BUILTIN = {
    "local": "lammps_al.executors.local:LocalExecutor",
    "mpi": "lammps_al.executors.mpi:MPIFuturesExecutor",
    "parsl": "lammps_al.executors.parsl:ParslExecutor",
}


@dataclass(frozen=True)
class ParslSettings:
    """``[executor.parsl]``: how Parsl gets its workers.

    ``provider = "local"``: worker processes on this machine. ``"slurm"``: batch jobs ("blocks") of
    ``nodes_per_block`` nodes, at most ``max_blocks`` at once, in ``partition``/``account`` for ``walltime``;
    ``worker_init`` runs first in each job (activate the environment there); ``mpi_launcher`` starts each
    exploration run inside a block ("srun" on Slurm) with ``ranks_per_node`` ranks on each of its
    ``nodes_per_run`` nodes; ``runs_per_block`` exploration runs share a block. ``address`` is the address
    the workers reach this process at (the login node's interface; empty: Parsl finds one).
    ``config_file``: a Python file defining ``make_config(run_dir) -> parsl.config.Config`` with executors
    labelled "tasks" and "mpi"; it replaces everything above."""

    provider: Literal["local", "slurm"] = "local"
    config_file: Path | None = None
    partition: str = ""
    account: str = ""
    walltime: str = "01:00:00"
    nodes_per_block: int = 1
    max_blocks: int = 1
    scheduler_options: str = ""
    worker_init: str = ""
    mpi_launcher: Literal["srun", "mpiexec", "aprun"] = "srun"
    nodes_per_run: int = 1
    ranks_per_node: int = 0
    runs_per_block: int = 1
    cores_per_worker: float = 1.0
    address: str = ""
    strategy_period: float = 0.5

    def __post_init__(self):
        for name in ("nodes_per_block", "max_blocks", "nodes_per_run", "runs_per_block"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.ranks_per_node < 0 or not self.cores_per_worker > 0 or not self.strategy_period > 0:
            raise ConfigError(f"ranks_per_node must be >= 0 (0: [loop] nprocs), cores_per_worker and "
                              f"strategy_period > 0, got {self.ranks_per_node}, {self.cores_per_worker} and "
                              f"{self.strategy_period}")
        if not re.fullmatch(r"(\d+-)?\d+(:\d+){0,2}", self.walltime):
            raise ConfigError(f"walltime must be a Slurm time limit (HH:MM:SS, MM, MM:SS, D-HH, D-HH:MM or "
                              f"D-HH:MM:SS), got {self.walltime!r}")


@dataclass(frozen=True)
class ExecutorConfig:
    """``[executor]``: ``kind`` = "local", "mpi" or "parsl" (with ``[executor.parsl]``)."""

    kind: str = "local"
    parsl: ParslSettings = ParslSettings()

    def __post_init__(self):
        if self.kind not in BUILTIN and ":" not in self.kind:
            raise ConfigError(f"kind must be one of {sorted(BUILTIN)} (or 'package.module:Class'), got "
                              f"{self.kind!r}")


class Executor:
    """Runs module-level functions somewhere and hands back ``concurrent.futures.Future`` objects.

    ``purpose`` says what the tasks are: "tasks" (Python work, one core each: labelling) or "mpi" (each
    task starts an MPI program: exploration). ``workers``: tasks at once. ``workdir``: where the executor
    may keep its own files (Parsl's run directory). ``confines_mpi``: tasks run on MPI ranks of their own
    and must confine anything MPI-based (an oracle's LAMMPS or GPAW) to ``MPI.COMM_SELF``.
    """

    kind: ClassVar[str] = ""
    confines_mpi: ClassVar[bool] = False

    def __init__(self, config: ExecutorConfig, workers: int, purpose: str = "tasks", workdir: Path | None = None,
                 nprocs: int = 1):
        self.config = config
        self.workers = max(1, int(workers))
        self.purpose = purpose
        self.workdir = Path(workdir) if workdir is not None else None
        self.nprocs = nprocs

    def submit(self, fn, *args, **kwargs) -> cf.Future:
        raise NotImplementedError

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def mpi_prefix(self, nprocs: int) -> list[str] | None:
        """The launcher words an "mpi" task puts before its program (None: ``mpirun -np N`` from the venv)."""
        return None

    @staticmethod
    def as_completed(futures: Iterable[cf.Future]) -> Iterator[cf.Future]:
        return cf.as_completed(list(futures))


def executor_class(kind: str) -> type:
    path = BUILTIN.get(kind, kind)
    module_name, _, name = path.partition(":")
    try:
        return getattr(importlib.import_module(module_name), name)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"executor {kind!r}: cannot import {path} ({exc})") from None


def make_executor(config: ExecutorConfig | None, workers: int, purpose: str = "tasks", workdir: Path | None = None,
                  nprocs: int = 1) -> Executor:
    """An executor of ``config.kind`` for ``workers`` tasks at once."""
    config = config or ExecutorConfig()
    cls = executor_class(config.kind)
    try:
        return cls(config, workers, purpose=purpose, workdir=workdir, nprocs=nprocs)
    except (ConfigError, ExecutorError):
        raise
    except Exception as exc:  # noqa: BLE001 - a third-party engine failing to start
        raise ExecutorError(f"executor {config.kind!r} could not start: {type(exc).__name__}: {exc}") from exc
