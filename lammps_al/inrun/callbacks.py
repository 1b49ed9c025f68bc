"""Python inside LAMMPS: the handle, string variables, and the one way a callback fails.

Two kinds of failure, one path each:

- **setup** (a ``python ... invoke`` line of a snippet, run by every rank alike): :func:`fail_setup` prints
  ``ERROR (lammps_al): message`` on every rank's stderr and in the LAMMPS log, then ends LAMMPS with
  ``quit 2``: all ranks reach the same verdict (none waits for another), and no Python traceback is the
  last word.
- **during a run** (the fix, the scoring inside the model, the native scorer: code that may fail on one
  rank only): wrap the callback with :func:`guarded`. An exception is printed with its rank and
  traceback, recorded in the file set by :func:`record_errors_in` (the fix's ``OUTDIR/runs/RUN.error-rankN.txt``),
  and the communicator is aborted: LAMMPS's own error path would wait in a barrier for ranks that never
  arrive.
"""

from __future__ import annotations

import functools
import sys
import time
import traceback
from pathlib import Path

from lammps_al.core.errors import InputScriptError, LammpsAlError

PREFIX = "ERROR (lammps_al)"


def lammps_handle(ptr):
    """A ``lammps`` object for the instance calling Python (``ptr`` from ``SELF`` or a fix callback)."""
    import lammps

    return lammps.lammps(ptr=ptr)


def mpi_comm(lmp):
    """LAMMPS's communicator as an mpi4py object (``lammps(ptr=...)`` has no ``.comm``)."""
    return lmp.get_mpi_comm()


def _extract(lmp, name: str):
    from lammps import LMP_VAR_STRING

    try:
        return lmp.extract_variable(name, None, LMP_VAR_STRING)
    except AttributeError:      # the lammps module of 2025 fails on undefined variables instead of giving None
        return None


def string_variable(lmp, name: str, default: str | None = None) -> str:
    """The value of LAMMPS variable ``name`` as a string; ``default`` (or an error) when it is undefined."""
    value = _extract(lmp, name)
    if value is None:
        if default is None:
            raise InputScriptError(f"LAMMPS variable {name} is not defined (the lammps_al snippets define it)")
        return default
    return str(value)


def has_variable(lmp, name: str) -> bool:
    return _extract(lmp, name) is not None


def set_string_variable(lmp, name: str, value: str) -> None:
    """Set a LAMMPS string variable (set_variable is deprecated since 2024)."""
    setter = getattr(lmp, "set_string_variable", None) or lmp.set_variable
    setter(name, value)


SETUP_EXIT_CODE = 2


def fail_setup(message: str, lmp=None) -> None:
    """Stop LAMMPS at a setup line with ``message`` (call it on every rank: they all run the same setup).

    With the LAMMPS handle ``lmp``, LAMMPS ends cleanly with ``quit 2`` after the message went to every
    rank's stderr and to the LAMMPS log; without one (or if quitting fails) an :class:`InputScriptError` is
    raised, which LAMMPS reports as a failed Python function."""
    sys.stderr.write(f"{PREFIX}: {message}\n")
    sys.stderr.flush()
    if lmp is not None:
        text = f"{PREFIX}: {message}".replace('"', "'")
        if text.count("'") % 2:          # LAMMPS refuses a line with an unmatched quote, even inside quotes
            text = text.replace("'", "`")
        try:
            lmp.command(f'print "{text}" screen no')
        except Exception:  # noqa: BLE001 - no log file is fine
            pass
        lmp.command(f"quit {SETUP_EXIT_CODE}")
    raise InputScriptError(message)


_error_record: Path | None = None


def record_errors_in(path_template: Path | None) -> None:
    """Where :func:`abort_all` writes a rank's traceback: ``path_template`` with ``{rank}`` filled in."""
    global _error_record
    _error_record = path_template


def mpi_rank_and_size() -> tuple[int, int, object]:
    try:
        from mpi4py import MPI

        return MPI.COMM_WORLD.Get_rank(), MPI.COMM_WORLD.Get_size(), MPI
    except Exception:  # noqa: BLE001 - no MPI: serial
        return 0, 1, None


def abort_all(text: str, message: str | None = None) -> None:
    """Record ``text`` (a traceback) and abort every rank. The rank prints ``message`` (a lammps_al error: it
    says what went wrong and what to do) or, for anything else, the traceback, with its number."""
    rank, size, MPI = mpi_rank_and_size()
    recorded = None
    if _error_record is not None:
        try:
            from lammps_al.core.io import atomic_write_text

            recorded = Path(str(_error_record).format(rank=rank))
            atomic_write_text(recorded, text)
        except Exception:  # noqa: BLE001 - the abort must happen whatever the disk says
            recorded = None
    if message is not None:
        where = f" (traceback in {recorded})" if recorded is not None else ""
        sys.stderr.write(f"{PREFIX} on rank {rank}: {message}{where}\n")
    else:
        sys.stderr.write(f"{PREFIX} on rank {rank}:\n{text}\n")
    sys.stderr.flush()
    if MPI is not None and size > 1:
        time.sleep(1.0)     # let mpirun forward this rank's stderr before the abort tears the job down
        MPI.COMM_WORLD.Abort(1)
    raise SystemExit(1)


def guarded(fn):
    """Run a LAMMPS callback; on any exception print rank + traceback, record it and abort every rank."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except LammpsAlError as exc:       # a full disk, a bad file: its message is the last word
            abort_all(traceback.format_exc(), message=str(exc))
        except Exception:  # noqa: BLE001 - everything must abort cleanly
            abort_all(traceback.format_exc())
    return wrapper
