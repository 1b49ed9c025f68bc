"""Discovery from a minimal start with the real LAMMPS descriptors and a real oracle (Mendelev's EAM): the model
grows with its data, the calibrated force uncertainty predicts the force error on cells it never saw, and the
loop's answers to an exploration that cannot get going."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from ase.build import bulk

from lammps_al.core.errors import FitError, LoopError
from lammps_al.core.records import ExploreRecord, read_marker
from lammps_al.loop.config import iter_dir, load_loop_config
from lammps_al.loop.driver import run_loop
from lammps_al.train.config import load_config
from lammps_al.train.held_out import held_out_errors
from lammps_al.train.label import compute_labels, labelled_copy
from lammps_al.train.oracles import OracleSpec, make_calculator
from lammps_al.train.refit import fit_potential
from lammps_al.train.store import LabelledStore
from lammps_al.train.structures import minimal_set

ROOT = Path(__file__).resolve().parents[2]

FIT = """
[training]
dir = "store"

[descriptor]
elements = ["Al"]
twojmax = 6
rcutfac = 4.5
radelem = [0.5]
wj = [1.0]
rfac0 = 0.99363
rmin0 = 0.0
bzeroflag = 1
switchflag = 1

[fit]
model = "auto"
solver = "bayes"
workers = 1

[groups.default]
energy_weight = 100.0
force_weight = 1.0
stress_weight = 1.0e-4
"""


def labelled(cells, group="default"):
    calc = make_calculator(OracleSpec("eam"))
    return [labelled_copy(a, compute_labels(calc, a), "eam", "test", group) for a in cells]


def disordered(n: int, seed: int) -> list:
    """32-atom fcc cells, strained by up to 3 % and rattled by 0.05-0.3 A: what MD from 300 K to above melting
    shows the model, without running it."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        atoms = bulk("Al", "fcc", a=4.05, cubic=True).repeat(2)
        strain = np.eye(3) + rng.uniform(-0.03, 0.03, (3, 3))
        atoms.set_cell(atoms.cell.array @ (0.5 * (strain + strain.T)), scale_atoms=True)
        atoms.positions += rng.normal(0.0, rng.uniform(0.05, 0.3), atoms.positions.shape)
        out.append(atoms)
    return out


@pytest.fixture(scope="module")
def fit_config(tmp_path_factory):
    path = tmp_path_factory.mktemp("fit") / "fit.toml"
    path.write_text(FIT)
    return load_config(path)


@pytest.fixture(scope="module")
def data(lammps_install):
    return {"start": labelled(minimal_set("Al", seed=0)), "more": labelled(disordered(40, seed=1)),
            "held_out": labelled(disordered(12, seed=2))}


def test_the_model_grows_with_its_data(fit_config, data):
    """The ten minimal cells get a small model; forty disordered 32-atom cells more get a larger one. Each time the
    winner has the largest evidence of the candidates, and the runner-up is recorded."""
    small = fit_potential(fit_config, write=False, show_progress=False, configs=data["start"]).potential
    large = fit_potential(fit_config, write=False, show_progress=False,
                          configs=data["start"] + data["more"]).potential
    sizes = []
    for p in (small, large):
        sel = p.settings["model_selection"]
        scores = {k: v for k, v in sel["scores"].items() if v is not None}
        assert sel["criterion"] == "log evidence" and sel["chosen"] == max(scores, key=scores.get)
        assert sel["chosen"] == f"{p.model}:{p.descriptor.twojmax}"
        assert sel["runner_up"] in scores and scores[sel["runner_up"]] <= scores[sel["chosen"]]
        sizes.append(sel["coefficients"][sel["chosen"]])
    assert sizes[0] < sizes[1], f"the model did not grow: {sizes}"
    assert small.settings["model_selection"]["rows"] < large.settings["model_selection"]["rows"]


def test_the_calibrated_force_uncertainty_predicts_the_error_of_unseen_cells(fit_config, data, tmp_path):
    """After the fit's cross-validated calibration, RMS actual / RMS predicted force error of the atoms of cells
    from another seed lies in 0.7-1.4 for the Bayesian force scorer, in eV/A."""
    import dataclasses

    config = dataclasses.replace(fit_config, fit=dataclasses.replace(fit_config.fit, output_dir=tmp_path))
    outcome = fit_potential(config, show_progress=False, configs=data["start"] + data["more"])
    record = held_out_errors(outcome.paths["potential"], data["held_out"])
    assert record.force_rmse_eV_A > 0
    assert 0.7 <= record.calibration["bayes_force"]["ratio"] <= 1.4, record.calibration


def test_a_model_list_the_start_cannot_support_stops_the_fit_with_what_to_change(fit_config, data):
    import dataclasses

    config = dataclasses.replace(fit_config, fit=dataclasses.replace(fit_config.fit, candidates=("quadratic:10",)))
    with pytest.raises(FitError, match=r"no candidate model can be fitted to \d+ rows .*label more configurations, "
                                       r"or give smaller \[fit\] candidates"):
        fit_potential(config, write=False, show_progress=False, configs=data["start"][:2])


