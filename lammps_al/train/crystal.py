"""The crystal of an element, by any ASE calculator or by a SNAP potential's coefficients.

By a calculator: the fcc lattice constant and bulk modulus from E(V) of the 1-atom primitive cell (used where
only the calculator itself can say them: a DFT oracle), :func:`fcc_equation_of_state`.

By a Bayesian SNAP potential: its energy and stress are linear in its coefficients, so are its C11, C12 and C44
(central differences of the stress of the perfect cubic cell under +-1 % xx and yz strains) and its unrelaxed
vacancy formation energy E(N-1) - (N-1)/N E(N) in the 2x2x2 cubic cell: P = g . beta, with the posterior
variance g^T Sigma g. What the loop's crystal check (:mod:`lammps_al.loop.elastic`) and on-the-fly learning
(:mod:`lammps_al.otf.learner`) decide with. The cells that pin them are small: four 4-atom strained cells
(natoms^3 64 each) and the 31-atom vacancy cell. Each :class:`Check` names a group of such cells, the row kind
whose weight decides how firmly the fit holds them (stress for the strained cells; the energy for the vacancy
cell: per-atom energy rows of an MD cell of hundreds of atoms cannot resolve 0.1 eV) and the properties it
answers for. Descriptors come through a :class:`Rows` object: ``compute_blocks`` (worker processes) by
default, or one ``SnapWorker`` confined to ``MPI.COMM_SELF`` inside a running MPI job.
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Callable

import numpy as np
from ase import Atoms
from ase.build import bulk

from lammps_al.core.units import BAR_TO_GPA, EV_PER_A3_TO_GPA, VOIGT
from lammps_al.train.descriptors import _canonical_frame, compute_blocks, design_matrix
from lammps_al.train.structures import ELASTIC_GROUP, elastic_set

EOS_RANGE = 0.01          # of the lattice constant: volumes within +-3 % (wider ranges bias B by the
#                           anharmonicity, by 8 % at +-3 % of a for Mendelev's Al EAM)


def fcc_equation_of_state(make_calc: Callable[[], object], element: str, a_guess: float,
                          points: int = 7) -> dict:
    """A Birch-Murnaghan fit of E(V) at ``points`` lattice constants within +-1 % of the centre, centred again
    on the fitted minimum while it falls outside the inner half (at most three passes). Returns the lattice
    constant (A), the volume per atom (A^3), the bulk modulus (GPa), the energy per atom (eV) and the number of
    calculator calls."""
    from ase.eos import EquationOfState
    from ase.units import GPa

    calc = make_calc()
    centre, calls = a_guess, 0
    for _ in range(3):
        volumes, energies = [], []
        for s in np.linspace(-EOS_RANGE, EOS_RANGE, points):
            atoms = bulk(element, "fcc", a=centre * (1 + s))
            atoms.calc = calc
            volumes.append(atoms.get_volume())
            energies.append(atoms.get_potential_energy())
            calls += 1
        with warnings.catch_warnings():       # a minimum outside the volumes: the next pass centres on it
            warnings.simplefilter("ignore", UserWarning)
            v0, e0, b = EquationOfState(volumes, energies, eos="birchmurnaghan").fit()
        a0 = float((4 * v0) ** (1 / 3))
        if abs(a0 / centre - 1) <= EOS_RANGE / 2:
            break
        centre = a0
    return {"a0": a0, "volume": float(v0), "bulk_modulus_GPa": float(b / GPa), "energy": float(e0), "calls": calls}


STRAIN = 0.01
FACTORS = (1.0, 3.0, 10.0, 30.0, 100.0)     # candidate factors on a group's default weight of its row kind
SAME_LATTICE = 0.005        # relative: cells of a lattice constant this close to labelled ones are not labelled again
RELABEL_LATTICE = 0.001     # ... unless no factor makes those known at the model's own: then new cells, once this far
CUBIC = ("fcc", "bcc")
VACANCY_GROUP = "vacancy"
VACANCY_REPS = 2               # the 2x2x2 cubic cell: 31 atoms for fcc, 15 for bcc


class Rows:
    """Design-matrix rows of cells for one descriptor setting (``settings``: a potential's own, quadratic
    included); ``blocks_of(cells)`` computes their descriptor blocks."""

    def __init__(self, settings, blocks_of: Callable[[list], list]):
        self.settings, self.blocks_of = settings, blocks_of

    @classmethod
    def of(cls, potential) -> Rows:
        """Rows of ``potential``'s form, descriptors by worker processes."""
        return cls(potential.descriptor, lambda cells: compute_blocks(cells, potential.descriptor,
                                                                     potential.reference))

    def design(self, cells, energy=True, force=True, stress=True):
        cells = unlabelled(cells)
        return design_matrix(cells, self.blocks_of(cells), self.settings, energy=energy, force=force,
                             stress=stress)


