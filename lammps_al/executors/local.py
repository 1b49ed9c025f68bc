"""Tasks on this machine: worker processes for Python work, threads for tasks that each wait on an MPI
program (exploration: ``mpirun -np P lmp``), in-process for a single worker."""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing as mp
import os

from lammps_al.core.runtime import THREAD_VARIABLES, pool_start_method
from lammps_al.executors.base import Executor


class InlineExecutor(cf.Executor):
    """Runs each task at submission, in this process (one worker: no process to start)."""

    def submit(self, fn, *args, **kwargs):
        future: cf.Future = cf.Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as exc:  # noqa: BLE001 - handed to the caller through the future
            future.set_exception(exc)
        return future


PARENT_POLL_S = 2.0


def exit_with_parent() -> None:
    """Worker initializer: a thread that ends the worker once the process that started it is gone. A pool
    killed with SIGKILL cannot tell its workers, which would otherwise go on computing (a DFT calculation:
    minutes) for nobody, and then wait forever."""
    import threading
    import time

    parent = os.getppid()

    def watch():
        while os.getppid() == parent:
            time.sleep(PARENT_POLL_S)
        os._exit(1)

    threading.Thread(target=watch, daemon=True, name="lammps_al-parent-watch").start()


class LocalExecutor(Executor):
    kind = "local"

    def __init__(self, config, workers, purpose="tasks", workdir=None, nprocs=1):
        super().__init__(config, workers, purpose, workdir, nprocs)
        if purpose == "mpi":
            self.pool = cf.ThreadPoolExecutor(self.workers, thread_name_prefix="lammps_al-run")
        elif self.workers == 1:
            self.pool = InlineExecutor()
        else:
            for var in THREAD_VARIABLES:        # one BLAS/OpenMP thread per worker process
                os.environ[var] = "1"
            self.pool = cf.ProcessPoolExecutor(self.workers, mp_context=mp.get_context(pool_start_method()),
                                               initializer=exit_with_parent)

    def submit(self, fn, *args, **kwargs):
        return self.pool.submit(fn, *args, **kwargs)

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)
