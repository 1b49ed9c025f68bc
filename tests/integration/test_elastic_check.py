"""The loop's crystal check (lammps_al.loop.elastic, lammps_al.train.crystal): the posterior of C11/C12/C44 and of the unrelaxed vacancy
formation energy is the potential's own; uncertain ones get their cells labelled once and a weight chosen by
the updated posterior, and the next fit gives the groups those weights."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import numpy as np
import pytest

from lammps_al.core import potential as potential_io
from lammps_al.core.records import ElasticRecord, MaterialRecord, write_marker
from lammps_al.loop import elastic
from lammps_al.loop import fit as loop_fit
from lammps_al.loop.config import iter_dir, load_loop_config, potential_path
from lammps_al.train import crystal
from lammps_al.train.store import LabelledStore
from lammps_al.train.structures import ELASTIC_GROUP

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "potentials" / "Al_quadratic.npz"
A0 = 4.045


def test_the_posterior_elastic_constants_are_the_potential_s_own(lammps_install):
    """g . coefficients against the same potential's C11/C12/C44 by LAMMPS (native snap, 32-atom cell, xy
    shear at +-0.5 %): the same constants whatever the cell, shear plane and strain."""
    from lammps_al.validate.properties import Calc, elastic_constants, learned_pair

    pot = potential_io.load(SHIPPED)
    grads = crystal.constant_gradients(crystal.Rows.of(pot), "Al", "fcc", A0)
    mine = {k: float(g @ pot.coefficients.ravel()) for k, g in grads.items()}
    calc = Calc(learned_pair(SHIPPED))
    try:
        lammps = elastic_constants(calc, A0)
    finally:
        calc.close()
    for k in ("C11", "C12", "C44"):
        assert mine[k] == pytest.approx(lammps[k], rel=0.01), (k, mine, lammps)
    # the unrelaxed vacancy formation energy, against the same potential's energies in LAMMPS
    from ase.build import bulk

    perfect = bulk("Al", "fcc", a=A0, cubic=True).repeat(2)
    vacancy = perfect.copy()
    del vacancy[0]
    calc = Calc(learned_pair(SHIPPED))
    try:
        e_vac = calc.energy(vacancy) - calc.energy(perfect) * 31 / 32
    finally:
        calc.close()
    g = crystal.vacancy_gradient(crystal.Rows.of(pot), "Al", "fcc", A0)
    assert float(g @ pot.coefficients.ravel()) == pytest.approx(e_vac, abs=1e-6)
    sigma = crystal.relative_sigma(grads, pot.coefficients.ravel(), pot.covariance)
    for k, g in grads.items():      # the relative std is sqrt(g^T Sigma g) / |g . beta|
        assert sigma[k] == pytest.approx(np.sqrt(g @ pot.covariance @ g) / abs(mine[k]), rel=1e-12)


def test_the_model_s_crystal_is_the_minimum_lammps_relaxes_to(lammps_install):
    """On-the-fly learning finds the lattice constant it checks at from the coefficients alone: the minimum of
    g(a) . beta over fcc and bcc is the fcc lattice constant LAMMPS relaxes the same potential to."""
    from lammps_al.validate.properties import Calc, lattice_and_cohesion, learned_pair

    pot = potential_io.load(SHIPPED)
    structure, a0 = crystal.model_crystal(crystal.Rows.of(pot), "Al", pot.coefficients.ravel(), 16.6)
    calc = Calc(learned_pair(SHIPPED))
    try:
        a_lammps, _ = lattice_and_cohesion(calc, "Al")
    finally:
        calc.close()
    assert structure == "fcc" and a0 == pytest.approx(a_lammps, abs=2e-4)


def loop_state(tmp_path: Path, tolerance: float):
    text = (ROOT / "in_files" / "al_demo.toml").read_text().replace('workdir = "runs/al_demo"', 'workdir = "state"')
    text = text.replace("force_target = 0.05", f"force_target = 0.05\nelastic_tolerance = {tolerance}")
    tmp_path.mkdir(parents=True, exist_ok=True)
    (tmp_path / "loop.toml").write_text(text)
    cfg = load_loop_config(tmp_path / "loop.toml")
    path = potential_path(cfg.loop, 0)
    path.parent.mkdir(parents=True)
    shutil.copy(SHIPPED, path)
    write_marker(iter_dir(cfg.loop, 0), MaterialRecord(element="Al", mass=26.98, structure="fcc", a0=A0,
                                                       volume_A3=A0 ** 3 / 4, bulk_modulus_GPa=80.0, energies={},
                                                       tm_K=900.0, tm_source="test"))
    return cfg


def test_uncertain_crystal_properties_get_their_cells_once_and_the_weights_that_make_them_known(tmp_path):
    cfg = loop_state(tmp_path, 0.002)        # the shipped potential's posterior: C44 +- ~2 %, above 0.1 %
    record = elastic.elastic(cfg, 0, show_progress=False)
    assert not record.skipped and record.labelled == {"elastic": 4, "vacancy": 1}
    assert record.cost_natoms3 == 4 * 4 ** 3 + 31 ** 3
    assert all(2 * v > 0.002 for v in record.sigma_relative.values())
    store = LabelledStore(cfg.fit.training.dir)
    cells = [r for r in store.records() if r.group == ELASTIC_GROUP and r.status == "ok"]
    assert len(cells) == 4 and all(r.natoms == 4 for r in cells)
    assert [r.natoms for r in store.records() if r.group == crystal.VACANCY_GROUP] == [31]
    assert record.stress_factor in crystal.FACTORS and record.vacancy_energy_factor in crystal.FACTORS
    # per group, the smallest factor whose updated posterior says 2 std <= tolerance, else the largest
    for check in crystal.CHECKS:
        factor = getattr(record, elastic.FACTOR_FIELD[check.group])
        meets = max(2 * record.predicted_sigma_relative[n] for n in check.properties) <= 0.002
        assert meets or factor == crystal.FACTORS[-1]
    assert all(record.predicted_sigma_relative[k] < record.sigma_relative[k] for k in record.sigma_relative)
    # a second pass (a resume, or the next iteration at the same lattice constant) labels nothing new
    again = elastic.elastic(cfg, 0, show_progress=False)
    assert len([r for r in store.records() if r.group in (ELASTIC_GROUP, crystal.VACANCY_GROUP)]) == 5
    assert (again.stress_factor, again.vacancy_energy_factor) == (record.stress_factor,
                                                                  record.vacancy_energy_factor)
    # the next fit gives the elastic group's stress that factor times the default's
    seen = {}

    def capture(config, show_progress=True):
        seen["groups"] = config.groups
        raise RuntimeError("captured")

    write_marker(iter_dir(cfg.loop, 0), record)
    original = loop_fit.fit_potential
    loop_fit.fit_potential = capture
    try:
        with pytest.raises(RuntimeError, match="captured"):
            loop_fit.fit(cfg, 1, show_progress=False)
    finally:
        loop_fit.fit_potential = original
    default = cfg.fit.weights_for("default")
    assert seen["groups"][ELASTIC_GROUP] == dataclasses.replace(
        default, stress_weight=default.stress_weight * record.stress_factor)
    assert seen["groups"][crystal.VACANCY_GROUP] == dataclasses.replace(
        default, energy_weight=default.energy_weight * record.vacancy_energy_factor)


def test_known_elastic_constants_label_nothing_and_a_zero_tolerance_skips(tmp_path):
    cfg = loop_state(tmp_path, 0.9)
    record = elastic.elastic(cfg, 0, show_progress=False)
    assert record.labelled == {} and record.stress_factor == record.vacancy_energy_factor == 1.0
    assert not record.skipped and set(record.constants) == {"C11", "C12", "C44", "E_vac"}
    assert "new cell" not in elastic.elastic_line(record) and "E_vac" in elastic.elastic_line(record)
    off = loop_state(tmp_path / "off", 0.0)
    record = elastic.elastic(off, 0, show_progress=False)
    assert record.skipped == "[loop] elastic_tolerance = 0" and record.stress_factor == 1.0
    assert not LabelledStore(off.fit.training.dir).records()
    assert isinstance(record, ElasticRecord)


def test_cells_a_little_off_the_model_s_lattice_that_cannot_pin_it_get_new_ones(tmp_path):
    """Cells labelled 0.3 % from the model's crystal count as its lattice (within 0.5 %) while a factor on them
    makes the properties known; where none does, the next iteration labels cells at its own lattice constant
    (once: not again 0.05 % away)."""
    cfg = loop_state(tmp_path, 0.002)
    first = elastic.elastic(cfg, 0, show_progress=False)
    assert first.labelled == {"elastic": 4, "vacancy": 1}
    assert not all(max(2 * first.predicted_sigma_relative[n] for n in c.properties) <= 0.002 for c in crystal.CHECKS)

    def iteration(k: int, a0: float):
        shutil.copy(SHIPPED, potential_path(cfg.loop, k))
        write_marker(iter_dir(cfg.loop, k), MaterialRecord(element="Al", mass=26.98, structure="fcc", a0=a0,
                                                           volume_A3=a0 ** 3 / 4, bulk_modulus_GPa=80.0,
                                                           energies={}, tm_K=900.0, tm_source="test"))
        return elastic.elastic(cfg, k, show_progress=False)

    potential_path(cfg.loop, 1).parent.mkdir(parents=True)
    moved = iteration(1, A0 * 1.003)
    store = LabelledStore(cfg.fit.training.dir)
    lattices = sorted({round(a, 5) for _, a, _ in elastic._stored(store, ELASTIC_GROUP)})
    assert lattices == [round(A0, 5), round(A0 * 1.003, 5)]
    assert moved.labelled == {"elastic": 4, "vacancy": 1}
    potential_path(cfg.loop, 2).parent.mkdir(parents=True)
    assert iteration(2, A0 * 1.0035).labelled == {"elastic": 0, "vacancy": 0}


def test_strained_cells_of_an_oracle_whose_crystal_fails_born_are_not_weighed_up(tmp_path, monkeypatch,
                                                                                 lammps_install, user_oracles):
    """The loop labels the strained cells, reads the oracle's own C11 < C12 from them and keeps their stress
    weight x1 with a warning naming the values; the next iteration, at the same lattice, says so again without
    labelling, while the vacancy check goes on as usual."""
    from lammps_al.core import runtime

    monkeypatch.setenv("LAMMPS_POTENTIALS", str(runtime.potentials_dir()))
    cfg = loop_state(tmp_path / "unstable", 0.002)
    text = cfg.source.read_text().replace('name = "eam"\nworkers = 2\n[oracle.settings]\npotential = "Al_mm.eam.fs"',
                                          'name = "unstable_oracle:UnconvergedStress"\nworkers = 2')
    assert "unstable_oracle" in text
    cfg.source.write_text(text)
    cfg = load_loop_config(cfg.source)
    record = elastic.elastic(cfg, 0, show_progress=False)
    assert record.labelled == {"elastic": 4, "vacancy": 1} and record.stress_factor == 1.0
    assert record.oracle_constants["C11"] < record.oracle_constants["C12"]
    assert "not a stable cubic crystal's (C11 - C12 = -" in record.warning
    assert "WARNING" in elastic.elastic_line(record)
    assert record.vacancy_energy_factor in crystal.FACTORS
    again = elastic.elastic(cfg, 0, show_progress=False)
    assert again.stress_factor == 1.0 and again.warning == record.warning and "elastic" not in again.labelled
    assert len([r for r in LabelledStore(cfg.fit.training.dir).records() if r.group == ELASTIC_GROUP]) == 4