def test_an_empty_model_list_is_refused_when_the_config_is_read(tmp_path):
    from lammps_al.core.errors import ConfigError

    path = tmp_path / "fit.toml"
    path.write_text(FIT.replace('model = "auto"', 'model = "auto"\ncandidates = []'))
    with pytest.raises(ConfigError, match=r"fit.toml: \[fit\] candidates is empty: list at least one model"):
        load_config(path)
    path.write_text(FIT.replace('model = "auto"', 'model = "auto"\ncandidates = ["linear:4", "cubic:6"]'))
    with pytest.raises(ConfigError, match="'cubic:6' is not a candidate model"):
        load_config(path)


def one_run_loop(tmp_path: Path, iterations: int, halt: float | None = None) -> Path:
    """The demo with one short vacancy run at 0.5 Tm (and the halt threshold ``halt`` eV/A)."""
    text = (ROOT / "in_files" / "al_demo.toml").read_text().replace('workdir = "runs/al_demo"', 'workdir = "state"')
    text = re.sub(r"(?m)^iterations = \d+", f"iterations = {iterations}", text)
    head, _, rest = text.partition("[[explore]]")
    tail = rest[rest.index("[oracle]"):]
    extra = f", lal_flag = {halt / 2}, lal_halt = {halt}" if halt is not None else ""
    text = (head + '[[explore]]\nname = "vacancy"\nkind = "vacancy"\ninput = "explore_vacancy.in"\n'
            f'variables = {{ reps = 2, steps = 300, temperature = "0.5*tm"{extra} }}\n\n' + tail)
    path = tmp_path / "loop.toml"
    path.write_text(text)
    return path


def test_a_run_that_halts_continues_from_its_halting_configuration(tmp_path, lammps_install):
    """Iteration 0's run halts (threshold below what the first model predicts at 0.5 Tm, above its very first
    step: the demo's start, linear SNAP 2J=8, predicts 0.08 eV/A there, rising to 0.13 as the vacancy
    moves); iteration 1 starts from the configuration it halted on, written whole with velocities."""
    cfg = load_loop_config(one_run_loop(tmp_path, iterations=2, halt=0.1))
    run_loop(cfg, report=lambda line: None, show_progress=False)
    first = read_marker(iter_dir(cfg.loop, 0), ExploreRecord).runs["vacancy"]
    assert first.status == "halted" and first.halt_step is not None, first
    second = read_marker(iter_dir(cfg.loop, 1), ExploreRecord).runs["vacancy"]
    assert second.continued_from.endswith("start.data") and Path(second.continued_from).is_file()
    data = Path(second.continued_from).read_text()
    assert "Velocities" in data and "\n31 atoms\n" in data                 # 2x2x2 fcc less a vacancy
    log = Path(second.log).read_text()
    assert "read_data" in log and second.continued_from in log


def test_an_exploration_that_halts_at_its_first_step_every_time_stops_with_what_to_change(tmp_path, lammps_install):
    cfg = load_loop_config(one_run_loop(tmp_path, iterations=3, halt=1e-4))
    assert "lal_halt = 0.0001" in (tmp_path / "loop.toml").read_text()
    with pytest.raises(LoopError, match=r"every exploration run halted at its first scoring step in iterations 0 "
                                        r"and 1 \(.*halt threshold 0.0001\).*Raise the halt threshold.*--resume"):
        run_loop(cfg, report=lambda line: None, show_progress=False)
    store = LabelledStore(cfg.fit.training.dir)
    labels = len([r for r in store.records() if r.status == "ok"])
    assert labels >= 10 + 1                 # the start and the first halting configuration, kept
    text = (tmp_path / "loop.toml").read_text().replace(", lal_flag = 5e-05, lal_halt = 0.0001", "")
    (tmp_path / "loop.toml").write_text(text)
    history = run_loop(load_loop_config(tmp_path / "loop.toml"), resume=True, report=lambda line: None,
                       show_progress=False)
    assert len(history) == 3 and read_marker(iter_dir(cfg.loop, 1), ExploreRecord).runs["vacancy"].scoring_steps > 1
    assert len([r for r in store.records() if r.status == "ok"]) >= labels


def test_an_exploration_whose_every_run_crashes_stops_with_the_first_run_s_error(tmp_path, lammps_install):
    """A setting every run shares is wrong (here the halt threshold below the flag threshold): the fix stops each
    run at its include; the loop stops after that iteration's exploration with the fix's message."""
    path = one_run_loop(tmp_path, iterations=2)
    path.write_text(path.read_text().replace('temperature = "0.5*tm"', 'temperature = "0.5*tm", lal_halt = 1e-4'))
    cfg = load_loop_config(path)
    with pytest.raises(LoopError, match=r"every exploration run of iteration 0 crashed; the first, vacancy, ended "
                                        r"with: ERROR \(lammps_al\): the halt threshold \(0.0001\) must be above the flag "
                                        r"threshold \(0.15\) \(its log: .*vacancy/log.lammps\)"):
        run_loop(cfg, report=lambda line: None, show_progress=False)
    assert read_marker(iter_dir(cfg.loop, 0), ExploreRecord) is None     # --resume runs it again
