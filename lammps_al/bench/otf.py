"""On-the-fly learning benchmark: what the OTF callback costs in the MD loop between updates (the same run
with the fix alone and with lammps_al_otf.lammps, learning but never flagging), and what one update costs on
top of the oracle (an OTF run that labels, its otf.csv)."""

from __future__ import annotations

import csv
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from lammps_al.bench.model import _loop_time
from lammps_al.core.errors import LammpsRunError

INPUT = """\
units metal
atom_style atomic
atom_modify map array
lattice fcc 4.05
region box block 0 {reps} 0 {reps} 0 {reps}
create_box 1 box
create_atoms 1 box
mass 1 26.9815
reset_atoms id sort yes
include {potdir}/Al_quadratic.mliappy.lammps
include {in_files}/{snippet}
velocity all create {temperature} 4928 mom yes rot yes
fix md all nvt temp {temperature} {temperature} 0.1
timestep 0.002
thermo {steps}
run {steps}
"""


def bench_otf(potdir: Path, in_files: Path, reps: int = 4, steps: int = 2000, repeat: int = 2,
              nprocs: int = 1) -> list[str]:
    from lammps_al.core import runtime

    config = (Path(in_files) / "al_otf.toml").read_text()
    quiet = config.replace("target = 0.05 ", "target = 10.0 ")      # learning, but nothing reaches 3 x 10 eV/A
    if quiet == config:
        raise LammpsRunError("in_files/al_otf.toml has no 'target = 0.05 ' line to raise for the benchmark")
    # the MD's cost between updates: no crystal check either (its labels at setup would make the repeated
    # runs, which share the store, start from different models)
    quiet = quiet.replace("crystal_tolerance = 0.05", "crystal_tolerance = 0.0")
    times: dict[str, list[float]] = {"fix alone": [], "fix + otf": []}
    with tempfile.TemporaryDirectory(prefix="lammps-al-bench-otf-") as tmp:
        work = Path(tmp)
        (work / "otf.toml").write_text(quiet)
        for _ in range(repeat):                       # interleaved: the machine is shared and noisy
            for name, snippet in (("fix alone", "lammps_al_fix.lammps"), ("fix + otf", "lammps_al_otf.lammps")):
                (work / "in.bench").write_text(INPUT.format(reps=reps, potdir=potdir, in_files=in_files,
                                                            snippet=snippet, steps=steps, temperature=300))
                args = [str(runtime.find_lmp()), "-nocite", "-log", "none", "-in", "in.bench", "-var", "lal_scorer",
                        "bayes_force", "-var", "lal_flag", "1e5", "-var", "lal_halt", "1e6", "-var",
                        "lal_otf_config", "otf.toml", "-var", "lal_otf_dir", str(work / "otf")]
                proc = subprocess.run(runtime.mpi_command(nprocs, *args), cwd=work, env=runtime.lammps_env(),
                                      capture_output=True, text=True, timeout=3600, stdin=subprocess.DEVNULL)
                if proc.returncode != 0:
                    raise LammpsRunError(f"{name} failed:\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}")
                times[name].append(_loop_time(proc.stdout))
    best = {k: min(v) for k, v in times.items()}
    lines = [f"otf benchmark: {4 * reps**3} fcc Al atoms, {steps} MD steps at 300 K, quadratic SNAP (mliappy), "
             f"bayes_force every 10 steps, {nprocs} rank(s), best of {repeat} interleaved runs",
             f"  fix alone        {best['fix alone']:8.2f} s",
             f"  fix + otf        {best['fix + otf']:8.2f} s   (learning on, no label: the callback's own cost)",
             f"  ratio otf / fix  {best['fix + otf'] / best['fix alone']:8.3f}   (target <= 1.05)"]
    return lines


def update_lines(csv_path: Path) -> list[str]:
    """One update's time on top of the oracle, from an OTF run's otf.csv."""
    rows = [r for r in csv.DictReader(open(csv_path)) if r["action"] == "update"] if Path(csv_path).is_file() else []
    if not rows:
        return [f"  no updates in {csv_path}"]
    upd = np.array([float(r["update_s"]) for r in rows])
    ora = np.array([float(r["oracle_s"]) for r in rows])
    return [f"  {len(rows)} updates in {csv_path}: update {np.median(upd):.3f} s median ({upd.min():.3f}-"
            f"{upd.max():.3f}), oracle {np.median(ora):.3f} s median (target: update <= 0.5 s)"]
