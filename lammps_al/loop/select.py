"""Selection: which flagged configurations the oracle labels.

``selection = "uncertainty"`` (the method), with a Bayesian potential: a greedy batch, each pick the
configuration whose label tells the posterior the most per unit of oracle cost, the structure kinds taking
turns, the kind the oracle has spent least on in earlier iterations first. Labelling configuration c adds
its weighted design rows R_c (energy, forces, stress, as the fit will weigh them) to the linear model, which
shrinks the posterior covariance Sigma; the information gained is

    I_c = 1/2 log det(I + R_c Sigma R_c^T / s^2)   (nats: the entropy the coefficients lose)

with s the noise of a row: the fit's own (1/sqrt(beta)), but at least the force target (errors below the
target are not worth an oracle call). Within its kind's turn the next pick maximises I_c / cost_c, cost_c =
natoms^cost_exponent (3: plane-wave DFT), and Sigma is updated with the pick's rows (no label needed), so a
second cell like the first gains little: uncertain, different, and cheap. The batch costs at most
``max_select`` times the median candidate's cost (:func:`selection_budget`). With ``candidates =
"trajectory"`` the fix writes a snapshot every write interval, and those where an atom's predicted force
error reaches the force target are candidates. Measured on the demo (``lammps-al bench selection``): the
most informative of everything, kinds not taking turns, was liquid every time, and the crystal's errors
grew; only what the fix flags (3 x the target) left one or two candidates per iteration once the model was
near its floor, too few labels to get below it. Without a
posterior (another solver), the kinds take turns and within a kind the next pick maximises its sigma times
its distance in descriptor space (the bispectrum of its most uncertain atom) to everything picked.
``"random"`` (the baseline of ``lammps-al bench selection``): uniformly at random, seeded, from everything
the exploration wrote.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from lammps_al.core.errors import DatasetError
from lammps_al.core.potential import load
from lammps_al.core.records import SIGMA_COLUMN, SelectedItem, SelectRecord, read_flagged, read_marker
from lammps_al.loop.config import LoopConfig, iter_dir, potential_path
from lammps_al.loop.label import group_name
from lammps_al.train.crystal import Rows, row_weights, with_rows
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


def information_selection(rows: list[np.ndarray], covariance: np.ndarray, noise_var: float, costs, cap: int,
                          budget: float = np.inf, kinds: list[str] | None = None,
                          spent_before: dict[str, float] | None = None) -> tuple[list[int], list[float]]:
    """Greedy batch of up to ``cap`` of the candidates whose weighted rows are ``rows`` (each k_c x p), costing
    at most ``budget`` together: with ``kinds``, the kinds take turns (a kind with nothing affordable left drops
    out), the kind the oracle has spent the least on so far (``spent_before``, cost by kind) first, then by
    name, else every pick is from all. The order matters when the budget runs out within a round: a kind whose
    cells are bigger than the others' would otherwise find the budget spent every iteration and never be
    labelled; this way each affordable kind gets its share of the oracle's cost over the iterations. A pick
    maximises its information gain 1/2 log det(I + R Sigma R^T / noise_var) per cost among those the budget
    left still affords, then Sigma takes its rows (Woodbury). The gain of a candidate only falls as Sigma
    takes rows (it is submodular), so a gain computed under an earlier Sigma bounds it from above: candidates
    are taken best bound first and only the front one's gain is brought up to date (lazy greedy; the same
    picks as recomputing every gain). Returns the picks in order and each one's gain (nats) when it was
    picked; the gains sum to 1/2 log(det Sigma_0 / det Sigma_final)."""
    import heapq

    cov = np.array(covariance, dtype=float)
    costs = np.asarray(costs, dtype=float)
    kinds = list(kinds) if kinds is not None else [""] * len(rows)

    def gain(r):
        inner = np.eye(len(r)) + (r @ cov @ r.T) / noise_var
        sign, logdet = np.linalg.slogdet(inner)
        return 0.5 * logdet if sign > 0 else 0.0

    heaps: dict[str, list] = {}
    for c in range(len(rows)):
        if len(rows[c]):
            heaps.setdefault(kinds[c], []).append((-gain(rows[c]) / costs[c], c, 0))
    for heap in heaps.values():
        heapq.heapify(heap)
    chosen, gains = [], []
    spent, version = 0.0, 0
    so_far = spent_before or {}

    def best_of(heap):
        while heap:
            bound, c, seen = heapq.heappop(heap)
            if spent + costs[c] > budget:
                continue                               # the budget only shrinks: never affordable again
            if seen == version:
                return c, -bound * costs[c]
            heapq.heappush(heap, (-gain(rows[c]) / costs[c], c, version))   # an earlier posterior's bound
        return None

    while heaps and len(chosen) < cap:
        for kind in sorted(heaps, key=lambda name: (so_far.get(name, 0), name)):
            if len(chosen) >= cap:
                break
            found = best_of(heaps[kind])
            if found is None:
                continue
            c, g = found
            chosen.append(c)
            gains.append(float(g))
            spent += costs[c]
            cov = with_rows(cov, rows[c], 1.0 / noise_var)
            cov = 0.5 * (cov + cov.T)
            version += 1
        heaps = {k: h for k, h in heaps.items() if h}
    return chosen, gains


def spent_by_kind(settings, k: int) -> dict[str, float]:
    """The oracle cost (natoms^cost_exponent) of the cells of each structure kind that the selections of
    iterations 0..k-1 picked."""
    spent: dict[str, float] = {}
    for j in range(k):
        record = read_marker(iter_dir(settings, j), SelectRecord)
        for item in record.selected if record is not None else []:
            cost = float(item.natoms) ** settings.cost_exponent if item.natoms else 0.0
            spent[item.kind] = spent.get(item.kind, 0.0) + cost
    return spent


def selection_budget(costs, max_select: int) -> float:
    """What one iteration's labels may cost: ``max_select`` times the median candidate's cost. A few big
    cells among many small ones (the demo's 96-atom interface at 27x a 32-atom cell's natoms^3) are labelled
    only when nothing cheaper is left to tell the posterior as much; when every candidate is big, the
    budget is as big."""
    return float(max_select * np.median(costs)) if len(costs) else 0.0


def information_plan(cfg: LoopConfig, potential, weights) -> tuple[np.ndarray, float] | None:
    """The posterior covariance (times the stored calibration scale squared when the force scorer's
    calibration is a plain scale) and the row noise variance for :func:`information_selection` (rows weighted by
    the group ``weights``); None when the potential has no posterior or noise precision (a non-Bayesian solver)."""
    from lammps_al.models.registry import calibration

    beta = potential.noise.get("noise_precision") if potential.noise else None
    if potential.covariance is None or not beta or not np.isfinite(beta) or beta <= 0:
        return None
    cov = np.asarray(potential.covariance, dtype=float)
    stored = calibration(potential, "bayes_force")
    if stored is not None and stored[1] == 1.0:
        cov = cov * stored[0] ** 2
    floor = (weights.force_weight * cfg.loop.force_target) ** 2
    return cov, max(1.0 / float(beta), floor)


def candidate_rows(potential, frames: list, group_weights) -> list[np.ndarray]:
    """Per candidate, the weighted design rows its label would give the fit (``potential``'s form)."""
    dm = Rows.of(potential).design(frames)
    weighted = dm.A * row_weights(dm, group_weights)[:, None]
    return [weighted[dm.config == c] for c in range(len(frames))]


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
    gains = {}
    if s.selection == "random":
        rng = np.random.default_rng(1000 * s.seed + k)
        chosen = sorted(rng.choice(len(entries), size=cap, replace=False).tolist()) if cap else []
    elif cap:
        potential = load(potential_path(s, k))
        weights = cfg.fit.weights_for(group_name(k))
        plan = information_plan(cfg, potential, weights)
        if plan is not None:
            frames = [a if a is not None else read_candidate(flagged / e.file) for a, e in zip(frames, entries)]
            costs = [float(len(a)) ** s.cost_exponent for a in frames]
            budget = selection_budget(costs, s.max_select)
            # from a pool of every write interval: the snapshots where an atom's predicted error reaches the
            # force target (the accuracy asked for; below it everywhere, a label buys nothing)
            threshold = s.force_target if s.candidates == "trajectory" else 0.0
            eligible = [i for i, e in enumerate(entries) if e.max_sigma >= threshold]
            picks, picked = [], []
            if eligible:
                rows = candidate_rows(potential, [frames[i] for i in eligible], weights)
                picks, picked = information_selection(rows, plan[0], plan[1], [costs[i] for i in eligible], cap,
                                                      budget=budget, kinds=[kinds[i] for i in eligible],
                                                      spent_before=spent_by_kind(s, k))
            chosen = [eligible[i] for i in picks]
            gains = dict(zip(chosen, picked))
        else:
            features = candidate_features(potential_path(s, k), [flagged / e.file for e in entries], frames)
            chosen = diverse_selection(np.array([e.max_sigma for e in entries]), features, kinds, cap)
    else:
        chosen = []
    return SelectRecord(flagged=len(entries) + len(close), selection=s.selection, selected=[
        SelectedItem(file=str(flagged / entries[i].file), run_id=entries[i].run_id, kind=kinds[i],
                     max_sigma=entries[i].max_sigma, gain=gains.get(i),
                     natoms=len(frames[i]) if frames[i] is not None else None) for i in chosen],
        close_contacts=close)
