"""A new model and a new scorer, defined here alone, run through the ASE twin and through LAMMPS (mliappy)
with no edit to the package: the registries take them, the potential file records where the model is
imported from, and LAMMPS on every rank imports this module to load them.

The toy model is not SNAP and not linear in its parameters: E_i = b + sum_k a_k tanh(c_k B_ik), with
dE_i/dB_ik = a_k c_k (1 - tanh^2(c_k B_ik)). The toy scorer is the distance of an atom's descriptors from the
training atoms' mean, in units of their spread; the fit makes its data (mean and spread) from the training
descriptors it hands every scorer.
"""

from __future__ import annotations

import numpy as np
import pytest
from ase.build import bulk

from lammps_al.core.descriptor import SNAPSettings
from lammps_al.core.errors import PotentialError
from lammps_al.core.potential import Potential, load
from lammps_al.models.registry import FitProducts, Model, Scorer, model_for, produce_scorer_data, register_model
from lammps_al.train.calculator import SNAPCalculator
from lammps_al.train.descriptors import SnapWorker
from lammps_al.train.lammps_files import write_all


@register_model
class ToyTanhModel(Model):
    kind = "toy-tanh"

    def __init__(self, bias: float, amplitudes: np.ndarray, rates: np.ndarray):
        self.bias, self.amplitudes, self.rates = float(bias), np.asarray(amplitudes), np.asarray(rates)
        self.n_elements, self.n_descriptors = 1, len(self.amplitudes)
        self.n_params = 1 + 2 * self.n_descriptors

    @classmethod
    def from_potential(cls, potential):
        a = potential.arrays
        if a["model.amplitudes"].shape != a["model.rates"].shape:
            raise PotentialError("toy model: amplitudes and rates differ in shape")
        return cls(float(a["model.bias"]), a["model.amplitudes"], a["model.rates"])

    def arrays(self):
        return {"model.bias": np.array(self.bias), "model.amplitudes": self.amplitudes, "model.rates": self.rates}

    def energies(self, elems, descriptors):
        return self.bias + np.tanh(descriptors * self.rates) @ self.amplitudes

    def gradients(self, elems, descriptors):
        return self.amplitudes * self.rates * (1.0 - np.tanh(descriptors * self.rates) ** 2)


class DistanceScorer(Scorer):
    name = "toy-distance"
    unit = "1"
    needs = ("distance.mean", "distance.spread")

    def __init__(self, mean, spread):
        self.mean, self.spread = mean, spread

    @classmethod
    def produce(cls, fit: FitProducts):
        B = np.vstack(fit.descriptors)
        return {"distance.mean": B.mean(axis=0), "distance.spread": B.std(axis=0) + 1e-12}

    @classmethod
    def from_potential(cls, potential, model):
        return cls(potential.arrays["distance.mean"], potential.arrays["distance.spread"])

    def __call__(self, elems, descriptors):
        return np.linalg.norm((descriptors - self.mean) / self.spread, axis=1)


SCORER = f"{__name__}:DistanceScorer"
SETTINGS = SNAPSettings(elements=("Al",), twojmax=4, rcutfac=4.5, radelem=(0.5,), wj=(1.0,), bzeroflag=1)


def rattled(seed, amp=0.1):
    atoms = bulk("Al", "fcc", a=4.05, cubic=True).repeat(2)
    atoms.rattle(amp, seed=seed)
    return atoms


@pytest.fixture(scope="module")
def toy_potential(tmp_path_factory):
    """A toy potential with its scorer's data made the way a fit makes it (from training descriptors)."""
    d = SETTINGS.n_descriptors
    rng = np.random.default_rng(0)
    model = ToyTanhModel(-3.2, rng.normal(scale=0.3, size=d), rng.uniform(0.2, 2.0, size=d))
    potential = Potential(elements=("Al",), model=ToyTanhModel.kind, descriptor=SETTINGS, arrays=model.arrays())
    worker = SnapWorker(SETTINGS)
    training = np.vstack([worker.compute(rattled(seed)).per_atom for seed in range(3)])
    worker.close()
    from lammps_al.models.registry import register_scorer

    register_scorer(DistanceScorer)
    potential.arrays.update(produce_scorer_data(FitProducts(potential, model_for(potential), None, [training])))
    folder = tmp_path_factory.mktemp("toy")
    write_all(potential, folder, "Toy")
    return folder


def test_the_potential_file_says_where_the_model_comes_from(toy_potential):
    p = load(toy_potential / "Toy.npz")
    assert p.model == "toy-tanh" and p.model_class == f"{__name__}:ToyTanhModel"
    assert not (toy_potential / "Toy.snapcoeff").exists()      # not a SNAP model: no native pair style
    assert f"variable lal_scorer index {SCORER}" in (toy_potential / "Toy.mliappy.lammps").read_text()


def test_the_ase_twin_runs_the_toy_model_and_its_forces_are_the_energy_gradient(toy_potential):
    atoms = rattled(seed=11)
    calc = SNAPCalculator(toy_potential / "Toy.npz", scorer=SCORER)
    atoms.calc = calc
    forces = atoms.get_forces()
    h = 1e-4
    for i, a in ((3, 0), (17, 2)):
        plus, minus = atoms.copy(), atoms.copy()
        plus.positions[i, a] += h
        minus.positions[i, a] -= h
        plus.calc = minus.calc = calc
        numeric = -(plus.get_potential_energy() - minus.get_potential_energy()) / (2 * h)
        assert forces[i, a] == pytest.approx(numeric, abs=1e-6)
    calc.close()


@pytest.mark.parametrize("nprocs", [1, pytest.param(2, marks=pytest.mark.mpi)])
def test_lammps_runs_the_toy_model_and_scorer_like_the_ase_twin(runner, toy_potential, nprocs):
    """Per-atom energies, forces and toy sigma from mliappy (this module imported on every rank) equal the
    ASE twin's."""
    import os

    atoms = rattled(seed=12)
    atoms.write(runner.workdir / "cell.lmp", format="lammps-data", specorder=["Al"])
    (runner.workdir / "in.toy").write_text(
        "units metal\natom_style atomic\natom_modify map array\nread_data cell.lmp\nmass 1 26.98\n"
        f"include {toy_potential / 'Toy.mliappy.lammps'}\ncompute pe all pe/atom\n"
        "dump d all custom 1 atoms.dump id c_pe fx fy fz d_lal_sigma\n"
        "dump_modify d sort id format float %20.15g\nrun 0\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([os.path.dirname(__file__), os.environ.get("PYTHONPATH", "")])}
    runner.lmp("in.toy", nprocs=nprocs, extra=["-log", "none", "-var", "lal_potdir", str(toy_potential),
                                               "-var", "lal_score_every", "1"], env=env)
    rows = np.loadtxt(runner.workdir / "atoms.dump", skiprows=9)
    calc = SNAPCalculator(toy_potential / "Toy.npz", scorer=SCORER)
    atoms.calc = calc
    np.testing.assert_allclose(rows[:, 1], atoms.get_potential_energies(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(rows[:, 2:5], atoms.get_forces(), rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(rows[:, 5], calc.results["energies_uncertainty"], rtol=1e-10)
    assert rows[:, 5].min() > 0
    calc.close()