def unlabelled(cells) -> list[Atoms]:
    """Copies with zero labels where a cell has none (rows need no labels; the design matrix wants them)."""
    out = []
    for atoms in cells:
        a = atoms.copy()
        a.info.setdefault("REF_energy", 0.0)
        a.info.setdefault("REF_stress", np.zeros(6))
        if "REF_forces" not in a.arrays:
            a.arrays["REF_forces"] = np.zeros((len(a), 3))
        out.append(a)
    return out


def strained_cells(element: str, structure: str, a0: float, k: int = 0, stage: str = "iter") -> list[Atoms]:
    """The xx+, xx-, yz+, yz- cells (:func:`~lammps_al.train.structures.elastic_set`) at ``a0``, their source
    naming the stage and its step ``k`` (the loop's iteration, or the run's step on the fly) and ``a0``."""
    cells = elastic_set(element, a0, strains=(STRAIN, -STRAIN), structure=structure)
    for i, atoms in enumerate(cells):
        atoms.info["source"] = f"{ELASTIC_GROUP}/{stage}{k:03d}/{structure}/a={a0:.5f}/{i}"
    return cells


def vacancy_cells(element: str, structure: str, a0: float, k: int = 0, stage: str = "iter") -> list[Atoms]:
    """The cubic ``VACANCY_REPS``^3 cell at ``a0`` with one atom removed, unrelaxed (its forces are the
    relaxation's), its source naming the stage, ``k`` and ``a0``."""
    cell = bulk(element, structure, a=a0, cubic=True).repeat(VACANCY_REPS)
    del cell[0]
    cell.info.update(kind=f"{structure}-vacancy", group=VACANCY_GROUP,
                     source=f"{VACANCY_GROUP}/{stage}{k:03d}/{structure}/a={a0:.5f}/0")
    cell.pbc = True
    return [cell]


def oracle_constants(cells) -> dict[str, float] | None:
    """C11, C12, C44 (GPa) that the labels of one lattice constant's :func:`strained_cells` say: central
    differences of the oracle's own stresses (``REF_stress``, eV/A^3, ASE sign). None without all four cells
    or their stresses. Each cell's strain is read from its cell matrix (the z edge is the unstrained a0)."""
    xx, yz = [], []
    for atoms in cells:
        stress = atoms.info.get("REF_stress")
        if stress is None:
            return None
        eps = atoms.cell.array / atoms.cell.array[2, 2] - np.eye(3)
        stress = np.asarray(stress, dtype=float)
        if abs(eps[0, 0]) > 1e-9:
            xx.append((eps[0, 0], stress))
        elif abs(eps[1, 2]) > 1e-9:
            yz.append((eps[1, 2], stress))
    if len(xx) != 2 or len(yz) != 2 or xx[0][0] == xx[1][0] or yz[0][0] == yz[1][0]:
        return None
    (e1, s1), (e2, s2) = xx
    (g1, t1), (g2, t2) = yz
    return {"C11": float((s1[0] - s2[0]) / (e1 - e2) * EV_PER_A3_TO_GPA),
            "C12": float((s1[1] - s2[1]) / (e1 - e2) * EV_PER_A3_TO_GPA),
            "C44": float((t1[3] - t2[3]) / (2 * (g1 - g2)) * EV_PER_A3_TO_GPA)}


