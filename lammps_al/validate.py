"""Validating a learned potential against the reference, side by side in LAMMPS.

Properties (fcc aluminium): lattice constant and cohesive energy (box relaxation), C11/C12/C44 (central
differences of the stress under +-0.5 % strains), the vacancy formation energy (relaxed, 256-atom cell),
(100)/(110)/(111) surface energies (relaxed slabs) and the intrinsic stacking-fault energy (a (111)
stack whose periodic image is shifted by a/sqrt(6) along [11-2], relaxed along [111]). The learned
potential runs through native ``pair_style snap`` with its exported coefficients (identical to its
mliappy model to 1e-10); the reference through its own pair style.

Held-out errors: MD snapshots at 300-1500 K (bulk, a vacancy, a surface, liquid) made with the reference
potential from a seed the loop never uses, labelled by the reference; energy and force RMSE of the learned
potential, and the Spearman correlation between its predicted sigma and its actual error per snapshot.

Melting point: solid-liquid coexistence at constant enthalpy and zero pressure (``in_files/al_coexistence.in``,
Morris et al. 1994): half a crystal is melted, the cell is left at constant enthalpy, and the temperature
settles where the two phases coexist. Both potentials run the same protocol, so its finite-size offset
cancels in the comparison. If the interface is lost (the cell melted or froze completely), the run is repeated
from a start temperature 150 K lower or higher.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.build import bulk, fcc100, fcc110, fcc111
from ase.lattice.cubic import FaceCenteredCubic

from lammps_al import runtime
from lammps_al.errors import LammpsAlError
from lammps_al.potential import Potential, load

EV_PER_A2_TO_J_PER_M2 = 16.021766
BAR_TO_GPA = 1e-4
HELD_OUT_SEED = 977


@dataclass
class PairSetup:
    name: str
    commands: list[str]
    element: str = "Al"


def learned_pair(potential_path: Path) -> PairSetup:
    from lammps_al.potential import _pair_lines

    path = Path(potential_path).resolve()
    p = load(path)
    stem = path.with_suffix("")
    lines = _pair_lines(p, "snap", f"{stem}.snapcoeff {stem}.snapparam {' '.join(p.elements)}")
    return PairSetup(f"learned ({path.name})", lines, p.elements[0])


def reference_pair(potential: str = "Al_mm.eam.fs", element: str = "Al") -> PairSetup:
    path = runtime.potentials_dir() / potential
    style = "eam/fs" if potential.endswith(".fs") else "eam/alloy"
    return PairSetup(f"reference ({potential})", [f"pair_style {style}", f"pair_coeff * * {path} {element}"], element)


class Calc:
    """A serial LAMMPS instance evaluating a pair setup on ASE structures."""

    def __init__(self, pair: PairSetup):
        import lammps

        self.pair = pair
        self.lmp = lammps.lammps(cmdargs=["-nocite", "-log", "none", "-screen", "none"])

    def close(self):
        self.lmp.close()

    def load(self, atoms: Atoms) -> None:
        from lammps_al.descriptors import load_cell

        load_cell(self.lmp, atoms, 1, [1] * len(atoms))
        self.lmp.commands_list(["mass 1 26.9815", *self.pair.commands, "thermo_style custom step pe pxx pyy pzz pyz pxz pxy",
                           "thermo_modify norm no"])

    def energy(self, atoms: Atoms | None = None, relax: str = "") -> float:
        if atoms is not None:
            self.load(atoms)
        if relax == "atoms":
            self.lmp.commands_list(["min_style cg", "minimize 0 1e-6 2000 20000"])
        elif relax == "z":
            self.lmp.commands_list(["fix z all setforce 0 0 NULL", "min_style cg", "minimize 0 1e-6 2000 20000",
                                    "unfix z"])
        elif relax == "box":
            self.lmp.commands_list(["fix br all box/relax iso 0.0 vmax 0.001", "min_style cg",
                                    "minimize 0 1e-8 5000 50000", "unfix br", "minimize 0 1e-8 2000 20000"])
        else:
            self.lmp.command("run 0 post no")
        return float(self.lmp.get_thermo("pe"))

    def pressure(self) -> np.ndarray:
        return np.array([self.lmp.get_thermo(k) for k in ("pxx", "pyy", "pzz", "pyz", "pxz", "pxy")])


def lattice_and_cohesion(calc: Calc) -> tuple[float, float]:
    atoms = bulk("Al", "fcc", a=4.05, cubic=True).repeat(3)
    e = calc.energy(atoms, relax="box")
    boxlo, boxhi, *_ = calc.lmp.extract_box()
    return (boxhi[0] - boxlo[0]) / 3, e / len(atoms)


def elastic_constants(calc: Calc, a0: float, delta: float = 0.005) -> dict:
    base = bulk("Al", "fcc", a=a0, cubic=True).repeat(2)
    stresses = {}
    for name, strain in (("xx", np.diag([1, 0, 0])), ("xy", np.array([[0, 0.5, 0], [0.5, 0, 0], [0, 0, 0]]))):
        for sign in (1, -1):
            atoms = base.copy()
            atoms.set_cell(base.cell.array @ (np.eye(3) + sign * delta * strain), scale_atoms=True)
            calc.energy(atoms)
            stresses[(name, sign)] = -calc.pressure() * BAR_TO_GPA     # stress, GPa (xx yy zz yz xz xy)
    d_xx = (stresses[("xx", 1)] - stresses[("xx", -1)]) / (2 * delta)
    d_xy = (stresses[("xy", 1)] - stresses[("xy", -1)]) / (2 * delta)
    return {"C11": float(d_xx[0]), "C12": float(d_xx[1]), "C44": float(d_xy[5])}


def vacancy_formation(calc: Calc, a0: float) -> float:
    perfect = bulk("Al", "fcc", a=a0, cubic=True).repeat(4)
    e_perfect = calc.energy(perfect)
    vac = perfect.copy()
    del vac[0]
    e_vac = calc.energy(vac, relax="atoms")
    return e_vac - e_perfect * (len(vac) / len(perfect))


def surface_energies(calc: Calc, a0: float, e_coh: float) -> dict:
    out = {}
    for name, builder, size in (("100", fcc100, (2, 2, 10)), ("110", fcc110, (2, 2, 14)), ("111", fcc111, (2, 2, 10))):
        slab = builder("Al", size=size, a=a0, vacuum=8.0, periodic=True)
        e = calc.energy(slab, relax="atoms")
        area = np.linalg.norm(np.cross(slab.cell[0], slab.cell[1]))
        out[name] = (e - len(slab) * e_coh) / (2 * area) * EV_PER_A2_TO_J_PER_M2
    return out


def stacking_fault(calc: Calc, a0: float) -> float:
    perfect = FaceCenteredCubic(directions=[[1, -1, 0], [1, 1, -2], [1, 1, 1]], size=(1, 1, 8), symbol="Al",
                                latticeconstant=a0, pbc=True)
    e_perfect = calc.energy(perfect)
    faulted = perfect.copy()
    cell = faulted.cell.array.copy()
    cell[2] = cell[2] + np.array([0.0, a0 / np.sqrt(6.0), 0.0])   # image shifted by a partial along [11-2]
    faulted.set_cell(cell, scale_atoms=False)
    e_fault = calc.energy(faulted, relax="z")
    area = np.linalg.norm(np.cross(cell[0], cell[1]))
    return (e_fault - e_perfect) / area * EV_PER_A2_TO_J_PER_M2 * 1e3       # mJ/m^2


@dataclass(frozen=True)
class Coexistence:
    """Settings of the coexistence run (``in_files/al_coexistence.in`` variables). The defaults, 768 atoms and
    20 ps of NPH at a 4 fs step, give the reference EAM's melting point to about +-5 K (seed to seed spread);
    the 4 fs step gives the same average as 2 and 3 fs (measured with the EAM)."""

    nx: int = 4
    nz: int = 12
    dt: float = 0.004
    steps_solid: int = 300
    steps_melt: int = 400
    steps_cool: int = 200
    steps_nph: int = 5000
    steps_avg: int = 4000
    t_guess: float = 930.0
    seed: int = 8123
    nprocs: int = 2
    retry_shift: float = 150.0

    def variables(self) -> dict:
        return {k: getattr(self, k) for k in ("nx", "nz", "dt", "steps_solid", "steps_melt", "steps_cool",
                                               "steps_nph", "steps_avg", "t_guess", "seed")}


ROOT = Path(__file__).resolve().parents[1]
COEXISTENCE_INPUT = ROOT / "in_files" / "al_coexistence.in"


def _block_error(x: np.ndarray, blocks: int = 5) -> float:
    """Standard error of the mean of a correlated series from ``blocks`` block averages."""
    n = len(x) // blocks
    if n < 1:
        return float("nan")
    means = x[: n * blocks].reshape(blocks, n).mean(axis=1)
    return float(means.std(ddof=1) / np.sqrt(blocks))


def coexistence_run(pair: PairSetup, workdir: Path, settings: Coexistence, t_guess: float) -> dict:
    """One coexistence run; the temperature and phase fractions it ended with."""
    import subprocess

    workdir.mkdir(parents=True, exist_ok=True)
    tag = f"T{t_guess:.0f}"
    pair_file = workdir / "pair.lammps"
    pair_file.write_text("\n".join(pair.commands) + "\n")
    out, logfile = workdir / f"coexistence_{tag}.txt", workdir / f"coexistence_{tag}.log"
    variables = {**settings.variables(), "t_guess": t_guess, "pair": pair_file, "out": out}
    cmd = runtime.mpi_command(settings.nprocs, str(runtime.find_lmp()), "-nocite", "-in", str(COEXISTENCE_INPUT),
                              "-log", str(logfile), "-screen", "none")
    for k, v in variables.items():
        cmd += ["-var", k, str(v)]
    proc = subprocess.run(cmd, cwd=ROOT, env=runtime.lammps_env(),
                          capture_output=True, text=True, stdin=subprocess.DEVNULL)
    text = logfile.read_text(errors="replace") if logfile.is_file() else proc.stdout + proc.stderr
    if proc.returncode != 0:
        tail = "\n".join((text + proc.stderr).strip().splitlines()[-8:])
        raise LammpsAlError(f"the coexistence run for {pair.name} failed (exit {proc.returncode}); log {logfile}:\n{tail}")
    marks = {}
    for line in text.splitlines():
        if line.startswith("LAL_COEX"):
            words = line.split()[1:]
            marks.update(zip(words[0::2], words[1::2]))
    data = np.loadtxt(out, comments="#", ndmin=2)
    prod = data[data[:, 0] >= float(marks["avg_from_step"])]
    solid = float(marks["solid_fraction"])
    end = float(marks["end_fraction"])
    share = end / solid if solid > 0 else float("nan")       # fraction of the cell still crystalline at the end
    state = "melted" if share < 0.15 else ("frozen" if share > 0.85 else "coexistence")
    return {"t_guess_K": t_guess, "state": state, "temperature_K": float(prod[:, 1].mean()),
            "temperature_stderr_K": _block_error(prod[:, 1]), "pressure_bar": float(prod[:, 2].mean()),
            "solid_share_start": float(marks["start_fraction"]) / solid if solid > 0 else float("nan"),
            "solid_share_end": share, "natoms": 4 * settings.nx * settings.nx * settings.nz,
            "nph_ps": settings.steps_nph * settings.dt, "averaged_ps": settings.steps_avg * settings.dt,
            "log": str(logfile)}


def melting_point(pair: PairSetup, workdir: Path, settings: Coexistence = Coexistence(),
                  t_guess: float | None = None) -> dict:
    """The melting point by coexistence; one retry from a shifted start if the interface was lost."""
    t = settings.t_guess if t_guess is None else t_guess
    attempts = []
    for _ in range(2):
        run = coexistence_run(pair, Path(workdir), settings, t)
        attempts.append(run)
        if run["state"] == "coexistence":
            return {"melting_point_K": run["temperature_K"], "stderr_K": run["temperature_stderr_K"],
                    "attempts": attempts}
        # melted: the start was too hot for this potential; frozen: too cold
        t = t - settings.retry_shift if run["state"] == "melted" else t + settings.retry_shift
    starts = ", ".join(f"{a['t_guess_K']:.0f}" for a in attempts)
    return {"melting_point_K": None, "stderr_K": None, "attempts": attempts,
            "error": f"no solid-liquid interface survived (the cell {attempts[-1]['state']} from start "
                     f"temperatures {starts} K)"}


def properties(pair: PairSetup) -> dict:
    calc = Calc(pair)
    try:
        a0, e_coh = lattice_and_cohesion(calc)
        out = {"lattice_constant_A": a0, "cohesive_energy_eV": -e_coh, **{f"{k}_GPa": v for k, v in
                                                                         elastic_constants(calc, a0).items()},
               "vacancy_formation_eV": vacancy_formation(calc, a0)}
        out.update({f"surface_{k}_J_m2": v for k, v in surface_energies(calc, a0, e_coh).items()})
        out["stacking_fault_mJ_m2"] = stacking_fault(calc, a0)
        return out
    finally:
        calc.close()


def held_out_set(seed: int = HELD_OUT_SEED) -> list[Atoms]:
    """Reference-potential MD snapshots at 300-1500 K: bulk, vacancy, (111) surface, liquid."""
    import lammps

    from lammps_al.structures import _atoms_from_lammps

    pot = runtime.potentials_dir() / "Al_mm.eam.fs"
    snaps = []
    systems = [("bulk", "create_atoms 1 box", [300, 700, 1100, 1500]),
               ("vacancy", "create_atoms 1 box\ngroup v id 1\ndelete_atoms group v", [600, 1200]),
               ("liquid", "create_atoms 1 box", [1500])]
    for kind, create, temps in systems:
        for j, temp in enumerate(temps):
            lmp = lammps.lammps(cmdargs=["-nocite", "-log", "none", "-screen", "none"])
            try:
                lmp.commands_list(["units metal", "atom_style atomic", "lattice fcc 4.05",
                                   "region box block 0 3 0 3 0 3", "create_box 1 box", *create.split("\n"),
                                   "mass 1 26.9815", "pair_style eam/fs", f"pair_coeff * * {pot} Al",
                                   "timestep 0.002"])
                if kind == "liquid":
                    lmp.commands_list([f"velocity all create 3000 {seed + j} mom yes rot yes loop geom",
                                       "fix t all nvt temp 2500 2500 0.1", "run 2000", "unfix t"])
                lmp.commands_list([f"velocity all create {2 * temp} {seed + 17 * j + len(kind)} mom yes rot yes loop geom",
                                   f"fix t all npt temp {temp} {temp} 0.1 iso 0 0 1", "run 1000"])
                for _ in range(3):
                    lmp.command("run 300")
                    atoms = _atoms_from_lammps(lmp, "Al")
                    atoms.info["kind"] = f"{kind}-{temp}K"
                    snaps.append(atoms)
            finally:
                lmp.close()
    slab = fcc111("Al", size=(3, 3, 6), a=4.05, vacuum=6.0, periodic=True)
    rng = np.random.default_rng(seed)
    for amp in (0.05, 0.1, 0.15):
        s = slab.copy()
        s.positions += rng.normal(scale=amp, size=s.positions.shape)
        s.info["kind"] = f"surface-rattled-{amp}"
        snaps.append(s)
    return snaps


def labelled_held_out_set(cache: Path | None = None, seed: int = HELD_OUT_SEED) -> list[Atoms]:
    """The held-out snapshots with reference labels (REF_energy, REF_forces), cached in ``cache`` if given."""
    from ase.io import read, write

    from lammps_al.label import compute_labels
    from lammps_al.oracles import OracleSpec, make_calculator

    if cache is not None and Path(cache).is_file():
        return read(cache, index=":")
    ref = make_calculator(OracleSpec("eam"))
    snapshots = held_out_set(seed)
    for atoms in snapshots:
        labels = compute_labels(ref, atoms)
        atoms.info["REF_energy"] = labels["energy"]
        atoms.arrays["REF_forces"] = labels["forces"]
    if cache is not None:
        Path(cache).parent.mkdir(parents=True, exist_ok=True)
        write(cache, snapshots, format="extxyz")
    return snapshots


def held_out_errors(potential_path: Path, snapshots: list[Atoms], scorer: str = "bayes") -> dict:
    """Energy/force RMSE of the learned potential on reference-labelled snapshots, and sigma vs error."""
    from scipy.stats import spearmanr

    from lammps_al.models.calculator import SNAPCalculator

    calc = SNAPCalculator(potential_path, scorer=scorer)
    e_err, f_sq, n_f, sig, cfg_err = [], 0.0, 0, [], []
    try:
        for atoms in snapshots:
            labels = {"energy": atoms.info["REF_energy"], "forces": atoms.arrays["REF_forces"]}
            a = atoms.copy()
            a.calc = calc
            e = a.get_potential_energy()
            f = a.get_forces()
            df = f - labels["forces"]
            e_err.append((e - labels["energy"]) / len(atoms))
            f_sq += float(np.sum(df**2))
            n_f += df.size
            sig.append(float(np.max(calc.results["energies_uncertainty"])))
            cfg_err.append(float(np.sqrt(np.mean(df**2))))
    finally:
        calc.close()
    rho = spearmanr(sig, cfg_err).statistic
    return {"snapshots": len(snapshots), "energy_rmse_eV_atom": float(np.sqrt(np.mean(np.square(e_err)))),
            "force_rmse_eV_A": float(np.sqrt(f_sq / n_f)), "spearman_sigma_vs_force_error": float(rho),
            "sigma": sig, "force_rmse_per_snapshot": cfg_err}


def validate(potential_path: Path, held_out: bool = True, held_out_cache: Path | None = None,
             melting: Coexistence | None = Coexistence(), workdir: Path | None = None) -> dict:
    """Properties side by side; the melting point unless ``melting`` is None (runs in ``workdir``)."""
    learned_setup, reference_setup = learned_pair(potential_path), reference_pair()
    learned = properties(learned_setup)
    reference = properties(reference_setup)
    report = {"potential": str(potential_path), "learned": learned, "reference": reference,
              "relative_difference": {k: (learned[k] - reference[k]) / abs(reference[k]) for k in reference}}
    if melting is not None:
        workdir = Path(workdir) if workdir is not None else Path(potential_path).resolve().parent / "validation"
        ref = melting_point(reference_setup, workdir / "melting_reference", melting)
        guess = ref["melting_point_K"] or melting.t_guess
        mine = melting_point(learned_setup, workdir / "melting_learned", melting, t_guess=guess)
        report["melting"] = {"learned": mine, "reference": ref, "method": "solid-liquid coexistence, NPH, P=0",
                             "difference_K": (mine["melting_point_K"] - ref["melting_point_K"]
                                              if mine["melting_point_K"] and ref["melting_point_K"] else None)}
    if held_out:
        report["held_out"] = held_out_errors(potential_path, labelled_held_out_set(held_out_cache))
    return report


def report_lines(report: dict) -> list[str]:
    lines = [f"validation of {report['potential']} against the reference (Mendelev EAM)",
             f"  {'property':<24s} {'learned':>12s} {'reference':>12s} {'rel. diff':>10s}"]
    for k, ref in report["reference"].items():
        lines.append(f"  {k:<24s} {report['learned'][k]:12.5g} {ref:12.5g} {report['relative_difference'][k]:+10.2%}")
    m = report.get("melting")
    if m:
        def fmt(r):
            if r["melting_point_K"] is None:
                return f"not determined: {r['error']}"
            return f"{r['melting_point_K']:.0f} +- {r['stderr_K']:.0f} K"
        a = m["reference"]["attempts"][-1]
        lines.append(f"  melting point ({a['natoms']}-atom coexistence, NPH {a['nph_ps']:.0f} ps): learned "
                     f"{fmt(m['learned'])}, reference {fmt(m['reference'])}"
                     + (f", difference {m['difference_K']:+.0f} K" if m["difference_K"] is not None else ""))
    else:
        lines.append("  melting point: not computed (--no-melting)")
    if "held_out" in report:
        h = report["held_out"]
        lines.append(f"  held-out ({h['snapshots']} reference MD snapshots, 300-1500 K, vacancy, surface, liquid): "
                     f"energy RMSE {h['energy_rmse_eV_atom'] * 1e3:.2f} meV/atom, force RMSE "
                     f"{h['force_rmse_eV_A']:.4f} eV/A, Spearman(sigma, error) {h['spearman_sigma_vs_force_error']:.2f}")
    return lines


def write_report(report: dict, path: Path) -> None:
    from lammps_al.potential import atomic_write_text

    atomic_write_text(Path(path), json.dumps(report, indent=2, default=float))
