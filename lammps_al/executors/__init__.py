"""Where tasks run: one interface for labelling (one oracle call per task) and exploration (one
``mpirun -np P lmp`` per task), three implementations, chosen by ``[executor] kind``:

- ``local`` (default): processes on this machine (labelling) and threads that each wait on one LAMMPS
  subprocess (exploration);
- ``mpi``: ``mpi4py.futures`` ranks, spawned by the command or started by
  ``mpirun -np N+1 python -m mpi4py.futures -m lammps_al.cli ...``;
- ``parsl``: Parsl, locally (``provider = "local"``) or on a cluster (``provider = "slurm"``: blocks of
  nodes, MPI tasks through ``srun``), or from your own Parsl config file.

Every executor takes module-level functions and their arguments and returns
``concurrent.futures.Future`` objects; :meth:`Executor.as_completed` yields them as they finish. A new
executor is a class with :meth:`submit` and :meth:`close` in this package plus one line in ``BUILTIN``.
"""

from __future__ import annotations

from lammps_al.executors.base import BUILTIN, Executor, ExecutorConfig, ParslSettings, make_executor

__all__ = ["BUILTIN", "Executor", "ExecutorConfig", "ParslSettings", "make_executor"]
