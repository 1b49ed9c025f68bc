"""Configurations on disk: one extxyz file per configuration, written atomically, and a JSON-lines manifest.

The manifest is append-only: one JSON object per line, flushed and fsynced, so a crash loses at most the
line being written (a torn last line is ignored on reading). Files are written to a temporary name and
renamed, so every file the manifest names is complete.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from ase import Atoms
from ase.io import write

from lammps_al.errors import LammpsAlError
from lammps_al.potential import atomic_write_text


class StoreError(LammpsAlError):
    """Raised when a store on disk cannot be written or read (full disk, permissions, corruption)."""


def append_jsonl(path: Path, record: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    line = json.dumps(record, sort_keys=True) + "\n"
    try:
        with open(path, "a") as fh:
            fh.write(line)
            fh.flush()
            os.fsync(fh.fileno())
    except OSError as exc:
        raise StoreError(f"cannot append to {path}: {exc.strerror}") from exc


def read_jsonl(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    records = []
    lines = path.read_text().splitlines()
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            if i == len(lines) - 1:  # torn last line from a crash mid-write
                continue
            raise StoreError(f"{path}:{i + 1} is not valid JSON: {line[:80]!r}") from None
    return records


def extxyz_string(atoms: Atoms) -> str:
    import io

    buf = io.StringIO()
    write(buf, atoms, format="extxyz")
    return buf.getvalue()


def write_extxyz_atomic(path: Path, atoms: Atoms) -> None:
    try:
        atomic_write_text(path, extxyz_string(atoms))
    except OSError as exc:
        raise StoreError(f"cannot write {path}: {exc.strerror}") from exc


@dataclass
class LabelRecord:
    hash: str
    oracle: str
    oracle_hash: str
    status: str            # "ok" or "failed"
    group: str
    file: str | None = None
    natoms: int = 0
    error: str | None = None
    source: str | None = None


class LabelledStore:
    """The training set written by labelling: ``<dir>/<group>/<hash>-<oracle_hash>.extxyz`` + manifest."""

    def __init__(self, directory: Path):
        self.dir = Path(directory)
        self.manifest = self.dir / "manifest.jsonl"

    def records(self) -> list[LabelRecord]:
        return [LabelRecord(**r) for r in read_jsonl(self.manifest)]

    def labelled_keys(self) -> set[tuple[str, str]]:
        return {(r.hash, r.oracle_hash) for r in self.records() if r.status == "ok"}

    def add_label(self, atoms: Atoms, record: LabelRecord) -> LabelRecord:
        rel = Path(record.group) / f"{record.hash}-{record.oracle_hash}.extxyz"
        write_extxyz_atomic(self.dir / rel, atoms)
        record.file = str(rel)
        append_jsonl(self.manifest, record.__dict__)
        return record

    def add_failure(self, record: LabelRecord) -> None:
        append_jsonl(self.manifest, record.__dict__)

    def load(self) -> list[Atoms]:
        """Every successfully labelled configuration (the latest label wins for a repeated key)."""
        from ase.io import read

        latest: dict[tuple[str, str], LabelRecord] = {}
        for r in self.records():
            if r.status == "ok":
                latest[(r.hash, r.oracle_hash)] = r
        out = []
        for r in latest.values():
            path = self.dir / r.file
            try:
                atoms = read(path, format="extxyz")
            except Exception as exc:
                raise StoreError(f"{path} (named in {self.manifest}) cannot be read: {exc}") from exc
            atoms.info["group"] = r.group
            atoms.info["source"] = r.source or str(path)   # where the configuration came from
            atoms.info["store_file"] = str(path)
            out.append(atoms)
        return out
