"""The stage runner: the one place that owns resume semantics.

A stage is a function returning a typed record (:mod:`lammps_al.core.records`). :func:`run_stage` returns
the record of a stage that already finished (its marker ``DIR/STAGE.json`` exists) without running it, and
otherwise runs the stage and writes its marker atomically when it ends. A kill at any moment therefore
redoes at most the stage that was running; stages that write data (labelling) skip what is already there.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Callable, TypeVar

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
