"""The stage runner: the one place that owns resume semantics.

A stage is a function returning a typed record (:mod:`lammps_al.core.records`). :func:`run_stage` returns
the record of a stage that already finished (its marker ``DIR/STAGE.json`` exists) without running it, and
otherwise runs the stage and writes its marker atomically when it ends. A kill at any moment therefore
redoes at most the stage that was running; stages that write data (labelling) skip what is already there.
:func:`workdir_lock` keeps a second loop out of a workdir that a running loop holds.
"""

from __future__ import annotations

import fcntl
import logging
import os
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, TypeVar

from lammps_al.core.errors import LoopError
from lammps_al.core.records import read_marker, write_marker

log = logging.getLogger(__name__)
R = TypeVar("R")


def run_stage(directory: Path, record_type: type[R], stage: Callable[[], R]) -> R:
    """The record of ``record_type.STAGE`` in ``directory``: read if it finished, else run ``stage`` now."""
    done = read_marker(directory, record_type)
    if done is not None:
        log.debug("%s/%s: done before, skipped", Path(directory).name, record_type.STAGE)
        return done
    start = time.perf_counter()
    record = stage()
    log.debug("%s/%s: %.1f s", Path(directory).name, record_type.STAGE, time.perf_counter() - start)
    return write_marker(directory, record)


LOCK_FILE = ".loop.lock"


@contextmanager
def workdir_lock(workdir: Path):
    """Hold ``workdir/.loop.lock`` (an exclusive ``flock``, released by the kernel when this process ends,
    however it ends) while the body runs; a second loop in the same workdir is refused with the first's pid."""
    path = Path(workdir) / LOCK_FILE
    try:
        fh = open(path, "a+")
    except OSError as exc:
        raise LoopError(f"cannot open the loop's lock file {path}: {exc.strerror}") from None
    try:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            holder = fh.read().strip() or "unknown"
            raise LoopError(f"another lammps-al loop (pid {holder}) is running in {workdir}: wait for it to end or "
                            f"stop it, then continue with --resume") from None
        fh.seek(0)
        fh.truncate()
        fh.write(f"{os.getpid()}\n")
        fh.flush()
        yield
    finally:
        fh.close()
