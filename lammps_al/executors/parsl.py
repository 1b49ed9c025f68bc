"""Tasks through Parsl (the workflow engine of LANL's ALF and of psiflow): locally or on Slurm.

- ``provider = "local"``: a HighThroughputExecutor whose worker processes run on this machine (Python
  tasks one core each; exploration tasks each run ``mpirun -np P lmp``).
- ``provider = "slurm"``: Python tasks on a HighThroughputExecutor fed by Slurm jobs (``SrunLauncher``, one
  worker pool per node); exploration tasks on Parsl's ``MPIExecutor`` (``SimpleLauncher``), each run
  started with ``$PARSL_MPI_PREFIX`` (``srun --ntasks ... --nodelist ...``) inside a block of
  ``nodes_per_block`` nodes that ``runs_per_block`` runs share.
- ``config_file``: your own ``make_config(run_dir)`` returning a ``parsl.config.Config`` whose executors are
  labelled "tasks" and "mpi".

Parsl's run directory is ``WORKDIR/parsl`` (logs, submit scripts). One Parsl config is loaded per
executor and cleaned up when it closes; task functions are lammps_al's own (importable on the workers).
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

from lammps_al.core.errors import ConfigError, ExecutorError
from lammps_al.core.runtime import THREAD_VARIABLES
from lammps_al.executors.base import Executor, ParslSettings


def _worker_init(extra: str) -> str:
    pins = "; ".join(f"export {v}=1" for v in THREAD_VARIABLES)
    venv = Path(sys.executable).parent
    return f"export PATH={venv}:$PATH; {pins}" + (f"; {extra}" if extra else "")


def build_config(settings: ParslSettings, purpose: str, workers: int, run_dir: Path, nprocs: int = 1):
    """The ``parsl.config.Config`` for ``purpose`` ("tasks" or "mpi"), from ``[executor.parsl]``."""
    from parsl.config import Config
    from parsl.executors import HighThroughputExecutor, MPIExecutor
    from parsl.launchers import SimpleLauncher, SrunLauncher
    from parsl.providers import LocalProvider, SlurmProvider

    if settings.config_file is not None:
        return _from_file(settings.config_file, run_dir)
    init = _worker_init(settings.worker_init)
    common = {"run_dir": str(run_dir), "strategy_period": settings.strategy_period, "usage_tracking": 0}
    if settings.provider == "local":
        executor = HighThroughputExecutor(
            label="mpi" if purpose == "mpi" else "tasks", address="127.0.0.1", max_workers_per_node=int(workers), cores_per_worker=1,
            encrypted=False, provider=LocalProvider(init_blocks=1, min_blocks=0, max_blocks=1, worker_init=init))
        return Config(executors=[executor], strategy="none", **common)
    slurm = {"partition": settings.partition or None, "account": settings.account or None,
             "nodes_per_block": settings.nodes_per_block, "init_blocks": 1, "min_blocks": 0,
             "max_blocks": settings.max_blocks, "walltime": settings.walltime,
             "scheduler_options": settings.scheduler_options, "worker_init": init}
    address = {"address": settings.address} if settings.address else {}
    if purpose == "mpi":
        executor = MPIExecutor(label="mpi", mpi_launcher=settings.mpi_launcher,
                               max_workers_per_block=settings.runs_per_block,
                               provider=SlurmProvider(launcher=SimpleLauncher(), **slurm), **address)
    else:
        executor = HighThroughputExecutor(label="tasks", cores_per_worker=settings.cores_per_worker,
                                          provider=SlurmProvider(launcher=SrunLauncher(), **slurm), **address)
    return Config(executors=[executor], strategy="simple", **common)


def _from_file(path: Path, run_dir: Path):
    import importlib.util

    path = Path(path)
    spec = importlib.util.spec_from_file_location("lammps_al_parsl_config", path)
    if spec is None or not path.is_file():
        raise ConfigError(f"[executor.parsl] config_file {path} does not exist")
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as exc:  # noqa: BLE001 - the user's file: any error in it is named with the file
        raise ConfigError(f"[executor.parsl] config_file {path} cannot be run ({type(exc).__name__}: {exc}); it must "
                          f"define make_config(run_dir) returning a parsl.config.Config") from exc
    if not callable(getattr(module, "make_config", None)):
        raise ConfigError(f"{path} must define make_config(run_dir) returning a parsl.config.Config")
    try:
        return module.make_config(str(run_dir))
    except Exception as exc:  # noqa: BLE001
        raise ConfigError(f"[executor.parsl] config_file {path}: make_config({str(run_dir)!r}) failed "
                          f"({type(exc).__name__}: {exc})") from exc


def call(fn, *args, **kwargs):
    """The Parsl app every task runs through: ``fn`` travels as an argument (by reference for lammps_al's own
    functions), so any importable function (a builtin too) can be a task."""
    return fn(*args, **kwargs)


def call_mpi(fn, *args, parsl_resource_specification=None, **kwargs):
    """:func:`call` for Parsl's MPIExecutor, which hands each task its ranks through
    ``parsl_resource_specification`` and ``$PARSL_MPI_PREFIX``."""
    return fn(*args, **kwargs)


class ParslExecutor(Executor):
    kind = "parsl"

    def __init__(self, config, workers, purpose="tasks", workdir=None, nprocs=1):
        super().__init__(config, workers, purpose, workdir, nprocs)
        try:
            import parsl
        except ImportError:
            raise ExecutorError("[executor] kind = 'parsl' needs Parsl: pip install 'lammps_al[parsl]' (or pip "
                                "install parsl)") from None
        os.environ["PATH"] = str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", "")
        root = self.workdir if self.workdir is not None else Path(tempfile.mkdtemp(prefix="lammps_al-parsl-"))
        self.settings: ParslSettings = config.parsl
        self.label = "mpi" if purpose == "mpi" else "tasks"
        parsl_config = build_config(self.settings, purpose, self.workers, root / "parsl", nprocs)
        self.uses_mpi_executor = any(type(e).__name__ == "MPIExecutor" for e in parsl_config.executors)
        self._parsl = parsl
        try:
            self.dfk = parsl.load(parsl_config)
        except Exception as exc:  # noqa: BLE001 - e.g. a config already loaded in this process
            raise ExecutorError(f"Parsl could not load its config: {type(exc).__name__}: {exc}") from exc
        mpi = self.uses_mpi_executor and purpose == "mpi"
        self._app = parsl.python_app(call_mpi if mpi else call, executors=[self.label])
        self._mpi = mpi

    def submit(self, fn, *args, **kwargs):
        if self._mpi:
            ranks = self.settings.ranks_per_node or self.nprocs
            kwargs["parsl_resource_specification"] = {      # a fresh dict each time: Parsl edits it in place
                "num_nodes": self.settings.nodes_per_run, "ranks_per_node": ranks,
                "num_ranks": ranks * self.settings.nodes_per_run}
        return self._app(fn, *args, **kwargs)

    def close(self) -> None:
        if getattr(self, "dfk", None) is not None:
            try:
                self._parsl.dfk().cleanup()
            finally:
                self.dfk = None