def born_failures(constants: dict[str, float]) -> dict[str, float]:
    """Born's stability conditions for a cubic crystal that ``constants`` (C11, C12, C44) fail: each failing
    combination and its value (C11 - C12, C11 + 2 C12 and C44 must be positive)."""
    c11, c12, c44 = constants["C11"], constants["C12"], constants["C44"]
    combos = {"C11 - C12": c11 - c12, "C11 + 2 C12": c11 + 2 * c12, "C44": c44}
    return {k: float(v) for k, v in combos.items() if not v > 0}


def oracle_check(stored, a0: float) -> tuple[dict[str, float], str]:
    """The oracle's own C11, C12, C44 from its labels of the strained cells nearest ``a0`` (``stored``: (lattice
    constant, labelled cell) pairs), and a warning when they are not a stable cubic crystal's (Born): then its
    stresses are not converged (DFT: k-points) and weighing them up would teach the model an unstable crystal."""
    if not stored:
        return {}, ""
    nearest = min({a for a, _ in stored}, key=lambda a: abs(a - a0))
    constants = oracle_constants([atoms for a, atoms in stored if a == nearest])
    if constants is None:
        return {}, ""
    failed = born_failures(constants)
    if not failed:
        return constants, ""
    said = ", ".join(f"{k} {v:.3g} GPa" for k, v in constants.items())
    return constants, (f"the oracle's own elastic constants from its strained cells at a = {nearest:.4f} A are "
                       f"{said}: not a stable cubic crystal's ({', '.join(f'{k} = {v:.3g}' for k, v in failed.items())}"
                       f" <= 0), so its stresses are not converged (DFT: too few k-points; GPAW's PBE aluminium "
                       f"needed about 9 per reciprocal A here); their stress weight stays x1. Converge the oracle "
                       f"and start a new workdir to learn elastic constants")


def stress_columns(rows: Rows, cells) -> np.ndarray:
    """(cells, 6, coefficients): the stress (GPa, Voigt xx yy zz yz xz xy, in each cell's own frame) per unit
    of each coefficient."""
    dm = rows.design(cells, energy=False, force=False)
    columns = dm.A.reshape(len(cells), 6, -1) * -BAR_TO_GPA      # pressure rows (bar) -> stress (GPa)
    out = np.empty_like(columns)
    for c, atoms in enumerate(cells):
        rot = _canonical_frame(atoms)[2]
        s33 = np.zeros((3, 3, columns.shape[2]))
        for k, (i, j) in enumerate(VOIGT):
            s33[i, j] = s33[j, i] = columns[c, k]
        s33 = np.einsum("ia,abn,jb->ijn", rot, s33, rot)       # the LAMMPS frame back to the cell's
        for k, (i, j) in enumerate(VOIGT):
            out[c, k] = s33[i, j]
    return out


def constant_gradients(rows: Rows, element: str, structure: str, a0: float) -> dict[str, np.ndarray]:
    """g with C = g . coefficients for C11, C12 and C44 (GPa) at ``a0``."""
    s = stress_columns(rows, strained_cells(element, structure, a0))
    d_xx = (s[0] - s[1]) / (2 * STRAIN)
    d_yz = (s[2] - s[3]) / (2 * STRAIN)
    return {"C11": d_xx[0], "C12": d_xx[1], "C44": d_yz[3]}


