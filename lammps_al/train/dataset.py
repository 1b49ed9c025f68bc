"""Labelled configurations: readers (extxyz, FitSNAP JSON), label conventions, hashing, deduplication.

A configuration is an :class:`ase.Atoms` whose labels live under fixed names:

- ``atoms.info["REF_energy"]``: total energy, eV;
- ``atoms.arrays["REF_forces"]``: forces, eV/A, shape (n, 3);
- ``atoms.info["REF_stress"]``: stress in ASE's convention (positive = tensile), **eV/A^3**, Voigt order
  ``xx yy zz yz xz xy``; FitSNAP's JSON stores the pressure-signed tensor in bar, converted on reading;
- ``atoms.info["group"]``: the training group it belongs to (weights are set per group).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.io import read

from lammps_al.core.errors import DatasetError
from lammps_al.core.units import NKTV2P, stress_to_voigt


def config_hash(atoms: Atoms, decimals: int = 6) -> str:
    """Identity of a structure: species, cell, pbc and positions rounded to ``decimals`` A."""
    h = hashlib.sha256()
    h.update(np.asarray(atoms.numbers, dtype=np.int64).tobytes())
    h.update(np.round(np.asarray(atoms.cell, dtype=float), decimals).tobytes())
    h.update(np.asarray(atoms.pbc, dtype=bool).tobytes())
    h.update(np.round(atoms.positions, decimals).tobytes())
    return h.hexdigest()[:24]


def dataset_hash(configs: list[Atoms]) -> str:
    """Identity of a training set: its configuration hashes, labels and groups, in order."""
    h = hashlib.sha256()
    for atoms in configs:
        h.update(config_hash(atoms).encode())
        h.update(repr(round(float(atoms.info.get("REF_energy", np.nan)), 8)).encode())
        h.update(str(atoms.info.get("group", "")).encode())
        if "REF_forces" in atoms.arrays:
            h.update(np.round(atoms.arrays["REF_forces"], 8).tobytes())
    return h.hexdigest()[:24]


def deduplicate(configs: list[Atoms]) -> tuple[list[Atoms], int]:
    """Drop repeated structures (same :func:`config_hash`), keeping the first; return (kept, dropped)."""
    seen: set[str] = set()
    kept = []
    for atoms in configs:
        key = config_hash(atoms)
        if key in seen:
            continue
        seen.add(key)
        kept.append(atoms)
    return kept, len(configs) - len(kept)


def require_labels(atoms: Atoms, source: str, need_forces: bool = True) -> None:
    if "REF_energy" not in atoms.info:
        raise DatasetError(f"{source}: configuration has no REF_energy label (eV); label it first "
                           f"(lammps-al label) or give the energy under info['REF_energy'].")
    energy = atoms.info["REF_energy"]
    if isinstance(energy, bool) or not isinstance(energy, (int, float, np.number)) or not np.isfinite(energy):
        raise DatasetError(f"{source}: REF_energy is {atoms.info['REF_energy']}, not a finite number.")
    if need_forces and "REF_forces" not in atoms.arrays:
        raise DatasetError(f"{source}: configuration has no REF_forces array (eV/A).")
    if "REF_forces" in atoms.arrays:
        forces = np.asarray(atoms.arrays["REF_forces"], dtype=float)
        if forces.shape != (len(atoms), 3) or not np.all(np.isfinite(forces)):
            raise DatasetError(f"{source}: REF_forces must be {len(atoms)} x 3 finite numbers (eV/A), got shape "
                               f"{forces.shape}" + ("" if np.all(np.isfinite(forces)) else " with NaN or inf"))
    if "REF_stress" in atoms.info:
        stress = np.asarray(atoms.info["REF_stress"], dtype=float)
        if stress.shape != (6,) or not np.all(np.isfinite(stress)):
            raise DatasetError(f"{source}: REF_stress must be 6 finite numbers (eV/A^3, Voigt xx yy zz yz xz xy), "
                               f"got {stress.tolist()}")
    if not np.all(np.isfinite(atoms.positions)):
        raise DatasetError(f"{source}: positions contain NaN or inf.")


def read_fitsnap_json(path: Path, group: str | None = None) -> Atoms:
    """One FitSNAP JSON file (a '#' comment line, then ``{"Dataset": {"Data": [{...}]}}``)."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise DatasetError(f"cannot read {path}: {exc.strerror}") from exc
    except UnicodeDecodeError:
        raise DatasetError(f"{path} is not a FitSNAP JSON file: it is not text") from None
    if text.startswith("#"):
        text = text.split("\n", 1)[1] if "\n" in text else ""
    try:
        data = json.loads(text)["Dataset"]["Data"]
    except (ValueError, KeyError, TypeError) as exc:
        raise DatasetError(f"{path} is not a FitSNAP JSON file: expected a '#' comment line, then "
                           f'{{"Dataset": {{"Data": [{{...}}]}}}} ({exc})') from exc
    if not isinstance(data, list) or len(data) != 1 or not isinstance(data[0], dict):
        found = f"{len(data)} entries" if isinstance(data, list) else repr(data)[:60]
        raise DatasetError(f"{path}: expected exactly one configuration (a table) in the list Dataset.Data, found "
                           f"{found}")
    d = data[0]
    missing = [k for k in ("Positions", "Lattice", "AtomTypes", "Energy") if k not in d]
    if missing:
        raise DatasetError(f"{path}: missing {', '.join(missing)} (needs Positions, Lattice, AtomTypes, Energy)")
    try:
        atoms = Atoms(symbols=d["AtomTypes"], positions=d["Positions"], cell=d["Lattice"], pbc=True)
    except (KeyError, ValueError) as exc:
        raise DatasetError(f"{path}: bad AtomTypes/Positions/Lattice: {exc}") from exc
    energy = d["Energy"]
    if isinstance(energy, bool) or not isinstance(energy, (int, float)):
        raise DatasetError(f"{path}: Energy must be a number (eV), got {energy!r}")
    atoms.info["REF_energy"] = float(energy)
    if "Forces" in d:
        try:
            forces = np.asarray(d["Forces"], dtype=float)
        except (ValueError, TypeError) as exc:
            raise DatasetError(f"{path}: Forces must be {len(atoms)} x 3 numbers (eV/A): {exc}") from None
        if forces.shape != (len(atoms), 3):
            raise DatasetError(f"{path}: Forces has shape {forces.shape}, expected ({len(atoms)}, 3)")
        atoms.arrays["REF_forces"] = forces
    if "Stress" in d:
        # FitSNAP's Stress is the pressure tensor in bar; ASE's stress is its negative in eV/A^3.
        try:
            atoms.info["REF_stress"] = -stress_to_voigt(np.asarray(d["Stress"], dtype=float)) / NKTV2P
        except (ValueError, TypeError) as exc:
            raise DatasetError(f"{path}: Stress must be a 3x3 tensor in bar: {exc}") from None
    atoms.info["group"] = group if group is not None else path.parent.name
    atoms.info["source"] = str(path)
    require_labels(atoms, str(path), need_forces=False)
    return atoms


