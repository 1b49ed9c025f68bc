"""Tasks on ``mpi4py.futures`` ranks: one task per rank, each confined to its own rank.

Start the command as ``mpirun -np N+1 python -m mpi4py.futures -m lammps_al.cli ...`` (N worker ranks, the
first runs the command), or plainly, and mpi4py spawns ``workers`` ranks itself (``MPI_Comm_spawn``; in a
batch job start the command with ``mpiexec -n 1`` so the spawned ranks land in the allocation). A task that
starts an MPI program (an exploration run) starts it as its own ``mpirun`` job, its environment cleared of
the worker rank's MPI variables.
"""

from __future__ import annotations

from lammps_al.core.errors import ExecutorError
from lammps_al.executors.base import Executor


class MPIFuturesExecutor(Executor):
    kind = "mpi"
    confines_mpi = True

    def __init__(self, config, workers, purpose="tasks", workdir=None, nprocs=1):
        super().__init__(config, workers, purpose, workdir, nprocs)
        import os

        from lammps_al.core.runtime import venv_bin

        # a singleton MPI process spawns its workers through the process manager, which MPICH looks for on PATH
        os.environ["PATH"] = f"{venv_bin()}{os.pathsep}{os.environ.get('PATH', '')}"
        try:
            from mpi4py.futures import MPIPoolExecutor
        except ImportError as exc:
            raise ExecutorError(f"[executor] kind = 'mpi' needs mpi4py: {exc}") from None
        self.pool = MPIPoolExecutor(max_workers=self.workers)

    def submit(self, fn, *args, **kwargs):
        return self.pool.submit(fn, *args, **kwargs)

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)