def vacancy_gradient(rows: Rows, element: str, structure: str, a0: float) -> np.ndarray:
    """g with E_vac = g . coefficients: the unrelaxed vacancy formation energy E(N-1) - (N-1)/N E(N) (eV)."""
    perfect = bulk(element, structure, a=a0, cubic=True).repeat(VACANCY_REPS)
    cells = [perfect, vacancy_cells(element, structure, a0)[0]]
    dm = rows.design(cells, force=False, stress=False)
    n = np.array([len(c) for c in cells], dtype=float)
    total = dm.A * n[:, None]                 # per-atom energy rows -> total energy per coefficient
    return total[1] - total[0] * (n[1] / n[0])


def gradients(rows: Rows, element: str, structure: str, a0: float) -> dict[str, np.ndarray]:
    """C11, C12, C44 and E_vac as g . coefficients."""
    return {**constant_gradients(rows, element, structure, a0),
            "E_vac": vacancy_gradient(rows, element, structure, a0)}


def energy_per_atom(a: float, rows: Rows, element: str, structure: str, coefficients: np.ndarray) -> float:
    dm = rows.design([bulk(element, structure, a=a, cubic=True)], force=False, stress=False)
    return float(dm.A[0] @ coefficients)


def model_crystal(rows: Rows, element: str, coefficients: np.ndarray, volume: float) -> tuple[str, float] | None:
    """The cubic crystal (fcc or bcc) of lowest energy under the linear model ``coefficients`` and its lattice
    constant: for each, the local minimum of the energy per atom nearest the atomic volume ``volume`` (a guess:
    the element's) within 0.7-1.5 x it, as a relaxation from the guess finds (a model knows nothing of much
    denser cells: it may fall to far below its minimum there). None when neither has a minimum in that range
    (an untrained model)."""
    from scipy.optimize import minimize_scalar

    best = None
    factors = np.linspace(0.7, 1.5, 17)
    guess = int(np.argmin(abs(factors - 1.0)))
    for structure in CUBIC:
        per_cell = {"fcc": 4, "bcc": 2}[structure]
        grid = (factors * volume * per_cell) ** (1 / 3)
        e = np.array([energy_per_atom(a, rows, element, structure, coefficients) for a in grid])
        minima = [i for i in range(1, len(grid) - 1) if e[i] <= e[i - 1] and e[i] <= e[i + 1]]
        if not minima:
            continue
        i = min(minima, key=lambda m: abs(m - guess))
        found = minimize_scalar(energy_per_atom, args=(rows, element, structure, coefficients),
                                bounds=(grid[i - 1], grid[i + 1]), method="bounded", options={"xatol": 1e-4})
        if best is None or found.fun < best[2]:
            best = (structure, float(found.x), float(found.fun))
    return None if best is None else best[:2]


class Check:
    """One property set the check watches: its group, the cells that pin it, the row kind whose weight the
    check chooses (0 energy, 2 stress), that weight's name in ``[groups]`` and the properties it answers for."""

    def __init__(self, group: str, make_cells, kind: int, properties: tuple[str, ...]):
        self.group, self.make_cells, self.kind, self.properties = group, make_cells, kind, properties

    @property
    def weight(self) -> str:
        return {0: "energy_weight", 1: "force_weight", 2: "stress_weight"}[self.kind]


CHECKS = (Check(ELASTIC_GROUP, strained_cells, 2, ("C11", "C12", "C44")),
          Check(VACANCY_GROUP, vacancy_cells, 0, ("E_vac",)))


def relative_sigma(gradients: dict, coefficients: np.ndarray, covariance: np.ndarray) -> dict[str, float]:
    """Each property's posterior std relative to its value."""
    return {k: float(np.sqrt(max(g @ covariance @ g, 0.0)) / max(abs(g @ coefficients), 1e-12))
            for k, g in gradients.items()}


