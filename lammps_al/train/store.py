"""The labelled store: one extxyz file per labelled configuration, written atomically, and a JSON-lines
manifest of :class:`~lammps_al.core.records.LabelRecord` lines.

The manifest is append-only (one fsynced line per label or failure): a crash loses at most the line being
written, and a torn last line is ignored on reading. Label files are written (temporary file + rename)
before their line, so every file the manifest names is complete.
"""

from __future__ import annotations

import io
from pathlib import Path

from ase import Atoms
from ase.io import read, write

from lammps_al.core.errors import StoreError
from lammps_al.core.io import atomic_write_text
from lammps_al.core.records import LabelRecord, append_label_record, read_label_records


def extxyz_string(atoms: Atoms) -> str:
    buf = io.StringIO()
    write(buf, atoms, format="extxyz")
    return buf.getvalue()


def write_extxyz_atomic(path: Path, atoms: Atoms) -> None:
    atomic_write_text(path, extxyz_string(atoms))


class LabelledStore:
    """The training set written by labelling: ``<dir>/<group>/<hash>-<oracle_hash>.extxyz`` + manifest."""

    def __init__(self, directory: Path):
        self.dir = Path(directory)
        self.manifest = self.dir / "manifest.jsonl"

    def records(self) -> list[LabelRecord]:
        return read_label_records(self.manifest)

    def labelled_keys(self) -> set[tuple[str, str]]:
        return {(r.hash, r.oracle_hash) for r in self.records() if r.status == "ok"}

    def add_label(self, atoms: Atoms, record: LabelRecord) -> LabelRecord:
        rel = Path(record.group) / f"{record.hash}-{record.oracle_hash}.extxyz"
        write_extxyz_atomic(self.dir / rel, atoms)
        record.file = str(rel)
        append_label_record(self.manifest, record)
        return record

    def add_failure(self, record: LabelRecord) -> None:
        append_label_record(self.manifest, record)

    def load(self) -> list[Atoms]:
        """Every successfully labelled configuration (the latest label wins for a repeated key)."""
        latest: dict[tuple[str, str], LabelRecord] = {}
        for r in self.records():
            if r.status == "ok":
                latest[(r.hash, r.oracle_hash)] = r
        out = []
        for r in latest.values():
            if not r.file:
                raise StoreError(f"{self.manifest}: the label of {r.hash} (status ok) names no file; remove its line "
                                 f"from the manifest to label it again")
            path = self.dir / r.file
            try:
                atoms = read(path, format="extxyz")
            except Exception as exc:  # noqa: BLE001 - ase raises many kinds on a damaged file
                raise StoreError(f"{path} (named in {self.manifest}) cannot be read: {exc}; remove its line from "
                                 f"the manifest to label it again") from None
            atoms.info["group"] = r.group
            atoms.info["source"] = r.source or str(path)   # where the configuration came from
            atoms.info["store_file"] = str(path)
            out.append(atoms)
        return out
