"""An oracle for tests, as a user would give one ("unstable_oracle:UnconvergedStress"): the tests put this folder
on PYTHONPATH."""

import os

from ase.calculators.lammpslib import LAMMPSlib


class UnconvergedStress(LAMMPSlib):
    """Mendelev's EAM with the xx and yy stresses of 4-atom cells swapped (a DFT run whose k-points are too few
    for stresses): its strained cells say C11 < C12, a crystal that fails Born's conditions. An ASE LAMMPSlib
    given no comm, as a user would write it."""

    def __init__(self):
        path = os.path.join(os.environ["LAMMPS_POTENTIALS"], "Al_mm.eam.fs")
        super().__init__(lmpcmds=["pair_style eam/fs", f"pair_coeff * * {path} Al"], atom_types={"Al": 1},
                         keep_alive=True, log_file=None)

    def calculate(self, atoms=None, properties=("energy",), system_changes=()):
        super().calculate(atoms, properties, system_changes)
        if "stress" in self.results and len(self.atoms) == 4:
            s = self.results["stress"].copy()
            s[0], s[1] = s[1], s[0]
            self.results["stress"] = s
