"""Selection: which flagged configurations the oracle labels.

``selection = "uncertainty"`` (the method): structure kinds take turns, and within a kind the next pick
maximises its sigma times its distance in descriptor space (the bispectrum of its most uncertain atom) to
everything already picked: uncertain and different. ``"random"`` (the baseline of ``lammps-al bench
selection``): uniformly at random, seeded, from everything the exploration wrote.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from lammps_al.core.errors import DatasetError
from lammps_al.core.potential import load
from lammps_al.core.records import SIGMA_COLUMN, SelectedItem, SelectRecord, read_flagged
from lammps_al.loop.config import LoopConfig, iter_dir, potential_path
from lammps_al.train.descriptors import SnapWorker


def read_candidate(f: Path):
    """A flagged configuration, or a :class:`DatasetError` naming it and what to do."""
    from ase.io import read

    try:
        return read(f)
    except Exception as exc:  # noqa: BLE001 - ase raises many kinds on a damaged file
        raise DatasetError(f"flagged configuration {f} (named in {Path(f).parent / 'manifest.jsonl'}) "
                           f"cannot be read: {exc}; remove its line from the manifest, or the file's "
                           f"iteration folder to explore again, and continue with --resume") from None


def candidate_features(potential_file: Path, files: list[Path], frames: list | None = None) -> np.ndarray:
    """Per candidate configuration, the bispectrum of its most uncertain atom (the environment that made
    the fix flag it), computed with the potential's descriptor settings; columns scaled to unit spread.
    ``frames``: the configurations already read (None where a file could not be: it is read again and named)."""
    potential = load(potential_file)
    nd = potential.descriptor.n_descriptors
    worker = SnapWorker(potential.descriptor.with_quadratic(False), potential.reference)
    rows = []
    try:
        for k, f in enumerate(files):
            atoms = frames[k] if frames is not None and frames[k] is not None else read_candidate(f)
            block = worker.compute(atoms)
            sigma = atoms.arrays.get(SIGMA_COLUMN)
            i = int(np.argmax(sigma)) if sigma is not None else 0
            rows.append(block.per_atom[i, :nd])
    finally:
        worker.close()
    X = np.array(rows, dtype=float)
    spread = X.std(axis=0)
    return X / np.where(spread > 0, spread, 1.0)


CLOSE_CONTACT = 0.55      # of the nearest-neighbour distance of the element's reference crystal


def close_contact(atoms, factor: float = CLOSE_CONTACT) -> str:
    """Why ``atoms`` is no configuration to label ("" when it is one): two atoms closer than ``factor`` times
    the smaller of their elements' nearest-neighbour distances in the reference crystal (fcc of ASE's atomic
    volume). Only an MD that has blown up between two scoring steps brings atoms that close (hot liquid
    aluminium's closest pairs are at 0.75 of it); its oracle forces of hundreds of eV/A would swamp a fit."""
    from lammps_al.core.elements import element_data

    if len(atoms) < 2:
        return ""
    nn = {e: (4 * element_data(e).volume) ** (1 / 3) / np.sqrt(2) for e in set(atoms.get_chemical_symbols())}
    d = atoms.get_all_distances(mic=True)
    np.fill_diagonal(d, np.inf)
    limit = factor * np.array([nn[e] for e in atoms.get_chemical_symbols()])
    ratio = d / np.minimum.outer(limit, limit)
    i, j = np.unravel_index(int(np.argmin(ratio)), ratio.shape)
    if ratio[i, j] >= 1.0:
        return ""
    return f"atoms {i} and {j} {d[i, j]:.2f} A apart (below {min(limit[i], limit[j]):.2f} A)"


def diverse_selection(sigma: np.ndarray, features: np.ndarray, kinds: list[str], cap: int) -> list[int]:
    """Greedy: kinds take turns; within a kind the next pick maximises sigma times the descriptor-space distance
    to everything picked so far (the most uncertain first)."""
    sigma = np.asarray(sigma, dtype=float)
    chosen: list[int] = []
    min_dist = np.full(len(sigma), np.inf)
    order = sorted(set(kinds))
    left = {kind: [i for i, k in enumerate(kinds) if k == kind] for kind in order}
    while len(chosen) < cap and any(left.values()):
        for kind in order:
            if not left[kind] or len(chosen) >= cap:
                continue
            cand = left[kind]
            score = sigma[cand] * (min_dist[cand] if chosen else 1.0)
            pick = cand[int(np.argmax(score))]
            chosen.append(pick)
            cand.remove(pick)
            min_dist = np.minimum(min_dist, np.linalg.norm(features - features[pick], axis=1))
    return chosen


def select(cfg: LoopConfig, k: int) -> SelectRecord:
    """Up to ``max_select`` of what iteration k's exploration wrote."""
    s = cfg.loop
    flagged = iter_dir(s, k) / "flagged"
    entries = read_flagged(flagged, existing_only=True)
    close, kept, frames = [], [], []
    for e in entries:
        try:
            atoms = read_candidate(flagged / e.file)
        except DatasetError:          # a damaged file: candidate_features names it (random selection: labelling)
            atoms = None
        why = close_contact(atoms) if atoms is not None else ""
        if why:
            close.append(f"{e.file}: {why}")
        else:
            kept.append(e)
            frames.append(atoms)
    entries = kept
    kind_of = {r.name: r.kind for r in s.explore}
    kinds = [kind_of.get(e.run_id, e.run_id) for e in entries]
    cap = min(s.max_select, len(entries))
    if s.selection == "random":
        rng = np.random.default_rng(1000 * s.seed + k)
        chosen = sorted(rng.choice(len(entries), size=cap, replace=False).tolist()) if cap else []
    elif cap:
        features = candidate_features(potential_path(s, k), [flagged / e.file for e in entries], frames)
        chosen = diverse_selection(np.array([e.max_sigma for e in entries]), features, kinds, cap)
    else:
        chosen = []
    return SelectRecord(flagged=len(entries) + len(close), selection=s.selection, selected=[
        SelectedItem(file=str(flagged / entries[i].file), run_id=entries[i].run_id, kind=kinds[i],
                     max_sigma=entries[i].max_sigma) for i in chosen], close_contacts=close)
