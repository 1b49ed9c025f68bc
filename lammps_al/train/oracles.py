"""Reference oracles: ASE calculators chosen from an explicit registry or by ``"package.module:Class"``.

- ``eam`` (default): an EAM / EAM-FS potential from LAMMPS's ``potentials/`` folder evaluated by the LAMMPS
  this project built, through ASE's ``LAMMPSlib`` (energy, forces, stress). Settings: ``potential``
  (file name in the potentials folder or a path; default ``Al_mm.eam.fs``, Mendelev et al. 2008),
  ``pair_style`` (``eam/fs``, or ``eam/alloy``/``eam`` for other files), ``elements`` (default ``["Al"]``).
- ``emt``: ASE's EMT (no settings).
- ``gpaw``: plane-wave DFT (optional extra: ``pip install -e '.[gpaw]'``). Settings: ``ecut`` (eV, 300),
  ``xc`` ("PBE"), ``kpoint_density`` (k-points per reciprocal A, 3.0), ``smearing`` (Fermi-Dirac width,
  eV, 0.1), ``maxiter`` (SCF iterations, 100), ``spinpol`` (false).
- ``"package.module:Class"``: any ASE calculator; ``settings`` are passed as keyword arguments.

Every oracle has a name and a hash of its settings (for the EAM oracle, of the potential file's content
too), recorded with each label so that labels from different references are never mixed silently.
"""

from __future__ import annotations

import hashlib
import importlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from lammps_al.core.errors import LammpsAlError, OracleError

# Energies written by LAMMPS/ASE are in eV, forces eV/A, stress eV/A^3 (ASE convention).


@dataclass(frozen=True)
class OracleSpec:
    name: str
    settings: dict = field(default_factory=dict)

    def settings_hash(self) -> str:
        payload = {"name": self.name, "settings": self.settings}
        if self.name == "eam":
            payload["potential_sha256"] = hashlib.sha256(_eam_file(self.settings).read_bytes()).hexdigest()
        return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _eam_file(settings: dict) -> Path:
    from lammps_al.core import runtime

    name = settings.get("potential", "Al_mm.eam.fs")
    if not isinstance(name, str):
        raise OracleError(f"eam oracle: setting potential must be a file name, got {name!r}")
    p = Path(name).expanduser()
    if p.is_file():
        return p
    try:
        candidate = runtime.potentials_dir() / name
    except LammpsAlError as exc:
        raise OracleError(f"eam oracle: {name!r} is not a file and {exc}") from exc
    if not candidate.is_file():
        raise OracleError(f"eam oracle: potential file {name!r} not found (neither a path nor in "
                          f"{candidate.parent}); give a file from LAMMPS's potentials folder or a path")
    return candidate


def eam_pair_lines(settings: dict) -> tuple[list[str], Path]:
    """The pair_style and pair_coeff lines of an eam oracle's settings, and its potential file."""
    path = _eam_file(settings)
    elements = list(settings.get("elements", ["Al"]))
    style = settings.get("pair_style") or ("eam/fs" if path.name.endswith(".eam.fs") else
                                           "eam/alloy" if path.name.endswith((".eam.alloy", ".setfl")) else "eam")
    coeff = f"pair_coeff * * {path}" + ("" if style == "eam" else " " + " ".join(elements))
    return [f"pair_style {style}", coeff], path


def _make_eam(settings: dict, serial: bool = False):
    from ase.calculators.lammpslib import LAMMPSlib

    (style_line, coeff), _ = eam_pair_lines(settings)
    style = style_line.split()[1]
    elements = list(settings.get("elements", ["Al"]))
    extra = {}
    if serial:                      # an MPI worker rank: LAMMPS on this rank alone, not on MPI_COMM_WORLD
        from mpi4py import MPI

        extra["comm"] = MPI.COMM_SELF
    return LAMMPSlib(lmpcmds=[f"pair_style {style}", coeff], atom_types={e: i + 1 for i, e in enumerate(elements)},
                     keep_alive=True, log_file=None, **extra)


