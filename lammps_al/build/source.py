"""Obtaining the LAMMPS source: a user's tree or tarball, else Debian's source package.

The Debian orig tarball is fetched with ``apt-get source --download-only`` under a private apt
configuration (its own sources list, package lists and cache inside the lammps_al cache), so the
machine's own apt sources are never touched. The tarball is verified by its sha256 before use.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tarfile
from dataclasses import dataclass
from pathlib import Path

from lammps_al.core.errors import SourceError

DEBIAN_PACKAGE = "lammps"
DEBIAN_VERSION = "20250204+dfsg.1"
DEBIAN_SUITE = "trixie"
DEBIAN_MIRROR = "http://deb.debian.org/debian"
DEBIAN_TARBALL = f"lammps_{DEBIAN_VERSION}.orig.tar.xz"
DEBIAN_SHA256 = "3671165bd52fad36734e0a9136c5bc5ecb225e03988f8c89aa13366a8b53b1c7"

SOURCE_ENV = "LAMMPS_AL_SOURCE"

HOW_TO_PROVIDE = (
    f"Provide a LAMMPS source in one of two ways: set {SOURCE_ENV} (or pass --source) to a LAMMPS "
    f"source tree or release tarball, or let lammps-al fetch Debian's source package "
    f"'{DEBIAN_PACKAGE} {DEBIAN_VERSION}' from {DEBIAN_SUITE}, which needs apt-get and access to "
    f"{DEBIAN_MIRROR}."
)


@dataclass(frozen=True)
class SourceSpec:
    """Where the LAMMPS source comes from.

    ``kind`` is ``"debian"``, ``"tarball"`` or ``"tree"``; ``digest`` identifies the content (the
    tarball's sha256, or a hash over a tree's ``src``, ``cmake``, ``python`` and ``potentials``).
    """

    kind: str
    path: Path | None
    digest: str

    def describe(self) -> str:
        if self.kind == "debian":
            return f"Debian source package {DEBIAN_PACKAGE} {DEBIAN_VERSION} (sha256 {self.digest[:12]}...)"
        return f"{self.kind} {self.path} ({self.digest[:12]}...)"


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def hash_tree(root: Path) -> str:
    """Hash the parts of a LAMMPS tree that change what gets built, by path and content."""
    h = hashlib.sha256()
    for part in ("cmake", "src", "python", "potentials"):
        base = root / part
        if not base.is_dir():
            continue
        for dirpath, dirnames, filenames in os.walk(base):
            dirnames.sort()
            for name in sorted(filenames):
                p = Path(dirpath) / name
                if p.is_symlink() or not p.is_file():
                    continue
                h.update(str(p.relative_to(root)).encode())
                h.update(b"\0")
                h.update(hashlib.sha256(p.read_bytes()).digest())
    return h.hexdigest()


def resolve_source(user_source: str | os.PathLike | None = None) -> SourceSpec:
    """Decide where the source comes from: ``user_source``, else ``$LAMMPS_AL_SOURCE``, else Debian."""
    given = user_source if user_source else os.environ.get(SOURCE_ENV)
    if not given:
        return SourceSpec("debian", None, DEBIAN_SHA256)
    path = Path(given).expanduser().resolve()
    if path.is_dir():
        if not (path / "cmake" / "CMakeLists.txt").is_file() or not (path / "src" / "version.h").is_file():
            raise SourceError(
                f"{path} is not a LAMMPS source tree: expected cmake/CMakeLists.txt and src/version.h "
                f"inside it. {HOW_TO_PROVIDE}"
            )
        return SourceSpec("tree", path, hash_tree(path))
    if path.is_file():
        if not tarfile.is_tarfile(path):
            raise SourceError(f"{path} is neither a directory nor a tar archive. {HOW_TO_PROVIDE}")
        return SourceSpec("tarball", path, sha256_file(path))
    raise SourceError(f"LAMMPS source {given!r} (from {'--source' if user_source else SOURCE_ENV}) does not exist. "
                      f"{HOW_TO_PROVIDE}")


def _apt_options(apt_dir: Path) -> list[str]:
    return [
        "-o", f"Dir::Etc::SourceList={apt_dir / 'sources.list'}",
        "-o", "Dir::Etc::SourceParts=/dev/null",
        "-o", f"Dir::State::Lists={apt_dir / 'lists'}",
        "-o", f"Dir::Cache={apt_dir / 'cache'}",
        "-o", "APT::Sandbox::User=root" if os.geteuid() == 0 else "Debug::NoLocking=1",
        "-o", "Acquire::Retries=3",
    ]


def fetch_debian_tarball(download_dir: Path, log) -> Path:
    """Download and verify Debian's orig tarball into ``download_dir``; return its path.

    Raises :class:`SourceError` when apt-get is missing, the download fails, or the checksum is wrong.
    """
    download_dir.mkdir(parents=True, exist_ok=True)
    tarball = download_dir / DEBIAN_TARBALL
    if tarball.is_file() and sha256_file(tarball) == DEBIAN_SHA256:
        return tarball
    if shutil.which("apt-get") is None:
        raise SourceError(f"apt-get is not available, so Debian's LAMMPS source cannot be fetched. {HOW_TO_PROVIDE}")
    apt_dir = download_dir / "apt"
    for sub in ("lists/partial", "cache/archives/partial"):
        (apt_dir / sub).mkdir(parents=True, exist_ok=True)
    (apt_dir / "sources.list").write_text(f"deb-src {DEBIAN_MIRROR} {DEBIAN_SUITE} main\n")
    opts = _apt_options(apt_dir)
    steps = [
        ["apt-get", *opts, "update"],
        # The .dsc answers 404 on the mirror, so apt-get exits non-zero even though the orig
        # tarball arrives: judge the result by the tarball and its checksum, not the exit code.
        ["apt-get", *opts, "source", "--download-only", DEBIAN_PACKAGE],
    ]
    for cmd in steps:
        log(f"$ {' '.join(cmd)}\n")
        try:
            proc = subprocess.run(cmd, cwd=download_dir, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                  text=True, timeout=1800)
        except subprocess.TimeoutExpired as exc:
            raise SourceError(f"'{' '.join(cmd[:1] + cmd[-2:])}' timed out after 30 minutes. {HOW_TO_PROVIDE}") from exc
        log(proc.stdout)
        if cmd[-1] == "update" and proc.returncode != 0:
            raise SourceError(f"apt-get update for {DEBIAN_SUITE} sources failed:\n{proc.stdout[-1500:]}\n{HOW_TO_PROVIDE}")
    if not tarball.is_file():
        raise SourceError(f"Debian's {DEBIAN_TARBALL} could not be downloaded into {download_dir} "
                          f"(see the apt-get output in the build log). {HOW_TO_PROVIDE}")
    verify_tarball(tarball, DEBIAN_SHA256)
    return tarball


def verify_tarball(tarball: Path, expected_sha256: str) -> None:
    """Refuse a tarball whose sha256 differs; it is renamed aside so it is never picked up again."""
    digest = sha256_file(tarball)
    if digest != expected_sha256:
        bad = tarball.with_name(tarball.name + ".bad-checksum")
        tarball.rename(bad)
        raise SourceError(f"checksum mismatch for {tarball} (moved to {bad}): sha256 {digest}, "
                          f"expected {expected_sha256}. Refusing to build from it.")


def unpack(spec: SourceSpec, workdir: Path, download_dir: Path, log) -> Path:
    """Put a pristine copy of the source under ``workdir`` and return the tree's root."""
    if spec.kind == "tree":
        dest = workdir / "lammps"
        shutil.copytree(spec.path, dest, symlinks=True,
                        ignore=shutil.ignore_patterns(".git", "build*", "*.o"))
        return dest
    tarball = spec.path if spec.kind == "tarball" else fetch_debian_tarball(download_dir, log)
    if spec.kind == "tarball" and sha256_file(tarball) != spec.digest:
        raise SourceError(f"{tarball} changed while building (sha256 differs from {spec.digest}).")
    dest = workdir / "unpacked"
    dest.mkdir(parents=True, exist_ok=True)
    with tarfile.open(tarball) as tf:
        tf.extractall(dest, filter="tar")
    roots = [p for p in dest.iterdir() if p.is_dir()]
    for root in roots:
        if (root / "cmake" / "CMakeLists.txt").is_file():
            return root
    raise SourceError(f"{tarball} does not contain a LAMMPS source tree (no */cmake/CMakeLists.txt).")