def read_fitsnap_dir(root: Path) -> list[Atoms]:
    """All ``<root>/<group>/*.json`` files; the folder name is the group; sorted for reproducibility."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"FitSNAP data folder {root} does not exist.")
    files = sorted(root.glob("*/*.json"))
    if not files:
        raise DatasetError(f"no FitSNAP JSON files under {root} (expected {root}/<group>/<name>.json).")
    return [read_fitsnap_json(f) for f in files]


def read_extxyz(path: Path, group: str | None = None, energy_key: str = "REF_energy",
                forces_key: str = "REF_forces", stress_key: str = "REF_stress") -> list[Atoms]:
    """All frames of an extxyz file, with labels moved to the ``REF_*`` names."""
    path = Path(path)
    try:
        frames = read(path, index=":", format="extxyz")
    except FileNotFoundError as exc:
        raise DatasetError(f"extxyz file {path} does not exist.") from exc
    except Exception as exc:  # ase raises many kinds on a malformed file
        raise DatasetError(f"{path} is not a readable extxyz file: {exc}") from exc
    if not frames:
        raise DatasetError(f"{path} holds no configurations: expected extxyz frames (atom count, header line, one "
                           f"line per atom)")
    out = []
    for i, atoms in enumerate(frames):
        where = f"{path} frame {i}"
        info, arrays = atoms.info, atoms.arrays
        if energy_key in info:
            energy = info.pop(energy_key)
            if isinstance(energy, (bool, str)) or not isinstance(energy, (int, float, np.number)):
                raise DatasetError(f"{where}: {energy_key} must be a number (eV), got {energy!r}")
            info["REF_energy"] = float(energy)
        if forces_key in arrays:
            arrays["REF_forces"] = np.asarray(arrays.pop(forces_key), dtype=float)
        if stress_key in info:
            try:
                info["REF_stress"] = stress_to_voigt(info.pop(stress_key))
            except (ValueError, TypeError) as exc:
                raise DatasetError(f"{where}: {stress_key} must have 6 or 9 components (eV/A^3): {exc}") from None
        if group is not None:
            info["group"] = group
        info.setdefault("group", path.stem)
        info.setdefault("source", f"{path}@{i}")
        require_labels(atoms, where, need_forces=False)
        out.append(atoms)
    return out