def _make_emt(settings: dict, serial: bool = False):
    from ase.calculators.emt import EMT

    return EMT()


def _make_gpaw(settings: dict, serial: bool = False):
    try:
        from gpaw import GPAW, PW, FermiDirac
    except ImportError as exc:
        raise OracleError("gpaw oracle: GPAW is not installed. Install it with Debian's libxc-dev "
                          "libopenblas-dev libfftw3-dev present: CC=g++ pip install -e '.[gpaw]' "
                          "(see README, 'DFT with GPAW')") from exc
    extra = {}
    if serial:                      # an MPI worker rank: one DFT calculation per rank
        from gpaw.mpi import serial_comm

        extra["communicator"] = serial_comm
    return GPAW(mode=PW(float(settings.get("ecut", 300.0))), xc=settings.get("xc", "PBE"), **extra,
                kpts={"density": float(settings.get("kpoint_density", 3.0)), "gamma": True},
                occupations=FermiDirac(float(settings.get("smearing", 0.1))),
                maxiter=int(settings.get("maxiter", 100)), spinpol=bool(settings.get("spinpol", False)),
                txt=settings.get("txt", None))


EAM_STYLES = ("eam", "eam/alloy", "eam/fs")


def eam_file_elements(path: Path) -> list[str] | None:
    """The elements a setfl file (eam/alloy, eam/fs: line 4 is "N El1 ... ElN") has; None for a funcfl
    (plain eam) file, which names none."""
    if path.name.endswith(".eam"):
        return None
    try:
        with open(path, errors="replace") as f:
            lines = [f.readline() for _ in range(4)]
        words = lines[3].split()
        n = int(words[0])
        if n < 1 or len(words) < n + 1:
            raise ValueError
    except (OSError, ValueError, IndexError):
        raise OracleError(f"eam oracle: {path} is not a setfl potential file (line 4 must be 'N El1 ... ElN')") \
            from None
    return words[1:n + 1]


def _check_eam(settings: dict) -> None:
    path = _eam_file(settings)
    elements = settings.get("elements", ["Al"])
    if not isinstance(elements, list) or not elements or not all(isinstance(e, str) for e in elements):
        raise OracleError(f"eam oracle: setting elements must be a list of chemical symbols, got {elements!r}")
    style = settings.get("pair_style", "")
    if style and style not in EAM_STYLES:
        raise OracleError(f"eam oracle: setting pair_style must be one of {list(EAM_STYLES)} (or left out: chosen by "
                          f"the file's ending), got {style!r}")
    has = eam_file_elements(path) if style != "eam" else None      # a funcfl file names no elements
    missing = [e for e in elements if has is not None and e not in has]
    if missing:
        raise OracleError(f"eam oracle: {path} has no {', '.join(missing)}: it is a potential for {has}; set "
                          f"[oracle.settings] elements to elements it has, or choose a file that has "
                          f"{', '.join(missing)}")


def _check_gpaw(settings: dict) -> None:
    import importlib.util

    for key in ("ecut", "kpoint_density", "smearing"):
        if key in settings and (isinstance(settings[key], bool) or not isinstance(settings[key], (int, float))
                                or not settings[key] > 0):
            raise OracleError(f"gpaw oracle: setting {key} must be a positive number, got {settings[key]!r}")
    maxiter = settings.get("maxiter", 100)
    if isinstance(maxiter, bool) or not isinstance(maxiter, int) or maxiter < 1:
        raise OracleError(f"gpaw oracle: setting maxiter must be a positive integer (SCF iterations), got {maxiter!r}")
    for key, kind, what in (("xc", str, "a functional's name, e.g. 'PBE'"), ("txt", str, "a file name for GPAW's log"),
                            ("spinpol", bool, "true or false")):
        if key in settings and not isinstance(settings[key], kind):
            raise OracleError(f"gpaw oracle: setting {key} must be {what}, got {settings[key]!r}")
    if importlib.util.find_spec("gpaw") is None:
        raise OracleError("gpaw oracle: GPAW is not installed. Install it with Debian's libxc-dev libopenblas-dev "
                          "libfftw3-dev present: make gpaw (or CC=g++ pip install '.[gpaw]'); see README")


