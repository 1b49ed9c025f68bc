"""The Ta06A regression run: LAMMPS's own example against its reference log, through three pair styles.

The 128-atom bcc Ta NVE example of ``examples/mliap`` runs through native ``pair_style snap``,
``pair_style mliap model linear`` and ``pair_style mliap model mliappy`` with lammps_al's
:class:`~lammps_al.models.snap.LinearSNAP`, entered through ``lmp -in`` or through Python driving LAMMPS
(``lammps.lammps(comm=MPI.COMM_WORLD)``), serial or under ``mpirun``. E_pair and TotEng per atom at steps
0 and 100 are compared with ``examples/mliap/log.21Jun20.mliap.snap.Ta06A.g++.1``.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

from lammps_al.core import runtime
from lammps_al.core.errors import LammpsNotReadyError, LammpsRunError
from lammps_al.core.lammps_log import read_thermo

VARIANTS = {
    "snap": "Ta06A.snap",
    "mliap_linear": "Ta06A.mliap",
    "mliappy": "Ta06A.mliappy",
}
DOORS = ("lmp", "python")
REFERENCE_LOG = "examples/mliap/log.21Jun20.mliap.snap.Ta06A.g++.1"
STEPS = (0, 100)
COLUMNS = ("E_pair", "TotEng")
# The log prints 8 significant digits: two correctly rounded prints of one number differ by at most one
# unit in the last place (1e-6 eV/atom for these values).
ROUNDING = 1.01e-6

MLIAPPY_SNIPPET = textwrap.dedent("""\
    # Ta06A through pair_style mliap model mliappy with lammps_al's linear SNAP model
    variable zblcutinner equal 4
    variable zblcutouter equal 4.8
    variable zblz equal 73
    pair_style hybrid/overlay zbl ${zblcutinner} ${zblcutouter} &
        mliap model mliappy LATER descriptor sna Ta06A.mliap.descriptor
    pair_coeff 1 1 zbl ${zblz} ${zblz}
    pair_coeff * * mliap Ta
    python source here "from lammps_al.models.snap import LinearSNAP; from lammps_al.inrun.adapter import load_model; load_model(LinearSNAP.from_mliap_model_file('Ta06A.mliap.model'))"
""")

PYTHON_DRIVER = textwrap.dedent("""\
    import sys
    from mpi4py import MPI
    import lammps
    from lammps_al.inrun.adapter import activate

    lmp = lammps.lammps(comm=MPI.COMM_WORLD, cmdargs=["-nocite", "-log", "log.lammps", "-screen", "none"])
    activate(lmp)
    lmp.file(sys.argv[1])
    lmp.close()
""")


@dataclass
class CaseResult:
    variant: str
    door: str
    nprocs: int
    rows: dict[int, dict[str, float]]
    reference: dict[int, dict[str, float]]
    log: Path

    @property
    def max_deviation(self) -> float:
        return max(abs(self.rows[s][c] - self.reference[s][c]) for s in STEPS for c in COLUMNS)

    @property
    def ok(self) -> bool:
        return self.max_deviation <= ROUNDING


def reference_dir() -> Path:
    record = runtime.install_record()
    if not record or not record.get("reference_dir"):
        raise LammpsNotReadyError(f"no LAMMPS reference data installed in {sys.prefix}: {runtime.BUILD_HINT}.")
    return Path(record["reference_dir"])


def reference_rows(ref_dir: Path) -> dict[int, dict[str, float]]:
    return {int(r["Step"]): r for r in read_thermo(ref_dir / REFERENCE_LOG)[0]}


def prepare(workdir: Path, ref_dir: Path, variant: str) -> str:
    """Write the example's input, with ``variant``'s pair definition included, into ``workdir``."""
    mliap, snap = ref_dir / "examples/mliap", ref_dir / "examples/snap"
    for f in ("Ta06A.mliap", "Ta06A.mliap.model", "Ta06A.mliap.descriptor"):
        shutil.copy(mliap / f, workdir / f)
    for f in ("Ta06A.snap", "Ta06A.snapcoeff", "Ta06A.snapparam"):
        shutil.copy(snap / f, workdir / f)
    (workdir / "Ta06A.mliappy").write_text(MLIAPPY_SNIPPET)
    text = (mliap / "in.mliap.snap.Ta06A").read_text()
    if "include Ta06A.mliap" not in text:
        raise LammpsNotReadyError(f"{mliap / 'in.mliap.snap.Ta06A'} has no 'include Ta06A.mliap' line to swap.")
    (workdir / "in.ta06a").write_text(text.replace("include Ta06A.mliap", f"include {VARIANTS[variant]}"))
    (workdir / "driver.py").write_text(PYTHON_DRIVER)
    return "in.ta06a"


def run_case(workdir: Path, variant: str, door: str, nprocs: int, ref_dir: Path | None = None) -> CaseResult:
    """Run one combination in ``workdir`` and read its thermo table back."""
    ref_dir = ref_dir or reference_dir()
    workdir.mkdir(parents=True, exist_ok=True)
    script = prepare(workdir, ref_dir, variant)
    if door == "lmp":
        args = [str(runtime.find_lmp()), "-nocite", "-log", "log.lammps", "-screen", "none", "-in", script]
    else:
        args = [sys.executable, "driver.py", script]
    cmd = runtime.mpi_command(nprocs, *args)
    proc = subprocess.run(cmd, cwd=workdir, env=runtime.lammps_env(), stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, timeout=600, stdin=subprocess.DEVNULL)
    log = workdir / "log.lammps"
    if proc.returncode != 0 or not log.is_file():
        raise LammpsRunError(f"{' '.join(cmd)} exited {proc.returncode} in {workdir}:\n{proc.stdout[-3000:]}")
    text = log.read_text()
    if f"on {nprocs} procs" not in text:
        raise LammpsRunError(f"{log} does not report a run on {nprocs} MPI ranks")
    rows = {int(r["Step"]): r for r in read_thermo(text)[-1]}
    return CaseResult(variant, door, nprocs, rows, reference_rows(ref_dir), log)
