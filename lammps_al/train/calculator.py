"""The ASE twin of a lammps_al potential: the same model and uncertainty, outside any LAMMPS pair style.

Descriptors B_i and their gradients dB_i/dr_j come from LAMMPS's ``compute snap`` (the only SNAP
implementation here); everything after that is the model's and the scorer's numpy: per-atom energies,
forces F_j = -sum_i dE_i/dB_i . dB_i/dr_j, the reference potential's share (if any), per-atom uncertainty,
and the stress by central differences of the energy under small strains. Any registered model works.

Results: ``energy``, ``free_energy``, ``energies``, ``forces``, ``stress`` (eV/A^3, ASE sign) and
``energies_uncertainty`` (in the scorer's unit: eV for bayes and committee, dimensionless for grade). The
gradients are dense (3N^2 rows), so this is meant for cells of up to a few hundred atoms: tests, checks
and labelling.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from ase.calculators.calculator import Calculator, all_changes

from lammps_al.core.potential import Potential, load
from lammps_al.models.registry import FORCE_FEATURES, default_scorer, make_scorer, model_for
from lammps_al.train.descriptors import SnapWorker


class SNAPCalculator(Calculator):
    implemented_properties = ["energy", "free_energy", "energies", "forces", "stress", "energies_uncertainty"]

    def __init__(self, potential: Potential | str | Path, scorer: str | None = None, strain_step: float = 1e-5,
                 **kwargs):
        super().__init__(**kwargs)
        self.potential = potential if isinstance(potential, Potential) else load(potential)
        self.model = model_for(self.potential)
        self.scorer_name = scorer if scorer is not None else default_scorer(self.potential)
        self.scorer = make_scorer(self.potential, self.model, self.scorer_name)
        self.strain_step = strain_step
        self._worker: SnapWorker | None = None

    @property
    def worker(self) -> SnapWorker:
        if self._worker is None:
            self._worker = SnapWorker(self.potential.descriptor.with_quadratic(False), self.potential.reference)
        return self._worker

    def _energies(self, atoms) -> tuple[np.ndarray, dict]:
        data = self.worker.pair_gradients(atoms, "ASE twin")
        energies = self.model.energies(data["elements"], data["B"]) + data["ref_energies"]
        return energies, data

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        atoms = self.atoms
        energies, data = self._energies(atoms)
        beta = self.model.gradients(data["elements"], data["B"])             # (N, d) dE_i/dB_i
        forces = -np.einsum("ik,ijak->ja", beta, data["grad"]) + data["ref_forces"]
        self.results["energies"] = energies
        self.results["energy"] = self.results["free_energy"] = float(energies.sum())
        self.results["forces"] = forces
        if self.scorer is not None:
            if self.scorer.inputs == FORCE_FEATURES:
                J = self.model.force_features(data["elements"], data["B"], data["grad"])
                self.results["energies_uncertainty"] = self.scorer(data["elements"], J)
            else:
                self.results["energies_uncertainty"] = self.scorer(data["elements"], data["B"])
        if "stress" in properties:
            self.results["stress"] = self._numeric_stress(atoms)

    def _numeric_stress(self, atoms) -> np.ndarray:
        """sigma_ab = (1/V) dE/d(eps_ab), central differences of symmetric strains (ASE sign)."""
        h = self.strain_step
        cell = atoms.cell.array.copy()
        volume = atoms.get_volume()
        stress = np.zeros((3, 3))
        for a in range(3):
            for b in range(a, 3):
                values = []
                for sign in (1.0, -1.0):
                    eps = np.eye(3)
                    eps[a, b] += sign * h * (0.5 if a != b else 1.0)
                    eps[b, a] += sign * h * (0.5 if a != b else 0.0)
                    strained = atoms.copy()
                    strained.set_cell(cell @ eps, scale_atoms=True)
                    values.append(self._energies(strained)[0].sum())
                stress[a, b] = stress[b, a] = (values[0] - values[1]) / (2 * h) / volume
        return stress.ravel()[[0, 4, 8, 5, 2, 1]]

    def close(self) -> None:
        if self._worker is not None:
            self._worker.close()
            self._worker = None
