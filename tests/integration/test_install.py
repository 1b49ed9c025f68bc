"""A normal install: ``pip install .`` (not editable) into a fresh virtual environment, ``lammps-al build``
(from this machine's cache), then the loop, an input script and validation from an empty folder. Nothing
may depend on the source tree: the shipped inputs and potentials travel in the wheel."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

LOOP = """\
[loop]
workdir = "state"
iterations = 1
nprocs = 2
max_select = 3
start_size = "small"
lammps_variables = { lal_flag = 0.012, lal_halt = 0.5, lal_min_write_interval = 20, lal_max_writes = 3 }

[[explore]]
name = "melt"
input = "in_files/explore_melt.in"
variables = { reps = 2, steps = 200, temperature = 1400 }

[oracle]
name = "eam"

[descriptor]
elements = ["Al"]
twojmax = 4
rcutfac = 4.5
radelem = [0.5]
wj = [1.0]
bzeroflag = 1
"""


@pytest.mark.slow
def test_a_normal_install_runs_everything_from_an_empty_folder(tmp_path, lammps_install):
    venv, work = tmp_path / "venv", tmp_path / "empty"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "LAMMPS_AL_LMP")}
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"

    def run(*cmd, timeout=900):
        proc = subprocess.run([str(c) for c in cmd], cwd=work, env=env, capture_output=True, text=True,
                              timeout=timeout, stdin=subprocess.DEVNULL)
        assert proc.returncode == 0, f"{' '.join(map(str, cmd))}:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
        return proc.stdout

    run(sys.executable, "-m", "venv", venv)
    run(venv / "bin" / "python", "-m", "pip", "install", "--quiet", ROOT)
    where = run(venv / "bin" / "python", "-c", "import lammps_al; print(lammps_al.__file__)").strip()
    assert where.startswith(str(venv)), where                       # the wheel, not the checkout
    run(venv / "bin" / "lammps-al", "build", timeout=3600)
    shipped = run(venv / "bin" / "lammps-al", "files", "in_files").strip()
    assert shipped.startswith(str(venv)) and (Path(shipped) / "lammps_al_fix.lammps").is_file()

    (work / "loop.toml").write_text(LOOP)
    out = run(venv / "bin" / "lammps-al", "loop", "loop.toml", "--no-progress")
    assert "iteration 0:" in out and (work / "state" / "iter_001" / "potential" / "Al.npz").is_file()
    run(venv / "bin" / "mpirun", "-np", "2", venv / "bin" / "lmp", "-log", "none", "-in",
        Path(shipped) / "explore_heating.in", "-var", "steps", "20", "-var", "reps", "2", "-var", "lal_fix_outdir", "fix")
    assert list((work / "fix" / "runs").glob("*.csv"))
    out = run(venv / "bin" / "lammps-al", "validate", work / "state" / "iter_001" / "potential" / "Al.npz",
              "--no-melting", "--no-held-out")
    assert "lattice_constant_A" in out
    assert not list(work.glob("runinfo")) and sorted(p.name for p in work.iterdir()) == ["fix", "loop.toml", "state"]