# name -> (factory, allowed settings, check run when a config is loaded)
REGISTRY: dict[str, tuple[Callable, frozenset, Callable[[dict], None]]] = {
    "eam": (_make_eam, frozenset({"potential", "pair_style", "elements"}), _check_eam),
    "emt": (_make_emt, frozenset(), lambda settings: None),
    "gpaw": (_make_gpaw, frozenset({"ecut", "xc", "kpoint_density", "smearing", "maxiter", "spinpol", "txt"}),
             _check_gpaw),
}


def check_elements(spec: OracleSpec, elements) -> None:
    """An oracle that names its elements (eam) must have every element of the potential to be fitted."""
    if spec.name != "eam":
        return
    named = list(dict(spec.settings).get("elements", ["Al"]))
    missing = [e for e in elements if e not in named]
    if missing:
        raise OracleError(f"eam oracle: [oracle.settings] elements {named} lack {', '.join(missing)} of the "
                          f"[descriptor] elements {list(elements)}: name every element the potential has, in "
                          f"the same order, e.g. elements = {list(elements)}")


def check_spec(spec: OracleSpec) -> None:
    """Everything about an oracle that can be checked without running it: its name, its settings' names and
    values, its files and packages. Called when a config is loaded, before any work."""
    if spec.name in REGISTRY:
        _, allowed, check = REGISTRY[spec.name]
        unknown = set(spec.settings) - allowed
        if unknown:
            raise OracleError(f"{spec.name} oracle: unknown setting(s) {sorted(unknown)}; allowed: "
                              f"{sorted(allowed) or 'none'}")
        check(dict(spec.settings))
        return
    if ":" in spec.name:
        _import_class(spec.name)
        return
    raise OracleError(f"unknown oracle {spec.name!r}: choose one of {sorted(REGISTRY)} or give "
                      f"'package.module:Class' for any ASE calculator")


def _import_class(name: str):
    module_name, _, class_name = name.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise OracleError(f"oracle {name!r}: cannot import module {module_name!r}: {exc}") from None
    try:
        return getattr(module, class_name)
    except AttributeError:
        raise OracleError(f"oracle {name!r}: module {module_name!r} has no {class_name!r}") from None


def confine_lammpslib(calc):
    """A user's ASE LAMMPSlib (or subclass) given no ``comm`` starts its LAMMPS on MPI_COMM_WORLD: on one rank
    of an MPI job that waits forever for the others. Its LAMMPS starts at the first calculation, so giving it
    MPI_COMM_SELF here confines it to this rank, as the built-in eam oracle is."""
    try:
        from ase.calculators.lammpslib import LAMMPSlib
    except ImportError:          # pragma: no cover - ASE without lammpslib
        return calc
    if isinstance(calc, LAMMPSlib) and calc.parameters.get("comm") is None and not getattr(calc, "started", False):
        from mpi4py import MPI

        calc.parameters.comm = MPI.COMM_SELF
    return calc


def make_calculator(spec: OracleSpec, serial: bool = False):
    """A fresh ASE calculator for ``spec``; ``serial``: confined to this MPI rank (an mpi4py.futures worker)."""
    if spec.name in REGISTRY:
        check_spec(spec)
        return REGISTRY[spec.name][0](dict(spec.settings), serial=serial)
    if ":" in spec.name:
        cls = _import_class(spec.name)
        try:
            calc = cls(**spec.settings)
        except TypeError as exc:
            raise OracleError(f"oracle {spec.name!r}: bad settings {spec.settings}: {exc}") from exc
        return confine_lammpslib(calc) if serial else calc
    raise OracleError(f"unknown oracle {spec.name!r}: choose one of {sorted(REGISTRY)} or give "
                      f"'package.module:Class' for any ASE calculator")
