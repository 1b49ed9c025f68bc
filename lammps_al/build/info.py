"""What the LAMMPS in use can do: version, packages, MPI, and whether the two couplings lammps_al needs work.

Each capability is probed by really using it in a small ``lmp`` run (a 1-atom box): ``pair_style mliap
model mliappy`` with a Python model loaded through ``lammps.mliap.load_model``, and ``fix python/invoke``
calling a Python function that leaves a mark. A missing package is reported with what would fix it.
"""

from __future__ import annotations

import re
import subprocess
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

from lammps_al.core import runtime
from lammps_al.core.errors import LammpsNotReadyError

REQUIRED_PACKAGES = ("ML-IAP", "ML-SNAP", "PYTHON", "MANYBODY")

_MLIAPPY_PROBE = """\
units metal
boundary p p p
region box block 0 4 0 4 0 4
create_box 1 box
create_atoms 1 single 1 1 1
create_atoms 1 single 2.5 1 1
mass 1 27.0
pair_style mliap model mliappy LATER descriptor sna {descriptor}
pair_coeff * * Al
python source here \"\"\"
import numpy
import lammps.mliap

class ProbeModel:
    n_params, n_descriptors, n_elements = 6, 5, 1

    def __call__(self, elems, descriptors, beta, energy):
        energy[:] = descriptors.sum(axis=1)
        beta[:] = 1.0

lammps.mliap.load_model(ProbeModel())
\"\"\"
run 0
print "LAMMPS_AL_PROBE_OK $(pe)"
"""

_DESCRIPTOR = """\
rcutfac 4.0
twojmax 2
nelems 1
elems Al
radelems 0.5
welems 1
rfac0 0.99363
rmin0 0
bzeroflag 0
"""

_INVOKE_PROBE = """\
units metal
region box block 0 4 0 4 0 4
create_box 1 box
create_atoms 1 single 1 1 1
mass 1 27.0
pair_style zero 3.0
pair_coeff * *
python source here \"\"\"
def _probe_callback(ptr):
    with open('{marker}', 'a') as fh:
        fh.write('called ')
\"\"\"
fix probe all python/invoke 1 end_of_step _probe_callback
run 2
"""


@dataclass
class LammpsInfo:
    lmp: str | None = None
    lammps_version: str | None = None
    packages: list[str] = field(default_factory=list)
    mpi: str | None = None
    mliappy: bool = False
    python_invoke: bool = False
    potentials_dir: str | None = None
    python_module: str | None = None
    problems: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return asdict(self)

    @property
    def ok(self) -> bool:
        return not self.problems


def _run_lmp(lmp: Path, script: str, workdir: Path, timeout: float = 120) -> subprocess.CompletedProcess:
    (workdir / "in.probe").write_text(script)
    return subprocess.run([str(lmp), "-nocite", "-log", "none", "-in", "in.probe"], cwd=workdir,
                          env=runtime.lammps_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, timeout=timeout, stdin=subprocess.DEVNULL)


def _first_error(output: str) -> str:
    for line in output.splitlines():
        if "ERROR" in line or "Error" in line or "error" in line:
            return line.strip()
    return output.strip().splitlines()[-1] if output.strip() else "no output"


def _first_line(output: str) -> str:
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    return lines[0] if lines else "no output"


def parse_help(text: str) -> tuple[str | None, list[str], str | None]:
    """Version, installed packages and MPI library from ``lmp -h`` output."""
    version = None
    m = re.search(r"Large-scale Atomic/Molecular Massively Parallel Simulator - (.+?)\n", text)
    if m:
        version = m.group(1).strip()
    packages: list[str] = []
    m = re.search(r"Installed packages:\s*\n\n(.*?)\n\n", text, re.S)
    if m:
        packages = m.group(1).split()
    mpi = None
    m = re.search(r"^MPI v[\d.]+:\s*(.+)$", text, re.M)
    if m:
        mpi = m.group(1).strip()
    return version, packages, mpi


