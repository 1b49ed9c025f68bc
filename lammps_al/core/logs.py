"""Logging for lammps_al: one ``logging`` tree under "lammps_al", a rank-0 filter under MPI, a timer.

Library code logs (``log = logging.getLogger(__name__)``); the command line and the LAMMPS snippets call
:func:`setup_logging` once. Under MPI only rank 0's INFO and DEBUG lines are shown (every rank would print
the same); warnings and errors of every rank are shown, with the rank in front.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import time

_RANK_VARIABLES = ("PMI_RANK", "OMPI_COMM_WORLD_RANK", "MV2_COMM_WORLD_RANK", "SLURM_PROCID")


def mpi_rank() -> int:
    """This process's rank in MPI_COMM_WORLD (0 when not under MPI); mpi4py is asked only if imported."""
    mpi = sys.modules.get("mpi4py.MPI")
    if mpi is not None:
        try:
            return int(mpi.COMM_WORLD.Get_rank())
        except Exception:  # noqa: BLE001 - MPI not initialised yet
            pass
    for var in _RANK_VARIABLES:
        if os.environ.get(var, "").isdigit():
            return int(os.environ[var])
    return 0


class RankFilter(logging.Filter):
    """Keep rank 0's records, and every rank's warnings and errors (prefixed by the rank)."""

    def filter(self, record: logging.LogRecord) -> bool:
        rank = mpi_rank()
        if rank == 0:
            return True
        if record.levelno >= logging.WARNING:
            record.msg = f"[rank {rank}] {record.msg}"
            return True
        return False


def setup_logging(verbose: bool = False, stream=None) -> logging.Logger:
    """Send lammps_al's log to ``stream`` (stderr) with the rank filter; idempotent."""
    logger = logging.getLogger("lammps_al")
    logger.setLevel(logging.DEBUG if verbose else logging.INFO)
    if not any(getattr(h, "_lammps_al", False) for h in logger.handlers):
        handler = logging.StreamHandler(stream or sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
        handler.addFilter(RankFilter())
        handler._lammps_al = True
        logger.addHandler(handler)
        logger.propagate = False
    return logger


@contextlib.contextmanager
def timer(label: str, logger: logging.Logger | None = None, timings: dict | None = None):
    """Time a block: logs "label: 1.23 s" at DEBUG and stores the seconds in ``timings[label]``."""
    start = time.perf_counter()
    try:
        yield
    finally:
        elapsed = time.perf_counter() - start
        if timings is not None:
            timings[label] = elapsed
        (logger or logging.getLogger("lammps_al")).debug("%s: %.2f s", label, elapsed)
