"""Model benchmark: the shipped potentials in LAMMPS (native vs mliappy vs native mode with sigma), 1 and 2
ranks, best of interleaved repeats, and the ratios the targets are set on."""

from __future__ import annotations

from pathlib import Path

from lammps_al.core.errors import LammpsRunError

MODEL_INPUT = """\
units metal
atom_style atomic
lattice fcc 4.05
region box block 0 {reps} 0 {reps} 0 {reps}
create_box 1 box
create_atoms 1 box
mass 1 26.9815
displace_atoms all random 0.05 0.05 0.05 {seed}
include {pair}
velocity all create 300 {seed} mom yes rot yes
fix nve all nve
timestep 0.002
thermo {steps}
run {steps}
"""

NATIVE_PAIR = """\
pair_style snap
pair_coeff * * {potdir}/{name}.snapcoeff {potdir}/{name}.snapparam Al
"""


def _loop_time(log: str) -> float:
    import re

    m = re.findall(r"Loop time of ([0-9.eE+-]+) on", log)
    if not m:
        raise LammpsRunError(f"no loop time in LAMMPS output:\n{log[-2000:]}")
    return float(m[-1])


def bench_model(potdir: Path, reps: int = 10, steps: int = 50, every: int = 10, ranks=(1, 2),
                repeat: int = 2) -> list[str]:
    """Loop times (s) of the shipped potentials on a (4 reps^3)-atom fcc Al cell, and the target ratios.

    Every case runs ``repeat`` times, interleaved with the others (this machine is shared and noisy); the
    shortest loop time of each is kept."""
    import subprocess
    import tempfile

    from lammps_al.core import runtime

    potdir = Path(potdir).resolve()
    cases = {
        "linear native snap": ("Al_linear", "native"),
        "linear native + sigma": ("Al_linear", "snap"),
        "linear mliappy + sigma": ("Al_linear", "mliappy"),
        "quadratic native snap": ("Al_quadratic", "native"),
        "quadratic mliappy + sigma": ("Al_quadratic", "mliappy"),
    }
    times: dict[tuple[str, int], float] = {}
    natoms = 4 * reps**3
    lines = [f"model benchmark: {natoms} fcc Al atoms, {steps} MD steps, sigma every {every} steps, "
             f"best of {repeat} interleaved runs"]
    with tempfile.TemporaryDirectory(prefix="lammps-al-bench-") as tmp:
        work = Path(tmp)
        (work / "native_linear.lammps").write_text(NATIVE_PAIR.format(potdir=potdir, name="Al_linear"))
        (work / "native_quadratic.lammps").write_text(NATIVE_PAIR.format(potdir=potdir, name="Al_quadratic"))
        for _ in range(repeat):
            for label, (name, mode) in cases.items():
                pair = (work / f"native_{name.split('_')[1]}.lammps" if mode == "native"
                        else potdir / f"{name}.{mode}.lammps")
                (work / f"in.{mode}.{name}").write_text(
                    MODEL_INPUT.format(reps=reps, seed=4928, pair=pair, steps=steps))
                for n in ranks:
                    cmd = runtime.mpi_command(n, str(runtime.find_lmp()), "-nocite", "-log", "none", "-in",
                                              f"in.{mode}.{name}", "-var", "lal_potdir", str(potdir),
                                              "-var", "lal_score_every", str(every))
                    proc = subprocess.run(cmd, cwd=work, env=runtime.lammps_env(), capture_output=True, text=True,
                                          timeout=1800)
                    if proc.returncode != 0:
                        raise LammpsRunError(f"{label} on {n} rank(s) failed:\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}")
                    t = _loop_time(proc.stdout)
                    times[(label, n)] = min(t, times.get((label, n), float("inf")))
        for label in cases:
            for n in ranks:
                lines.append(f"  {label:<28s} {n} rank(s): {times[(label, n)]:8.2f} s "
                             f"({times[(label, n)] / steps * 1e3:7.1f} ms/step)")
    r1 = ranks[0]
    lines.append("ratios (target):")
    lines.append(f"  quadratic mliappy+sigma / native quadratic: "
                 f"{times[('quadratic mliappy + sigma', r1)] / times[('quadratic native snap', r1)]:.3f} (<= 1.05)")
    lines.append(f"  linear native+sigma / native linear:        "
                 f"{times[('linear native + sigma', r1)] / times[('linear native snap', r1)]:.3f} (<= 1.10)")
    lines.append(f"  linear mliappy+sigma / native linear:       "
                 f"{times[('linear mliappy + sigma', r1)] / times[('linear native snap', r1)]:.3f} (no target)")
    if len(ranks) > 1:
        r2 = ranks[-1]
        for label in cases:
            lines.append(f"  speed-up {r1} -> {r2} ranks, {label:<28s}: {times[(label, r1)] / times[(label, r2)]:.2f}x "
                         f"(>= 1.8)")
    return lines