def collect() -> LammpsInfo:
    info = LammpsInfo()
    try:
        lmp = runtime.find_lmp()
    except LammpsNotReadyError as exc:
        info.problems.append(str(exc))
        return info
    info.lmp = str(lmp)
    try:
        info.potentials_dir = str(runtime.potentials_dir())
    except LammpsNotReadyError as exc:
        info.problems.append(str(exc))
    proc = subprocess.run([str(lmp), "-h"], env=runtime.lammps_env(), stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, timeout=60, stdin=subprocess.DEVNULL)
    info.lammps_version, info.packages, info.mpi = parse_help(proc.stdout)
    if info.mpi:
        info.mpi = " ".join(info.mpi.split())
    if proc.returncode != 0 or info.lammps_version is None:
        info.problems.append(f"{lmp} does not start (exit {proc.returncode}): {_first_line(proc.stdout)}")
        _check_python_module(info)
        return info
    missing = [p for p in REQUIRED_PACKAGES if p not in info.packages]
    if missing:
        info.problems.append(f"{lmp} lacks the LAMMPS package(s) {', '.join(missing)}: {runtime.BUILD_HINT} "
                             f"to get a LAMMPS with them.")
    with tempfile.TemporaryDirectory(prefix="lammps-al-info-") as tmp:
        work = Path(tmp)
        (work / "probe.descriptor").write_text(_DESCRIPTOR)
        if "PYTHON" in info.packages:
            marker = work / "invoked"
            out = _run_lmp(lmp, _INVOKE_PROBE.format(marker=marker), work)
            info.python_invoke = marker.is_file() and marker.read_text().count("called") >= 2
            if not info.python_invoke:
                info.problems.append(f"fix python/invoke does not work in {lmp}: {_first_error(out.stdout)}")
        else:
            info.problems.append(f"{lmp} has no PYTHON package, so fix python/invoke is missing.")
        if "ML-IAP" in info.packages and "PYTHON" in info.packages:
            out = _run_lmp(lmp, _MLIAPPY_PROBE.format(descriptor="probe.descriptor"), work)
            info.mliappy = "LAMMPS_AL_PROBE_OK" in out.stdout
            if not info.mliappy:
                info.problems.append(f"pair_style mliap model mliappy does not work in {lmp} (ML-IAP's python "
                                     f"coupling needs MLIAP_ENABLE_PYTHON at build time): {_first_error(out.stdout)}")
        else:
            lacking = " and ".join(p for p in ("ML-IAP", "PYTHON") if p not in info.packages)
            info.problems.append(f"{lmp} lacks the {lacking} package, so pair_style mliap model mliappy "
                                 f"(ML-IAP's python coupling) is missing.")
    _check_python_module(info)
    return info


def _check_python_module(info: LammpsInfo) -> None:
    """The ``lammps`` Python module must be importable and built from the same LAMMPS as ``lmp``."""
    try:
        import lammps  # noqa: F401  (the Python module must match the binary)

        info.python_module = str(Path(lammps.__file__).parent)
        modver = str(getattr(lammps, "__version__", ""))
        if modver not in ("", "0") and info.lammps_version and not _same_version(modver, info.lammps_version):
            info.problems.append(f"the lammps Python module in {info.python_module} is version {modver}, "
                                 f"but {info.lmp} is {info.lammps_version}: {runtime.BUILD_HINT}.")
    except ImportError:
        info.problems.append(f"the lammps Python module is not importable in this Python: {runtime.BUILD_HINT}.")


_MONTHS = {m: i for i, m in enumerate(
    ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"], 1)}


def _same_version(module_version: str, lmp_version: str) -> bool:
    """The module's version is YYYYMMDD (e.g. 20250204); ``lmp -h`` prints '4 Feb 2025 - Update 1'."""
    m = re.match(r"(\d+)\s+(\w{3})\w*\s+(\d{4})", lmp_version)
    if not m:
        return True
    day, month, year = int(m.group(1)), _MONTHS.get(m.group(2)[:3], 0), int(m.group(3))
    return module_version.startswith(f"{year:04d}{month:02d}{day:02d}")
