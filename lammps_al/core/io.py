"""Files that are never half-written: atomic writes, no-overwrite writes, append-only JSON lines.

- :func:`atomic_write_bytes` / :func:`atomic_write_text`: a temporary file in the same folder, fsynced, then
  renamed over the target. A crash leaves the old file or the new one, never a mix.
- :func:`write_no_overwrite`: the same, but the final name is taken with a hard link, which never replaces
  an existing file; a taken name gets a suffix ``-1``, ``-2``, ...
- :func:`append_jsonl` / :func:`read_jsonl`: one JSON object per line, flushed and fsynced. A crash loses
  at most the line being written; a torn last line is ignored on reading.

Every ``OSError`` becomes a :class:`~lammps_al.core.errors.StoreError` naming the path, the reason and,
for a full disk, the free space there and the space the write needed.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import tempfile
from pathlib import Path

from lammps_al.core.errors import StoreError


def disk_error(path: Path, exc: OSError, needed: int | None = None) -> StoreError:
    """A :class:`StoreError` for ``exc`` raised while writing ``path``: what, where, and for ENOSPC how much
    space is free and how much the write needed."""
    reason = exc.strerror or str(exc)
    text = f"cannot write {path}: {reason}"
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        try:
            free = shutil.disk_usage(Path(path).parent if not Path(path).is_dir() else path).free
            text += f" ({free / 1e6:.1f} MB free there"
            text += f", this write needs {needed / 1e6:.3f} MB)" if needed else ")"
        except OSError:
            pass
        text += "; free space there (or point the output elsewhere) and run again"
    return StoreError(text)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file and a rename: never a half-written file."""
    path = Path(path)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        tmp = None
    except OSError as exc:
        raise disk_error(path, exc, len(data)) from exc
    finally:
        if tmp is not None:
            try:
                os.unlink(tmp)
            except OSError:
                pass


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def atomic_write_json(path: Path, data) -> None:
    atomic_write_text(path, json.dumps(data, indent=2, default=json_default) + "\n")


def json_default(obj):
    """JSON for numpy scalars and arrays and paths (everything else is an error)."""
    import numpy as np

    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"cannot store {type(obj).__name__} as JSON")


def write_no_overwrite(outdir: Path, name: str, text: str) -> Path:
    """Write ``text`` to ``outdir/name`` atomically; if the name exists, add -1, -2, ... Never overwrites."""
    outdir = Path(outdir)
    data = text.encode()
    tmp = None
    try:
        outdir.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=outdir)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        stem, dot, suffix = name.rpartition(".")
        if not dot:
            stem, suffix = name, ""
        for attempt in range(1000):
            final = outdir / (name if attempt == 0 else f"{stem}-{attempt}{dot}{suffix}")
            try:
                os.link(tmp, final)
                return final
            except FileExistsError:
                continue
        raise StoreError(f"no free file name for {name} in {outdir} (1000 taken)")
    except OSError as exc:
        raise disk_error(outdir / name, exc, len(data)) from exc
    finally:
        if tmp is not None:
            try:
                os.unlink(tmp)
            except OSError:
                pass


def append_jsonl(path: Path, record: dict) -> None:
    """Append one JSON object as a line, fsynced."""
    path = Path(path)
    line = json.dumps(record, sort_keys=True, default=json_default) + "\n"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a") as fh:
            fh.write(line)
            fh.flush()
            os.fsync(fh.fileno())
    except OSError as exc:
        raise disk_error(path, exc, len(line)) from exc


def read_jsonl(path: Path) -> list[dict]:
    """Every JSON object of a JSON-lines file ([] if it does not exist); a torn last line is skipped, any
    other bad line is a :class:`StoreError` naming the file and line."""
    path = Path(path)
    if not path.is_file():
        return []
    try:
        lines = path.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise StoreError(f"cannot read {path}: {exc}") from exc
    records = []
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError:
            if i == len(lines) - 1:  # torn last line from a crash mid-write
                continue
            raise StoreError(f"{path}:{i + 1} is not valid JSON: {line[:80]!r}") from None
        if not isinstance(value, dict):
            raise StoreError(f"{path}:{i + 1} is not a JSON object: {line[:80]!r}")
        records.append(value)
    return records