def with_rows(covariance: np.ndarray, rows: np.ndarray, noise: float) -> np.ndarray:
    """The posterior covariance after weighted ``rows`` (k x p) are added at noise precision ``noise`` with the
    prior kept (Woodbury: Sigma - Sigma R^T (I / noise + R Sigma R^T)^-1 R Sigma, O(k p^2) for k rows)."""
    if not len(rows):
        return covariance
    rs = rows @ covariance
    inner = np.eye(len(rows)) / noise + rs @ rows.T
    return covariance - rs.T @ np.linalg.solve(inner, rs)


def worst(sigma: dict, names) -> float:
    """Twice the largest relative std among ``names``: what the check compares with its tolerance."""
    return max(2 * sigma[n] for n in names)


def weighted_rows(rows: Rows, cells, weights, kind: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The rows a fit gives ``cells`` with group weights ``weights`` (only the rows of ``kind`` if given; no
    labels needed) and each row's kind (0 energy, 1 force, 2 stress)."""
    dm = rows.design(cells, energy=kind in (None, 0), force=kind in (None, 1), stress=kind in (None, 2))
    return dm.A * row_weights(dm, weights)[:, None], dm.kind


def row_weights(dm, weights) -> np.ndarray:
    """The weight a fit gives each row of the design matrix ``dm`` in a group with ``weights``."""
    natoms = dm.natoms[dm.config]
    energy = weights.energy_weight * (np.sqrt(natoms) if weights.energy_scaling == "sqrt-natoms" else 1.0)
    return np.select([dm.kind == 0, dm.kind == 1], [energy, weights.force_weight], weights.stress_weight)


def smallest_factor(check: Check, candidates, f0: float, grads: dict, coefficients: np.ndarray,
                    covariance: np.ndarray, noise: float, scale: float, tol: float, new=None, old=None):
    """The first of ``candidates`` (factors on the default weight of ``check``'s row kind) at which the
    posterior, with the weighted rows of the new cells ``new`` (rows, kinds) added and the old cells' rows of
    that kind ``old`` (already in at ``f0``) re-weighted, says 2 std x ``scale`` <= ``tol`` for each of the
    check's properties; else the last (refits of the demo's stores: with the strained cells at the default
    weight the posterior said C44 +-4 % and it was +14 % off; x10 took it to +0.9 %). Returns the factor, that
    posterior's covariance (the prior and noise precisions kept) and whether the tolerance was met."""

    def updated(f):
        parts = []
        if new is not None:
            parts.append(new[0] * np.where(new[1] == check.kind, f, 1.0)[:, None])
        if old is not None and f > f0:
            parts.append(np.sqrt(f ** 2 - f0 ** 2) * old)
        return with_rows(covariance, np.vstack(parts), noise) if parts else covariance

    for f in candidates:
        cov = updated(f)
        if worst(relative_sigma(grads, coefficients, cov * scale ** 2), check.properties) <= tol:
            return f, cov, True
    return f, cov, False


def new_cells_needed(stored_lattices, a0: float, failed: bool = False) -> bool:
    """Whether a check labels new cells at the model's lattice constant ``a0``: none stored within
    ``SAME_LATTICE`` of it; or, when no factor on the stored ones made the properties known at ``a0``
    (``failed``), none within ``RELABEL_LATTICE``: cells a little off the model's crystal pin its constants
    only as far as the constants do not change over that distance, and where they cannot make them known, the
    largest weight on them pins the constants of another lattice."""
    near = RELABEL_LATTICE if failed else SAME_LATTICE
    return not any(abs(a / a0 - 1) < near for a in stored_lattices)


def weighted_config(config, factors: dict[str, float]):
    """``config`` with each checked group's default weight of its row kind times its factor (a group the config
    weighs itself, in ``[groups]``, keeps the config's weights)."""
    default = config.weights_for("default")
    kinds = {c.group: c.weight for c in CHECKS}
    for group, factor in factors.items():
        if factor != 1.0 and group not in config.groups:
            key = kinds[group]
            config = dataclasses.replace(config, groups={**config.groups, group: dataclasses.replace(
                default, **{key: getattr(default, key) * factor})})
    return config
