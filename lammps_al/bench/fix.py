"""Fix benchmark: the uncertainty fix's cost in the MD loop, writing a flagged configuration, cutting a local
environment from a 4,000- and a 32,000-atom cell."""

from __future__ import annotations

from pathlib import Path

from lammps_al.bench.model import _loop_time
from lammps_al.core.errors import LammpsRunError

FIX_INPUT = """\
units metal
atom_style atomic
atom_modify map array
lattice fcc 4.05
region box block 0 {reps} 0 {reps} 0 {reps}
create_box 1 box
create_atoms 1 box
mass 1 26.9815
reset_atoms id sort yes
replicate {replicate} {replicate} {replicate}
displace_atoms all random 0.05 0.05 0.05 {seed}
include {pair}
{fix}
velocity all create 300 {seed} mom yes rot yes loop geom
fix nve all nve
timestep {dt}
thermo {steps}
run {steps}
"""


def bench_fix(potdir: Path, reps: int = 10, steps: int = 50, every: int = 10, repeat: int = 2) -> list[str]:
    """Cost of the uncertainty fix relative to the MD loop, write time of a flagged configuration, and the
    time to cut a local environment from a 4,000- and a 32,000-atom cell."""
    import subprocess
    import tempfile

    from lammps_al.core import runtime
    from lammps_al.core.records import read_flagged, read_run_log

    potdir = Path(potdir).resolve()
    from lammps_al.core.resources import find_file

    fix_snippet = find_file("lammps_al_fix.lammps", "in_files", what="the fix snippet")
    pair = potdir / "Al_linear.snap.lammps"
    natoms = 4 * reps**3
    lines = [f"fix benchmark: {natoms} fcc Al atoms, linear SNAP (native mode), score every {every} steps"]

    def modify_time(text: str) -> float:
        import re

        m = re.findall(r"^Modify\s*\|\s*([0-9.eE+-]+)", text, re.M)
        return float(m[-1]) if m else float("nan")

    def run(work: Path, name: str, fix: str, replicate: int = 1, dt: float = 0.002, nsteps: int = steps,
            **variables) -> tuple[float, list[dict]]:
        (work / name).write_text(FIX_INPUT.format(reps=reps, replicate=replicate, seed=4928, pair=pair, fix=fix,
                                                  steps=nsteps, dt=dt))
        outdir = work / f"out-{name}"
        cmd = [str(runtime.find_lmp()), "-nocite", "-log", "none", "-in", name, "-var", "lal_potdir", str(potdir),
               "-var", "lal_score_every", str(every), "-var", "lal_fix_outdir", str(outdir)]
        for k, v in variables.items():
            cmd += ["-var", k, str(v)]
        proc = subprocess.run(cmd, cwd=work, env=runtime.lammps_env(), capture_output=True, text=True, timeout=3600)
        if proc.returncode != 0:
            raise LammpsRunError(f"{name} failed:\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}")
        run.modify = modify_time(proc.stdout)
        run.fix_ms = sum(r.fix_ms for r in read_run_log(p)) if (p := next(
            iter((outdir / "runs").glob("*.csv")), None)) else 0.0
        return _loop_time(proc.stdout), read_flagged(outdir)

    with tempfile.TemporaryDirectory(prefix="lammps-al-bench-fix-") as tmp:
        work = Path(tmp)
        loops, modify, fix_seconds = {"without": [], "with": []}, {"without": [], "with": []}, []
        for _ in range(repeat):
            loops["without"].append(run(work, "in.without", "")[0])
            modify["without"].append(run.modify)
            loops["with"].append(run(work, "in.with", f"include {fix_snippet}", lal_flag=100.0, lal_halt=1000.0)[0])
            modify["with"].append(run.modify)
            fix_seconds.append(run.fix_ms / 1e3)
        loop = min(loops["with"])
        lines.append(f"  MD loop, best of {repeat}: without the fix {min(loops['without']):.2f} s, with it "
                     f"{loop:.2f} s (whole-loop differences here are dominated by run-to-run noise in Pair)")
        lines.append(f"  the fix's own time (its callbacks, every {every} steps, nothing flagged): "
                     f"{min(fix_seconds) * 1e3:.1f} ms = {min(fix_seconds) / loop:.2%} of the loop (target <= 3 %)")
        lines.append(f"  LAMMPS Modify time (scoring + fix + integrator): without {min(modify['without']):.3f} s, "
                     f"with {min(modify['with']):.3f} s: {(min(modify['with']) - min(modify['without'])) / loop:+.2%} "
                     f"of the loop")
        _, written = run(work, "in.write", f"include {fix_snippet}", nsteps=3 * every, lal_flag=1e-9, lal_halt=1000.0,
                         lal_min_write_interval=0, lal_max_writes=3, lal_dedup=0)
        times = [e.seconds for e in written]
        lines.append(f"  writing one flagged {natoms}-atom configuration: {min(times):.3f} s (best of {len(times)}; "
                     f"target <= 0.1 s)")
        cut = {}
        for replicate in (1, 2):
            _, envs = run(work, f"in.env{replicate}", f"include {fix_snippet}", replicate=replicate, dt=0.0,
                          nsteps=every, lal_flag=1e-9, lal_halt=1000.0, lal_local_above=100, lal_max_envs=4)
            cut[natoms * replicate**3] = min(e.seconds for e in envs)
        (n_small, t_small), (n_big, t_big) = sorted(cut.items())
        lines.append(f"  cutting a local environment: {t_small * 1e3:.1f} ms from {n_small} atoms, {t_big * 1e3:.1f} ms "
                     f"from {n_big} atoms; ratio {t_big / t_small:.2f} (target within 20 %)")
    return lines
