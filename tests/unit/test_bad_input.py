"""Every user-facing input fed a malformed value: a lammps_al error whose message names where the value came from
(the file, or the LAMMPS variable), the value and what would be right; never a raw traceback, never a silent NaN.

The inventory of inputs and the test for each is tests/README.md; a case here carries the input's name as its id
(``test_fit_config_key[fit.seed]``). The -var settings of the snippets and the fix are checked here through the
functions LAMMPS calls, with a stand-in for the LAMMPS handle (no LAMMPS runs); tests/integration/test_fix.py and
test_uncertainty_lammps.py check that LAMMPS itself stops cleanly on every rank.
"""

from __future__ import annotations

import json
import re
import types
from pathlib import Path

import numpy as np
import pytest
from ase.build import bulk

from lammps_al.core.errors import (ConfigError, DatasetError, InputScriptError, LoopError, PotentialError,
                                   ScorerError, StoreError)

ROOT = Path(__file__).resolve().parents[2]
POTENTIAL = ROOT / "potentials" / "Al_linear.npz"


def raises(error, fn, *fragments: str) -> str:
    """``fn()`` raises ``error`` (exactly that class or a subclass) with every one of ``fragments`` in its message."""
    with pytest.raises(error) as info:
        fn()
    text = str(info.value)
    for fragment in fragments:
        assert fragment in text, f"{fragment!r} not in the message:\n{text}"
    assert "Traceback" not in text
    return text


# ---- the fit's TOML config (lammps_al/train/config.py) ----------------------------------------------------

DESCRIPTOR = "[descriptor]\nelements = ['Al']\ntwojmax = 4\nrcutfac = 4.0\nradelem = [0.5]\nwj = [1.0]\n"

# id: the key; the TOML; what the message must hold besides the file: the key, the value and what is right
FIT_CASES = [
    ("training", "training = 3\n", ["[training] must be a table, got int 3"]),
    ("training.dir", "[training]\ndir = 3\n", ["[training].dir", "must be a path (string)", "got 3"]),
    ("training.sources", "[training]\nsources = 'a.xyz'\n", ["sources must be a list of tables", "'a.xyz'"]),
    ("training.sources.path", "[training]\nsources = [{format = 'extxyz'}]\n", ["[training.sources[0]] lacks path"]),
    ("training.sources.format", "[training]\nsources = [{path = 'a.xyz', format = 'xyz'}]\n",
     ["[training.sources[0]].format", "one of 'auto', 'extxyz', 'fitsnap-json'", "got 'xyz'"]),
    ("training.sources.group", "[training]\nsources = [{path = 'a.xyz', group = 3}]\n",
     ["[training.sources[0]].group", "must be a string", "got 3"]),
    ("training.sources.test", "[training]\nsources = [{path = 'a.xyz', test = 'yes'}]\n",
     ["[training.sources[0]].test", "must be true or false", "got 'yes'"]),
    ("training.sources.unknown", "[training]\nsources = [{path = 'a.xyz', weight = 2}]\n",
     ["unknown key(s) ['weight']", "allowed: ['format', 'group', 'path', 'test']"]),
    ("oracle.name", "[oracle]\nname = 'vasp7'\n", ["unknown oracle 'vasp7'", "'package.module:Class'"]),
    ("oracle.name.class", "[oracle]\nname = 'ase.calculators.lj:Nope'\n",
     ["module 'ase.calculators.lj' has no 'Nope'"]),
    ("oracle.workers", "[oracle]\nworkers = 0\n", ["[oracle]: workers must be >= 1, got 0"]),
    ("oracle.timeout", "[oracle]\ntimeout = -1\n", ["timeout must be > 0 s, got -1.0"]),
    ("oracle.settings", "[oracle]\nsettings = 3\n", ["[oracle].settings must be a table, got 3"]),
    ("oracle.executor", "[oracle]\nexecutor = 'mpi'\n", ["[oracle] executor has moved", "[executor] kind = 'mpi'"]),
    ("oracle.settings.unknown", "[oracle]\nname = 'emt'\n[oracle.settings]\ncutoff = 3\n",
     ["emt oracle: unknown setting(s) ['cutoff']", "allowed: none"]),
    ("oracle.settings.potential", "[oracle]\nname = 'eam'\n[oracle.settings]\npotential = 'nope.eam.fs'\n",
     ["eam oracle", "'nope.eam.fs'"]),
    ("oracle.settings.pair_style", "[oracle]\nname = 'eam'\n[oracle.settings]\npair_style = 'lj/cut'\n",
     ["eam oracle: setting pair_style must be one of ['eam', 'eam/alloy', 'eam/fs']", "got 'lj/cut'"]),
    ("oracle.settings.elements", "[oracle]\nname = 'eam'\n[oracle.settings]\nelements = 'Al'\n",
     ["eam oracle: setting elements must be a list of chemical symbols, got 'Al'"]),
    ("oracle.settings.elements.file", "[oracle]\nname = 'eam'\n[oracle.settings]\npotential = 'Al_mm.eam.fs'\n"
     "elements = ['Al', 'Cu']\n", ["Al_mm.eam.fs has no Cu: it is a potential for ['Al']; set [oracle.settings] "
                                   "elements to elements it has"]),
    ("oracle.settings.elements.descriptor", "[oracle]\nname = 'eam'\n[oracle.settings]\npotential = 'AlCu.eam.alloy'\n"
     "elements = ['Al']\n[descriptor]\nelements = ['Al', 'Cu']\ntwojmax = 4\nrcutfac = 4.5\nradelem = [0.5, 0.5]\n"
     "wj = [1.0, 0.8]\n", ["eam oracle: [oracle.settings] elements ['Al'] lack Cu of the [descriptor] elements"]),
    ("oracle.settings.ecut", "[oracle]\nname = 'gpaw'\n[oracle.settings]\necut = -300\n",
     ["gpaw oracle: setting ecut must be a positive number, got -300"]),
    ("oracle.settings.maxiter", "[oracle]\nname = 'gpaw'\n[oracle.settings]\nmaxiter = 'many'\n",
     ["gpaw oracle: setting maxiter must be a positive integer", "got 'many'"]),
    ("oracle.settings.xc", "[oracle]\nname = 'gpaw'\n[oracle.settings]\nxc = 3\n",
     ["gpaw oracle: setting xc must be a functional's name", "got 3"]),
    ("oracle.settings.spinpol", "[oracle]\nname = 'gpaw'\n[oracle.settings]\nspinpol = 'yes'\n",
     ["gpaw oracle: setting spinpol must be true or false, got 'yes'"]),
    ("executor.kind", "[executor]\nkind = 'slurm'\n", ["kind must be one of ['local', 'mpi', 'parsl']", "'slurm'"]),
    ("executor.parsl.unknown", "[executor.parsl]\nqueue = 'x'\n", ["unknown key(s) ['queue'] in [executor].parsl"]),
    ("executor.parsl.provider", "[executor.parsl]\nprovider = 'pbs'\n",
     ["[executor].parsl.provider must be one of 'local', 'slurm', got 'pbs'"]),
    ("executor.parsl.config_file", "[executor.parsl]\nconfig_file = 'nowhere.py'\n",
     ["[executor.parsl] config_file", "nowhere.py does not exist", "make_config(run_dir)"]),
    ("executor.parsl.partition", "[executor.parsl]\npartition = 3\n", ["parsl.partition must be a string, got 3"]),
    ("executor.parsl.account", "[executor.parsl]\naccount = 3\n", ["parsl.account must be a string, got 3"]),
    ("executor.parsl.walltime", "[executor.parsl]\nwalltime = 'two hours'\n",
     ["walltime must be a Slurm time limit (HH:MM:SS", "got 'two hours'"]),
    ("executor.parsl.nodes_per_block", "[executor.parsl]\nnodes_per_block = 0\n",
     ["nodes_per_block must be >= 1, got 0"]),
    ("executor.parsl.max_blocks", "[executor.parsl]\nmax_blocks = 0\n", ["max_blocks must be >= 1, got 0"]),
    ("executor.parsl.scheduler_options", "[executor.parsl]\nscheduler_options = ['x']\n",
     ["parsl.scheduler_options must be a string, got ['x']"]),
    ("executor.parsl.worker_init", "[executor.parsl]\nworker_init = 1\n",
     ["parsl.worker_init must be a string, got 1"]),
    ("executor.parsl.mpi_launcher", "[executor.parsl]\nmpi_launcher = 'mpirun'\n",
     ["mpi_launcher must be one of 'srun', 'mpiexec', 'aprun', got 'mpirun'"]),
    ("executor.parsl.nodes_per_run", "[executor.parsl]\nnodes_per_run = 0\n", ["nodes_per_run must be >= 1, got 0"]),
    ("executor.parsl.ranks_per_node", "[executor.parsl]\nranks_per_node = -1\n",
     ["ranks_per_node must be >= 0 (0: [loop] nprocs)", "got -1,"]),
    ("executor.parsl.runs_per_block", "[executor.parsl]\nruns_per_block = 0\n", ["runs_per_block must be >= 1, got 0"]),
    ("executor.parsl.cores_per_worker", "[executor.parsl]\ncores_per_worker = 0\n",
     ["cores_per_worker and strategy_period > 0, got 0, 0.0 and 0.5"]),
    ("executor.parsl.address", "[executor.parsl]\naddress = 10\n", ["parsl.address must be a string, got 10"]),
    ("executor.parsl.strategy_period", "[executor.parsl]\nstrategy_period = 0\n",
     ["cores_per_worker and strategy_period > 0, got 0, 1.0 and 0.0"]),
    ("label.inputs", "[label]\ninputs = 'cells.extxyz'\n",
     ["[label].inputs must be a list of paths", "'cells.extxyz'"]),
    ("label.inputs.entry", "[label]\ninputs = [3]\n", ["[label].inputs[0] must be a path (string), got 3"]),
    ("label.group", "[label]\ngroup = '../elsewhere'\n", ["group must be a plain folder name", "got '../elsewhere'"]),
    ("descriptor", "descriptor = 3\n", ["descriptor settings must be a table, got 3"]),
    ("descriptor.unknown", DESCRIPTOR + "twojmx = 6\n", ["unknown descriptor setting(s) ['twojmx']", "allowed:"]),
    ("descriptor.missing", DESCRIPTOR.replace("wj = [1.0]\n", ""), ["descriptor settings lack wj"]),
    ("descriptor.elements", DESCRIPTOR.replace("['Al']", "['Xx']"),
     ["elements must be chemical symbols (e.g. 'Al'), got ['Xx']"]),
    ("descriptor.elements.twice", DESCRIPTOR.replace("['Al']", "['Al', 'Al']").replace("[0.5]", "[0.5, 0.5]")
     .replace("[1.0]", "[1.0, 1.0]"), ["name an element twice: ['Al', 'Al']"]),
    ("descriptor.twojmax", DESCRIPTOR.replace("twojmax = 4", "twojmax = -2"),
     ["twojmax must be a non-negative integer, got -2"]),
    ("descriptor.rcutfac", DESCRIPTOR.replace("rcutfac = 4.0", "rcutfac = inf"),
     ["rcutfac must be > 0 A and finite, got inf"]),
    ("descriptor.radelem", DESCRIPTOR.replace("radelem = [0.5]", "radelem = [inf]"),
     ["radelem must be finite positive numbers, got [inf]"]),
    ("descriptor.radelem.count", DESCRIPTOR.replace("radelem = [0.5]", "radelem = [0.5, 0.5]"),
     ["1 element(s) ['Al'] need 1 radelem and 1 wj values, got [0.5, 0.5] and [1.0]"]),
    ("descriptor.wj", DESCRIPTOR.replace("wj = [1.0]", "wj = [0]"), ["wj must be finite positive numbers, got [0]"]),
    ("descriptor.rfac0", DESCRIPTOR + "rfac0 = 2\n", ["rfac0 must be in (0, 1], got 2.0"]),
    ("descriptor.rmin0", DESCRIPTOR + "rmin0 = -1\n", ["rmin0 must be a finite distance >= 0 A, got -1.0"]),
    ("descriptor.bzeroflag", DESCRIPTOR + "bzeroflag = 2\n", ["bzeroflag must be 0 or 1, got 2"]),
    ("descriptor.switchflag", DESCRIPTOR + "switchflag = true\n", ["switchflag must be 0 or 1, got True"]),
    ("descriptor.quadraticflag", DESCRIPTOR + "quadraticflag = 5\n", ["quadraticflag must be 0 or 1, got 5"]),
    ("descriptor.chemflag", DESCRIPTOR + "chemflag = 2\n", ["chemflag must be 0 or 1, got 2"]),
    ("reference.unknown", "[reference]\npair = 'zbl'\n", ["[reference] takes pair_style (a string) and pair_coeff",
                                                          "{'pair': 'zbl'}"]),
    ("reference.pair_style", "[reference]\npair_style = 3\n", ["pair_style must be a string", "pair_style = 3"]),
    ("reference.pair_coeff", "[reference]\npair_style = 'zbl 1 2'\npair_coeff = [3]\n",
     ["pair_coeff a list of strings", "pair_coeff = [3]"]),
    ("fit.model", "[fit]\nmodel = 'cubic'\n", ["unknown model kind 'cubic': choose one of ['linear', 'quadratic'", "or give 'package.module:Class'"]),
    ("fit.candidates", "[fit]\nmodel = 'auto'\ncandidates = ['cubic:6']\n",
     ["'cubic:6' is not a candidate model", "KIND:TWOJMAX"]),
    ("fit.candidates.model", "[fit]\ncandidates = ['linear:4']\n",
     ["[fit] candidates are for model = 'auto', but model = 'linear'"]),
    ("fit.candidates.empty", "[fit]\nmodel = 'auto'\ncandidates = []\n",
     ["[fit] candidates is empty: list at least one model"]),
    ("fit.solver", "[fit]\nsolver = 'lsq'\n", ["[fit].solver must be one of 'bayes', 'svd', 'ridge', got 'lsq'"]),
    ("fit.selection", "[fit]\nmodel = 'auto'\nselection = 'aic'\n", ["[fit].selection must be one of 'evidence', 'cross-validation', got 'aic'"]),
    ("fit.alpha", "[fit]\nalpha = -1\n", ["alpha must be > 0 (or left out to maximise the evidence), got -1.0"]),
    ("fit.beta", "[fit]\nbeta = 'big'\n", ["[fit].beta must be a number (or left out), got 'big'"]),
    ("fit.ridge_alpha", "[fit]\nridge_alpha = -1\n", ["ridge_alpha must be >= 0 and rcond > 0, got -1.0 and 1e-12"]),
    ("fit.rcond", "[fit]\nrcond = 0\n", ["ridge_alpha must be >= 0 and rcond > 0, got 1e-06 and 0.0"]),
    ("fit.test_fraction", "[fit]\ntest_fraction = 1.0\n", ["test_fraction must be in [0, 1), got 1.0"]),
    ("fit.seed", "[fit]\nseed = -1\n", ["seed must be >= 0", "got -1"]),
    ("fit.energy", "[fit]\nenergy = 1\n", ["[fit].energy must be true or false, got 1"]),
    ("fit.force", "[fit]\nforce = 'yes'\n", ["[fit].force must be true or false, got 'yes'"]),
    ("fit.stress", "[fit]\nenergy = false\nforce = false\nstress = false\n",
     ["energy, force and stress are all false: nothing to fit; set at least one to true"]),
    ("fit.workers", "[fit]\nworkers = 0\n", ["workers must be >= 1, got 0"]),
    ("fit.output_dir", "[fit]\noutput_dir = 3\n", ["[fit].output_dir must be a path (string), got 3"]),
    ("fit.name", "[fit]\nname = 'pots/Al'\n", ["name must be a file stem without '/', got 'pots/Al'"]),
    ("fit.calibrate", "[fit]\ncalibrate = 'no'\n", ["[fit].calibrate must be true or false, got 'no'"]),
    ("fit.outlier_force_scale", "[fit]\noutlier_force_scale = 0.5\n",
     ["outlier_force_scale must be 0 (off) or a number >= 1", "got 0.5"]),
    ("fit.unknown", "[fit]\nsolvr = 'svd'\n", ["unknown key(s) ['solvr'] in [fit]; allowed:", "'solver'"]),
    ("groups", "groups = 3\n", ["[groups] must be a table of [groups.NAME] tables"]),
    ("groups.NAME", "[groups]\nbulk = 3\n", ["[groups.bulk] must be a table, got int"]),
    ("groups.energy_weight", "[groups.bulk]\nenergy_weight = -1\n",
     ["energy_weight must be >= 0 and finite, got -1.0"]),
    ("groups.element_force_weights", "[groups.bulk]\nelement_force_weights = { Xx = 2.0 }\n",
     ["element_force_weights: 'Xx' is not a chemical symbol"]),
    ("groups.element_force_weights.value", "[groups.bulk]\nelement_force_weights = { Cu = -1.0 }\n",
     ["element_force_weights: the factor of Cu must be a number >= 0, got -1.0"]),
    ("groups.energy_scaling", "[groups.bulk]\nenergy_scaling = 'total'\n",
     ["[groups.bulk].energy_scaling must be one of 'per-atom', 'sqrt-natoms', got 'total'"]),
    ("groups.force_weight", "[groups.bulk]\nforce_weight = inf\n", ["force_weight must be >= 0 and finite, got inf"]),
    ("groups.stress_weight", "[groups.bulk]\nstress_weight = 'a'\n",
     ["[groups.bulk].stress_weight must be a number, got 'a'"]),
    ("groups.test_fraction", "[groups.bulk]\ntest_fraction = 1.5\n", ["test_fraction must be in [0, 1), got 1.5"]),
    ("groups.unknown", "[groups.bulk]\nweight = 1\n",
     ["unknown key(s) ['weight'] in [groups.bulk]", "'energy_weight'"]),
    ("sections", "[fitting]\nmodel = 'linear'\n", ["unknown section(s) or top-level key(s) ['fitting']", "allowed:"]),
]


@pytest.mark.parametrize("text, fragments", [pytest.param(t, f, id=i) for i, t, f in FIT_CASES])
def test_fit_config_key(tmp_path, text, fragments):
    from lammps_al.train.config import load_config

    path = tmp_path / "fit.toml"
    path.write_text(text)
    raises(ConfigError, lambda: load_config(path), str(path), *fragments)


@pytest.mark.parametrize("text, fragments", [
    pytest.param("", ["config file", "does not exist"], id="missing"),
    pytest.param("[fit\nmodel = 1", ["is not valid TOML"], id="not-toml"),
])
def test_the_config_file_itself(tmp_path, text, fragments):
    from lammps_al.train.config import load_config

    path = tmp_path / "fit.toml"
    if text:
        path.write_text(text)
    raises(ConfigError, lambda: load_config(path), str(path), *fragments)


def test_every_key_of_the_fit_config_has_a_case():
    """A new key in a section's dataclass needs its case in FIT_CASES (and its line in tests/README.md)."""
    import dataclasses

    from lammps_al.core.descriptor import SNAPSettings
    from lammps_al.executors import ExecutorConfig, ParslSettings
    from lammps_al.train.config import (SECTIONS, DataSource, FitConfig, GroupWeights, LabelConfig, OracleConfig,
                                        TrainingConfig)

    ids = {case[0] for case in FIT_CASES}
    sections = {"training": TrainingConfig, "training.sources": DataSource, "oracle": OracleConfig,
                "label": LabelConfig, "descriptor": SNAPSettings, "fit": FitConfig, "groups": GroupWeights,
                "executor": ExecutorConfig, "executor.parsl": ParslSettings}
    missing = [f"{name}.{f.name}" for name, cls in sections.items() for f in dataclasses.fields(cls)
               if f"{name}.{f.name}" not in ids and f.name != "parsl" and f.name not in ("sources",)]
    missing += [s for s in SECTIONS if s not in {i.split(".")[0] for i in ids}]
    assert not missing, f"no malformed-value case for {missing}"


# ---- the loop's TOML config (lammps_al/loop/config.py) ----------------------------------------------------

LOOP = """\
[loop]
workdir = "state"
{loop}

[[explore]]
name = "melt"
input = "explore_melt.in"
{explore}

[oracle]
name = "emt"

{descriptor}
{extra}
"""

LOOP_CASES = [
    ("loop.workdir", {"loop": "", "workdir": "3"}, ["[loop].workdir must be a path (string), got 3"]),
    ("loop.iterations", {"loop": "iterations = 0"}, ["iterations must be >= 1, got 0"]),
    ("loop.nprocs", {"loop": "nprocs = '2'"}, ["[loop].nprocs must be an integer, got '2'"]),
    ("loop.concurrent_runs", {"loop": "concurrent_runs = -1"},
     ["concurrent_runs must be >= 0 (0: as many as the cores allow), got -1"]),
    ("loop.max_select", {"loop": "max_select = 0"}, ["max_select must be >= 1, got 0"]),
    ("loop.sigma_target", {"loop": "sigma_target = inf"}, ["sigma_target must be > 0 and finite, got inf"]),
    ("loop.converged_iterations", {"loop": "converged_iterations = 0"}, ["converged_iterations must be >= 1, got 0"]),
    ("loop.flag_rate", {"loop": "flag_rate = 1.5"}, ["flag_rate must be in [0, 1], got 1.5"]),
    ("loop.seed", {"loop": "seed = -3"}, ["seed must be >= 0", "got -3"]),
    ("loop.model_snippet", {"loop": "model_snippet = 'pace'"},
     ["[loop].model_snippet must be one of 'mliappy', 'snap', got 'pace'"]),
    ("loop.potential_name", {"loop": "potential_name = 'a/b'"}, ["potential_name must be a file stem, got 'a/b'"]),
    ("loop.start_size", {"loop": "start_size = 'tiny'"},
     ["[loop].start_size must be one of 'minimal', 'small', 'standard', got 'tiny'"]),
    ("loop.lammps_variables", {"loop": "lammps_variables = 3"}, ["[loop].lammps_variables must be a table, got 3"]),
    ("loop.lammps_variables.name", {"loop": "lammps_variables = { lal_flagg = 0.1 }"},
     ["lammps_variables: lal_flagg is not a variable of lammps_al's snippets (did you mean lal_flag?)"]),
    ("loop.lammps_variables.value", {"loop": "lammps_variables = { lal_flag = [0.1, 0.2] }"},
     ["lammps_variables: lal_flag must be a number or a string", "got [0.1, 0.2]"]),
    ("loop.lammps_variables.expression", {"loop": "lammps_variables = { lal_flag = '3*tmm' }"},
     ["lammps_variables: lal_flag = '3*tmm' is not an arithmetic expression in"]),
    ("loop.lammps_variables.set_by_loop", {"loop": "lammps_variables = { lal_fix_outdir = 'mine' }"},
     ["lammps_variables: lal_fix_outdir is set by the loop for every exploration run", "remove it"]),
    ("loop.lammps_variables.syntax", {"loop": "lammps_variables = { 'lal flag' = 1 }"},
     ["'lal flag' is not a LAMMPS variable name"]),
    ("loop.selection", {"loop": "selection = 'greedy'"},
     ["[loop].selection must be one of 'uncertainty', 'random', got 'greedy'"]),
    ("loop.run_timeout", {"loop": "run_timeout = 0"}, ["run_timeout must be > 0 s, got 0.0"]),
    ("loop.candidates", {"loop": "candidates = 'everything'"},
     ["[loop].candidates must be one of 'flagged', 'trajectory', got 'everything'"]),
    ("loop.cost_exponent", {"loop": "cost_exponent = -1"},
     ["cost_exponent must be in [0, 6] (a label's oracle cost ~ natoms^cost_exponent: 3 for plane-wave DFT",
      "got -1"]),
    ("loop.force_target", {"loop": "force_target = nan"}, ["force_target must be > 0 eV/A (or 0: not used), got nan"]),
    ("loop.trajectory_statistic", {"loop": "trajectory_statistic = 'mean'"},
     ["[loop].trajectory_statistic must be one of 'max', 'rms', got 'mean'"]),
    ("loop.held_out_snapshots", {"loop": "held_out_snapshots = -1"},
     ["held_out_snapshots must be >= 0 (0: no held-out set), got -1"]),
    ("loop.held_out_budget", {"loop": "held_out_budget = 0"}, ["held_out_budget must be > 0 s, got 0.0"]),
    ("loop.elastic_tolerance", {"loop": "elastic_tolerance = 5"},
     ["elastic_tolerance must be a fraction in [0, 1) (0.05: C11, C12, C44 known within 5 %", "got 5.0"]),
    ("loop.unknown", {"loop": "speed = 'fast'"}, ["unknown key(s) ['speed'] in [loop]; allowed:"]),
    ("explore.name", {"explore": "", "name": "../melt"}, ["name must be a plain file name, got '../melt'"]),
    ("explore.name.twice", {"explore": '[[explore]]\nname = "melt"\ninput = "explore_npt.in"\n'},
     ["[[explore]] names must differ", "['melt', 'melt']"]),
    ("explore.input", {"explore": "", "input": "nowhere.in"},
     ["[[explore]] melt: input nowhere.in not found (looked in"]),
    ("explore.variables", {"explore": "variables = 4"}, ["[explore][0].variables must be a table, got 4"]),
    ("explore.variables.name", {"explore": "variables = { lal_halt_factr = 5 }"},
     ["variables: lal_halt_factr is not a variable of lammps_al's snippets (did you mean lal_halt_factor?)"]),
    ("explore.variables.value", {"explore": "variables = { temperature = true }"},
     ["variables: temperature must be a number or a string", "got True"]),
    ("explore.variables.expression", {"explore": "variables = { temperature = '0.5*tmm' }"},
     ["temperature = '0.5*tmm' is not an arithmetic expression in", "tm_guess"]),
    ("explore.variables.set_by_loop", {"explore": "variables = { seed = 5 }"},
     ["variables: seed is set by the loop for every exploration run (from [loop] seed)"]),
    ("explore.kind", {"explore": "kind = 3"}, ["[explore][0].kind must be a string, got 3"]),
    ("explore.unknown", {"explore": "temperature = 3"}, ["unknown key(s) ['temperature'] in [explore][0]"]),
    ("explore.none", {"explore": "", "no_runs": True}, ["no [[explore]] runs; add at least one"]),
    ("training.dir", {"extra": '[training]\ndir = "elsewhere"\n'}, ["[training] dir is set by the loop"]),
    ("fit.name", {"extra": '[fit]\nname = "X"\n'}, ["[fit] name is set by [loop] potential_name ('Al')"]),
    ("descriptor", {"descriptor": ""}, ["needs a [descriptor] section for the fits"]),
    ("fit.sections", {"extra": "[fit]\nsolver = 'lsq'\n"},
     ["[fit].solver must be one of 'bayes', 'svd', 'ridge', got 'lsq'"]),
]


def loop_config(tmp_path: Path, loop: str = "", explore: str = "", extra: str = "", descriptor: str = DESCRIPTOR,
                workdir: str | None = None, name: str | None = None, input: str | None = None,
                no_runs: bool = False) -> Path:
    text = LOOP.format(loop=loop, explore=explore, extra=extra, descriptor=descriptor)
    if workdir is not None:
        text = text.replace('workdir = "state"', f"workdir = {workdir}")
    if name is not None:
        text = text.replace('name = "melt"', f'name = "{name}"')
    if input is not None:
        text = text.replace('input = "explore_melt.in"', f'input = "{input}"')
    if no_runs:
        text = re.sub(r'\[\[explore\]\]\nname = "melt"\ninput = "explore_melt.in"\n', "", text)
    path = tmp_path / "loop.toml"
    path.write_text(text)
    return path


@pytest.mark.parametrize("section", ["fit", "training"])
def test_a_loop_config_whose_fit_section_is_not_a_table_is_named(tmp_path, section):
    """`fit = 3` at the top of a loop config: the message names the section and the value (the loop reads
    [fit] and [training] itself before the fit's sections load), not an internal error."""
    from lammps_al.loop.config import load_loop_config

    path = loop_config(tmp_path)
    path.write_text(f"{section} = 3\n" + path.read_text())
    raises(ConfigError, lambda: load_loop_config(path), str(path), f"[{section}] must be a table, got int 3")


@pytest.mark.parametrize("parts, fragments", [pytest.param(p, f, id=i) for i, p, f in LOOP_CASES])
def test_loop_config_key(tmp_path, parts, fragments):
    from lammps_al.loop.config import load_loop_config

    path = loop_config(tmp_path, **parts)
    raises(ConfigError, lambda: load_loop_config(path), str(path), *fragments)


def test_every_key_of_the_loop_config_has_a_case():
    import dataclasses

    from lammps_al.loop.config import ExploreRun, LoopSettings

    ids = {case[0] for case in LOOP_CASES}
    missing = [f"loop.{f.name}" for f in dataclasses.fields(LoopSettings) if f"loop.{f.name}" not in ids
               and f.name != "explore"]                     # [[explore]] tables, not a [loop] key
    missing += [f"explore.{f.name}" for f in dataclasses.fields(ExploreRun) if f"explore.{f.name}" not in ids]
    assert not missing, f"no malformed-value case for {missing}"


def test_the_loop_knows_every_variable_of_the_shipped_snippets():
    """The names [loop] lammps_variables and [[explore]] variables may use are those the snippets define."""
    from lammps_al.loop.config import LAMMPS_AL_VARIABLES

    defined = set()
    for snippet in [ROOT / "in_files" / "lammps_al_fix.lammps", *sorted((ROOT / "potentials").glob("*.lammps"))]:
        defined |= set(re.findall(r"(?m)^variable (lal_\w+) index", snippet.read_text()))
    defined |= {"lal_in_files", "lal_potentials"}               # lammps_al.inrun.paths
    assert defined == set(LAMMPS_AL_VARIABLES)


def test_the_shipped_configs_load():
    """The malformed cases above are refused; what lammps_al ships is not."""
    from lammps_al.loop.config import load_loop_config
    from lammps_al.train.config import load_config

    for name in ("al_demo", "cu_demo", "al_demo_slurm"):
        load_loop_config(ROOT / "in_files" / f"{name}.toml")
    assert load_config(ROOT / "potentials" / "al_start.toml").fit.name == "Al_quadratic"


# ---- the -var settings of the snippets and the fix (lammps_al/inrun) -------------------------------------

class FakeLammps:
    """What the snippets' Python functions ask of a LAMMPS handle: variables, the box's atom types, commands."""

    def __init__(self, ntypes: int = 1, **variables):
        self.variables = {k: str(v) for k, v in variables.items()}
        self.ntypes = ntypes
        self.commands: list[str] = []

    def extract_global(self, name):
        return {"ntypes": self.ntypes}[name]

    def command(self, line: str) -> None:
        self.commands.append(line)


@pytest.fixture
def fake_lammps(monkeypatch):
    """Python-side setup functions called with a FakeLammps instead of LAMMPS's pointer."""
    from lammps_al.inrun import adapter, callbacks, paths

    monkeypatch.setattr(callbacks, "_extract", lambda lmp, name: lmp.variables.get(name))
    for module in (adapter, paths):
        monkeypatch.setattr(module, "lammps_handle", lambda ptr: ptr)
    return FakeLammps


def fix_defaults() -> dict:
    """Every variable of the shipped fix snippet at its default, and the potential snippet's lal_score_every."""
    text = (ROOT / "in_files" / "lammps_al_fix.lammps").read_text()
    return {**dict(re.findall(r"(?m)^variable (lal_\w+) index (\S+)", text)), "lal_score_every": "10",
            "lal_fix_outdir": "flagged"}


def scoring(scorer_name: str = "bayes", extra: dict | None = None):
    from lammps_al.core.potential import load

    potential = load(POTENTIAL)
    if extra is not None:
        potential.extra = extra
    return types.SimpleNamespace(potential=potential, scorer_name=scorer_name, every=10)


FIX_CASES = [
    ("lal_score_every", {"lal_score_every": "ten"}, ["lal_score_every = 'ten' is not an integer"]),
    ("lal_score_every.zero", {"lal_score_every": "0"}, ["lal_score_every must be a positive number of steps, got 0"]),
    ("lal_flag", {"lal_flag": "high"}, ["lal_flag = 'high' is not a number", "-var lal_flag"]),
    ("lal_flag.negative", {"lal_flag": "-1", "lal_halt": "1"}, ["thresholds must be > 0: flag = -1.0"]),
    ("lal_halt", {"lal_flag": "0.5", "lal_halt": "0.1"},
     ["the halt threshold (0.1) must be above the flag threshold (0.5)"]),
    ("lal_halt.nan", {"lal_halt": "nan"}, ["lal_halt = 'nan' is not a number"]),
    ("lal_flag_factor", {"lal_flag_factor": "x2"}, ["lal_flag_factor = 'x2' is not a number"]),
    ("lal_halt_factor", {"lal_halt_factor": "nan"}, ["lal_halt_factor = 'nan' is not a number"]),
    ("lal_max_writes", {"lal_max_writes": "0"}, ["lal_max_writes and lal_max_envs must be >= 1", "got 0, 4, 100"]),
    ("lal_max_writes.fraction", {"lal_max_writes": "2.5"}, ["lal_max_writes = '2.5' is not an integer"]),
    ("lal_min_write_interval", {"lal_min_write_interval": "-1"}, ["lal_min_write_interval >= 0, got 20, 4, -1"]),
    ("lal_dedup", {"lal_dedup": "-0.1"}, ["lal_dedup, lal_env_buffer and lal_local_above must be >= 0, got -0.1"]),
    ("lal_dedup.nan", {"lal_dedup": "nan"}, ["lal_dedup = 'nan' is not a number"]),
    ("lal_local_above", {"lal_local_above": "-5"}, ["lal_local_above must be >= 0, got 0.02, 2.0, -5"]),
    ("lal_env_buffer", {"lal_env_buffer": "wide"}, ["lal_env_buffer = 'wide' is not a number"]),
    ("lal_max_envs", {"lal_max_envs": "0"}, ["lal_max_envs must be >= 1", "got 20, 0, 100"]),
    ("lal_run_id", {"lal_run_id": "a/b"}, ["lal_run_id must be a file name without '/', got 'a/b'"]),
    ("lal_halt_action", {"lal_halt_action": "continue"},
     ["lal_halt_action must be one of ['hard', 'soft']", "got 'continue'"]),
    ("lal_fault_rank", {"lal_fault_rank": "one"}, ["lal_fault_rank = 'one' is not an integer"]),
    ("lal_cna_cutoff", {"lal_cna_cutoff": "-1"},
     ["lal_cna_cutoff must be >= 0 A (0: do not classify atoms)", "got -1"]),
    ("lal_cna_cutoff.text", {"lal_cna_cutoff": "auto"}, ["lal_cna_cutoff = 'auto' is not a number"]),
    ("lal_bulk_coordination", {"lal_bulk_coordination": "0"}, ["lal_bulk_coordination > 0, got 0 and 0.0"]),
]


@pytest.mark.parametrize("variables, fragments", [pytest.param(v, f, id=i) for i, v, f in FIX_CASES])
def test_fix_variable(fake_lammps, variables, fragments):
    from lammps_al.inrun.fix import settings_from_lammps

    lmp = fake_lammps(**{**fix_defaults(), **variables})
    raises(InputScriptError, lambda: settings_from_lammps(lmp, scoring()), *fragments)


def test_the_fix_snippet_s_defaults_are_accepted(fake_lammps):
    from lammps_al.inrun.fix import settings_from_lammps

    settings = settings_from_lammps(fake_lammps(**fix_defaults()), scoring())
    assert settings.every == 10 and 0 < settings.flag < settings.halt


def test_fix_without_a_scorer_or_calibration(fake_lammps):
    from lammps_al.inrun.fix import settings_from_lammps

    lmp = fake_lammps(**fix_defaults())
    raises(InputScriptError, lambda: settings_from_lammps(lmp, scoring("none")),
           "lal_scorer is 'none': set lal_scorer to bayes, committee or grade")
    raises(InputScriptError, lambda: settings_from_lammps(lmp, scoring(extra={})),
           "lal_flag/lal_halt 'auto' calibrate on the training set's bayes scores", "-var lal_flag X -var lal_halt Y")
    bad = {"training_scores": {"bayes": {"count": 3, "mean": 1.0, "p50": 1.0, "p90": 1.0, "p95": 1.0, "p99": 1.0,
                                         "p99.9": float("nan"), "max": 1.0}}}
    raises(PotentialError, lambda: settings_from_lammps(lmp, scoring(extra=bad)),
           "training_scores.bayes p99.9 must be a finite number >= 0, got nan")
    raises(PotentialError, lambda: settings_from_lammps(lmp, scoring(extra={"training_scores": {"bayes": [1]}})),
           "training_scores.bayes must be a table, got [1]")


def test_fix_snippet_without_a_potential_or_with_another_lal_score_every(fake_lammps, monkeypatch):
    """setup(), the fix snippet's first Python line: it needs a potential snippet before it, scoring as often."""
    from lammps_al.core import logs
    from lammps_al.inrun import adapter, fix

    monkeypatch.setattr(logs, "setup_logging", lambda *a, **k: None)
    monkeypatch.setattr(fix, "lammps_handle", lambda ptr: ptr)
    lmp = fake_lammps(**fix_defaults())
    lmp.get_mpi_comm = lambda: types.SimpleNamespace(bcast=lambda value, root=0: value)
    monkeypatch.setattr(adapter, "active_scoring", lambda: None)
    raises(InputScriptError, lambda: fix.setup(lmp), "no lammps_al potential with per-atom scoring is loaded",
           "include a potential snippet")
    assert stopped(lmp)
    other = scoring()
    other.every = 5
    monkeypatch.setattr(adapter, "active_scoring", lambda: other)
    lmp = fake_lammps(**fix_defaults())
    lmp.get_mpi_comm = lambda: types.SimpleNamespace(bcast=lambda value, root=0: value)
    raises(InputScriptError, lambda: fix.setup(lmp), "the fix runs every lal_score_every = 10 steps but the "
           "potential scores every 5", "set lal_score_every once")
    assert stopped(lmp)


def test_fix_output_folder_that_cannot_be_written(tmp_path):
    from lammps_al.inrun.fix import _check_outdir

    (tmp_path / "a_file").write_text("x")
    raises(InputScriptError, lambda: _check_outdir(tmp_path / "a_file" / "flagged"),
           f"output folder {tmp_path / 'a_file' / 'flagged'} is not writable", "-var lal_fix_outdir DIR")


def stopped(lmp: FakeLammps) -> bool:
    """fail_setup ended LAMMPS with 'quit 2' (every rank does the same)."""
    return "quit 2" in lmp.commands


def test_lal_potdir_that_does_not_hold_the_potential(fake_lammps, tmp_path):
    from lammps_al.inrun.adapter import locate

    lmp = fake_lammps()
    raises(InputScriptError, lambda: locate(lmp, "Al_linear", str(tmp_path), "potentials", "0" * 16),
           f"potential Al_linear: {tmp_path / 'Al_linear.npz'} does not exist", f"lal_potdir = {str(tmp_path)!r}",
           "-var lal_potdir DIR")
    assert stopped(lmp)


@pytest.mark.parametrize("elements, ntypes, fragments", [
    ("Cu", 1, ["lal_elements names element 'Cu', but", "is a potential for ['Al']", '-var lal_elements "Al"']),
    ("Al Al", 1, ["the box has 1 atom type(s) but lal_elements = 'Al Al' names 2", '-var lal_elements "Al"']),
    ("Al", 2, ["the box has 2 atom type(s) but lal_elements = 'Al' names 1", '-var lal_elements "Al Al"']),
])
def test_lal_elements_that_do_not_fit_the_potential_or_the_box(fake_lammps, elements, ntypes, fragments):
    from lammps_al.inrun.adapter import check_potential

    lmp = fake_lammps(ntypes=ntypes)
    raises(InputScriptError, lambda: check_potential(lmp, str(POTENTIAL), "none", elements), *fragments)
    assert stopped(lmp)


def test_lal_elements_of_the_native_snippet(fake_lammps):
    from lammps_al.core.potential import load
    from lammps_al.inrun.adapter import element_map

    raises(InputScriptError, lambda: element_map(load(POTENTIAL), "Al Cu"),
           "lal_elements names element 'Cu' for atom type 2, but the potential is for ['Al']")


@pytest.mark.parametrize("scorer, every, fragments", [
    ("sharp", 10, ["unknown scorer 'sharp': choose one of", "'package.module:Class'"]),
    ("ase:Atoms", 10, ["scorer 'ase:Atoms' is not a scorer class", "subclass of lammps_al.models.registry.Scorer"]),
    ("no.such:Scorer", 10, ["scorer 'no.such:Scorer': cannot import module 'no.such'"]),
    ("bayes", "ten", ["lal_score_every must be a positive number of steps, got 'ten'"]),
    ("bayes", -10, ["lal_score_every must be a positive number of steps, got -10"]),
], ids=["lal_scorer", "lal_scorer.not_a_scorer", "lal_scorer.import", "lal_score_every", "lal_score_every.negative"])
def test_lal_scorer_and_lal_score_every_of_the_potential_snippets(fake_lammps, scorer, every, fragments):
    """What load_potential (mliappy snippet) and setup_native (snap snippet) check first (_scoring_setup): the
    message goes to every rank's stderr and LAMMPS quits."""
    from lammps_al.inrun.adapter import setup_native

    lmp = fake_lammps()
    raises(InputScriptError, lambda: setup_native(lmp, str(POTENTIAL), scorer, every), *fragments)
    assert stopped(lmp)


def test_a_scorer_class_without_the_protocol():
    from lammps_al.core.potential import load
    from lammps_al.models.registry import make_scorer, model_for

    potential = load(POTENTIAL)
    raises(ScorerError, lambda: make_scorer(potential, model_for(potential), "ase:Atoms"),
           "scorer 'ase:Atoms' is not a scorer class (it lacks available() and from_potential())")


def test_the_potential_variable_naming_no_snippet(fake_lammps, tmp_path):
    from lammps_al.inrun.paths import define_paths

    lmp = fake_lammps(potential=tmp_path / "Al.mliappy.lammps")
    raises(InputScriptError, lambda: define_paths(lmp, "none"),
           f"potential snippet {tmp_path / 'Al.mliappy.lammps'} does not exist", "-var potential FILE")
    assert stopped(lmp)


# ---- files the package reads ------------------------------------------------------------------------------

def potential_file(tmp_path: Path, name: str, change=None, arrays=None) -> Path:
    """The shipped linear potential with its metadata changed by ``change(meta)``."""
    with np.load(POTENTIAL, allow_pickle=False) as data:
        stored = {k: np.array(data[k]) for k in data.files}
    meta = json.loads(str(stored.pop("metadata")))
    if change:
        change(meta)
    path = tmp_path / name
    np.savez(path, metadata=np.array(json.dumps(meta)), **(stored if arrays is None else arrays))
    return path


@pytest.mark.parametrize("change, fragments", [
    (lambda m: m.update(format_version="2"), ["metadata format_version must be an integer, got '2'", "lammps-al fit"]),
    (lambda m: m.update(format_version=9), ["format version 9 is newer than this lammps_al reads (2); upgrade"]),
    (lambda m: m.update(elements=["Cu"]), ["potential elements ['Cu'] differ from its descriptor settings' ['Al']"]),
    (lambda m: m.update(model=""), ["the model kind must be a non-empty name, got ''"]),
    (lambda m: m.pop("descriptor"), ["metadata lacks or mangles 'descriptor'"]),
    (lambda m: m["descriptor"].update(rcutfac=-1.0), ["rcutfac must be > 0 A and finite, got -1.0"]),
    (lambda m: m.update(reference=3), ["reference potential must be a table of pair_style", "got 3"]),
    (lambda m: m.update(reference={"pair_style": "zbl 1 2", "pair_coeff": "* * 13 13"}),
     ["pair_coeff (a list of strings)", "'* * 13 13'"]),
    (lambda m: m.update(extra=[1]), ["metadata extra must be a table, got [1]"]),
    (lambda m: m.update(noise="big"), ["metadata noise must be a table, got 'big'"]),
    (lambda m: m.update(model_class=3), ["metadata model_class must be a string, got 3"]),
], ids=["format_version", "format_version.newer", "elements", "model", "descriptor", "descriptor.rcutfac",
        "reference", "reference.pair_coeff", "extra", "noise", "model_class"])
def test_potential_file_metadata(tmp_path, change, fragments):
    from lammps_al.core.potential import load

    path = potential_file(tmp_path, "bad.npz", change)
    raises(PotentialError, lambda: load(path), str(path), *fragments)


def test_potential_file_arrays_and_model_class(tmp_path):
    from lammps_al.core.potential import load
    from lammps_al.models.registry import model_for

    path = potential_file(tmp_path, "text.npz", arrays={"model.coefficients": np.array(["a", "b"])})
    raises(PotentialError, lambda: load(path), str(path), "could not convert string to float")
    path = potential_file(tmp_path, "inf.npz", arrays={"model.coefficients": np.full((1, 28), np.inf)})
    raises(PotentialError, lambda: load(path), str(path), "array 'model.coefficients' holds 28 NaN or infinite",
           "refit")
    path = potential_file(tmp_path, "plugin.npz", lambda m: m.update(model="toy", model_class="ase:Atoms"))
    raises(PotentialError, lambda: model_for(load(path)), "model 'ase:Atoms' is not a model class",
           "subclass of lammps_al.models.registry.Model")
    path = potential_file(tmp_path, "short.npz", arrays={"model.coefficients": np.zeros((1, 7))})
    raises(PotentialError, lambda: model_for(load(path)),
           "linear SNAP coefficients have shape (1, 7), expected (1, 31)")


DESCRIPTOR_FILE = (ROOT / "potentials" / "Al_linear.mliap.descriptor").read_text()


@pytest.mark.parametrize("old, new, fragments", [
    ("elems Al", "elems Cu", ["has elems ['Cu'], but the potential was fitted with elems ['Al']"]),
    ("nelems 1", "nelems 2", ["has nelems ['2'], but the potential was fitted with nelems ['1']"]),
    ("twojmax 6", "twojmax 8", ["has twojmax ['8'], but the potential was fitted with twojmax ['6']"]),
    ("rcutfac 5", "rcutfac 4.5", ["has rcutfac ['4.5'], but the potential was fitted with rcutfac [5.0]"]),
    ("rcutfac 5", "rcutfac five", ["has rcutfac ['five'], but the potential was fitted with rcutfac [5.0]"]),
    ("radelems 0.5", "radelems 0.6", ["has radelems ['0.6'], but the potential was fitted with radelems [0.5]"]),
    ("welems 1", "welems 0.9", ["has welems ['0.9'], but the potential was fitted with welems [1.0]"]),
    ("rfac0 0.99363000000000001", "rfac0 0.9", ["has rfac0 ['0.9'], but the potential was fitted with rfac0"]),
    ("rmin0 0", "rmin0 0.2", ["has rmin0 ['0.2'], but the potential was fitted with rmin0 [0.0]"]),
    ("bzeroflag 1", "bzeroflag 0", ["has bzeroflag ['0'], but the potential was fitted with bzeroflag 1"]),
    ("switchflag 1", "switchflag 0", ["has switchflag ['0'], but the potential was fitted with switchflag 1"]),
], ids=["elems", "nelems", "twojmax", "rcutfac", "rcutfac.text", "radelems", "welems", "rfac0", "rmin0", "bzeroflag",
        "switchflag"])
def test_mliap_descriptor_file(tmp_path, old, new, fragments):
    from lammps_al.core.potential import load
    from lammps_al.inrun.adapter import check_descriptor_file

    assert old in DESCRIPTOR_FILE
    path = tmp_path / "Al_linear.mliap.descriptor"
    path.write_text(DESCRIPTOR_FILE.replace(old, new))
    raises(PotentialError, lambda: check_descriptor_file(load(POTENTIAL), str(path)), str(path), *fragments,
           "use the .mliap.descriptor written with it")


def test_mliap_descriptor_file_missing(tmp_path):
    from lammps_al.core.potential import load
    from lammps_al.inrun.adapter import check_descriptor_file

    raises(PotentialError, lambda: check_descriptor_file(load(POTENTIAL), str(tmp_path / "none.descriptor")),
           f"cannot read descriptor file {tmp_path / 'none.descriptor'}")


EXTXYZ = ('2\nLattice="4 0 0 0 4 0 0 0 4" Properties=species:S:1:pos:R:3:REF_forces:R:3 REF_energy=-6.0 '
          'pbc="T T T"\nAl 0 0 0 0 0 0\nAl 2 2 2 0 0 0\n')


@pytest.mark.parametrize("text, fragments", [
    ("", ["holds no configurations: expected extxyz frames"]),
    (EXTXYZ.replace("REF_energy=-6.0", "REF_energy=abc"), ["frame 0: REF_energy must be a number (eV), got 'abc'"]),
    (EXTXYZ.replace("REF_energy=-6.0", "REF_energy=nan"), ["frame 0: REF_energy is nan, not a finite number"]),
    (EXTXYZ.replace("Al 0 0 0 0 0 0", "Al 0 0 0 nan 0 0"), ["REF_forces must be 2 x 3 finite numbers", "NaN or inf"]),
    (EXTXYZ.replace("REF_energy=-6.0", 'REF_energy=-6.0 REF_stress="1 2 3 4 5"'),
     ["REF_stress must have 6 or 9 components (eV/A^3)", "got (5,)"]),
    (EXTXYZ.replace("Al 2 2 2", "Al nan 2 2"), ["frame 0: positions contain NaN or inf"]),
    (EXTXYZ.replace("2\n", "3\n", 1), ["is not a readable extxyz file", "Frame has 2 atoms, expected 3"]),
    (EXTXYZ.replace(" REF_energy=-6.0", ""), ["configuration has no REF_energy label (eV); label it first"]),
], ids=["empty", "energy", "energy.nan", "forces.nan", "stress", "positions.nan", "atom_count", "no_label"])
def test_extxyz_training_file(tmp_path, text, fragments):
    from lammps_al.train.dataset import read_extxyz

    path = tmp_path / "cells.extxyz"
    path.write_text(text)
    raises(DatasetError, lambda: read_extxyz(path), str(path), *fragments)


FITSNAP = {"Positions": [[0, 0, 0], [1.6, 1.6, 1.6]], "Lattice": [[3.2, 0, 0], [0, 3.2, 0], [0, 0, 3.2]],
           "AtomTypes": ["Ta", "Ta"], "Energy": -20.0, "Forces": [[0, 0, 0], [0, 0, 0]],
           "Stress": [[1, 0, 0], [0, 1, 0], [0, 0, 1]]}


def fitsnap(data) -> str:
    return "# FitSNAP\n" + json.dumps({"Dataset": {"Data": data}})


@pytest.mark.parametrize("text, fragments", [
    ("# c\n{not json", ["is not a FitSNAP JSON file: expected a '#' comment line, then"]),
    (fitsnap({"a": 1}), ["expected exactly one configuration (a table) in the list Dataset.Data"]),
    (fitsnap([FITSNAP, FITSNAP]), ["expected exactly one configuration", "found 2 entries"]),
    (fitsnap([{**FITSNAP, "Energy": "low"}]), ["Energy must be a number (eV), got 'low'"]),
    (fitsnap([{**FITSNAP, "Energy": None}]), ["Energy must be a number (eV), got None"]),
    (fitsnap([{k: v for k, v in FITSNAP.items() if k != "Lattice"}]),
     ["missing Lattice (needs Positions, Lattice, AtomTypes, Energy)"]),
    (fitsnap([{**FITSNAP, "AtomTypes": ["Ta", "Xx"]}]), ["bad AtomTypes/Positions/Lattice", "'Xx'"]),
    (fitsnap([{**FITSNAP, "Forces": [[0, 0], [0, 0, 0]]}]), ["Forces must be 2 x 3 numbers (eV/A)"]),
    (fitsnap([{**FITSNAP, "Forces": [[0, 0, 0]]}]), ["Forces has shape (1, 3), expected (2, 3)"]),
    (fitsnap([{**FITSNAP, "Stress": [[1, 0], [0, 1]]}]), ["Stress must be a 3x3 tensor in bar"]),
    (fitsnap([{**FITSNAP, "Energy": float("nan")}]), ["REF_energy is nan, not a finite number"]),
], ids=["not_json", "data_table", "two_configurations", "energy", "energy.null", "lattice", "atom_types",
        "forces.ragged", "forces.shape", "stress", "energy.nan"])
def test_fitsnap_json_file(tmp_path, text, fragments):
    from lammps_al.train.dataset import read_fitsnap_json

    path = tmp_path / "Bulk" / "a.json"
    path.parent.mkdir()
    path.write_text(text)
    raises(DatasetError, lambda: read_fitsnap_json(path), str(path), *fragments)


def test_fitsnap_json_that_is_not_text(tmp_path):
    from lammps_al.train.dataset import read_fitsnap_json

    path = tmp_path / "a.json"
    path.write_bytes(b"\xff\xfe\x00")
    raises(DatasetError, lambda: read_fitsnap_json(path), str(path), "is not a FitSNAP JSON file: it is not text")


def test_training_source_that_is_missing_or_empty(tmp_path):
    from lammps_al.train.config import DataSource
    from lammps_al.train.dataset import read_fitsnap_dir
    from lammps_al.train.refit import read_source

    raises(DatasetError, lambda: read_source(DataSource(tmp_path / "gone.extxyz")),
           f"[training] source {tmp_path / 'gone.extxyz'} does not exist")
    (tmp_path / "empty").mkdir()
    raises(DatasetError, lambda: read_source(DataSource(tmp_path / "empty")),
           f"no extxyz files in {tmp_path / 'empty'}")
    raises(DatasetError, lambda: read_fitsnap_dir(tmp_path / "empty"),
           f"no FitSNAP JSON files under {tmp_path / 'empty'} (expected {tmp_path / 'empty'}/<group>/<name>.json)")


def store_with(tmp_path: Path, line: str):
    from lammps_al.train.store import LabelledStore

    (tmp_path / "training").mkdir(exist_ok=True)
    (tmp_path / "training" / "manifest.jsonl").write_text(line + "\n")
    return LabelledStore(tmp_path / "training")


OK_RECORD = {"hash": "h1", "oracle": "emt", "oracle_hash": "o1", "status": "ok", "group": "g", "file": "g/h1-o1.extxyz"}


@pytest.mark.parametrize("line, fragments", [
    ("{not json", ["manifest.jsonl:1 is not valid JSON: '{not json'"]),
    ("[1, 2]", ["manifest.jsonl:1 is not a JSON object: '[1, 2]'"]),
    (json.dumps({"hash": "h1"}), ["manifest.jsonl line 1 lacks oracle, oracle_hash, status, group",
                                  "(a labelled-store manifest)"]),
    (json.dumps({**OK_RECORD, "status": "maybe"}), ["line 1.status must be one of 'ok', 'failed', got 'maybe'"]),
    (json.dumps({**OK_RECORD, "natoms": "4"}), ["line 1.natoms must be an integer, got '4'"]),
], ids=["not_json", "not_object", "lacks", "status", "natoms"])
def test_labelled_store_manifest_line(tmp_path, line, fragments):
    store = store_with(tmp_path, line + "\n" + json.dumps(OK_RECORD))       # not the last line: not a torn one
    raises(StoreError, store.records, str(store.manifest), *fragments)


def test_labelled_store_files_the_manifest_names(tmp_path):
    store = store_with(tmp_path, json.dumps({**OK_RECORD, "file": None}))
    raises(StoreError, store.load, str(store.manifest), "the label of h1 (status ok) names no file",
           "remove its line from the manifest to label it again")
    store = store_with(tmp_path, json.dumps(OK_RECORD))
    raises(StoreError, store.load, str(tmp_path / "training" / "g" / "h1-o1.extxyz"), f"(named in {store.manifest})",
           "remove its line from the manifest to label it again")


def test_flagged_manifest_line(tmp_path):
    from lammps_al.core.records import read_flagged

    line = {"file": "a.extxyz", "kind": "snapshot", "natoms": 4, "step": 10, "run_id": "r", "max_sigma": 0.1}
    (tmp_path / "manifest.jsonl").write_text(json.dumps(line) + "\n")
    raises(StoreError, lambda: read_flagged(tmp_path), str(tmp_path / "manifest.jsonl"),
           "line 1.kind must be one of 'configuration', 'local_environment', got 'snapshot'",
           "(a flagged-configuration manifest written by the lammps_al fix)")


def test_run_log_row(tmp_path):
    from lammps_al.core.records import RUN_LOG_COLUMNS, read_run_log

    path = tmp_path / "run.csv"
    path.write_text(",".join(RUN_LOG_COLUMNS) + "\nten,0,300,0.1,0.1,0,32,none,1\n20,0,300,0.1,0.1,0,32,none,1\n")
    raises(StoreError, lambda: read_run_log(path), str(path), "row 2 is malformed", "'ten'",
           "expected columns step,time_ps")


@pytest.mark.parametrize("content, fragments", [
    (b'{"run_id": "r", "status": "exploded"}', ["status must be one of 'started', 'halted', got 'exploded'"]),
    (b'{"run_id": "r", "status": "halted", "step": "12"}', [".step must be an integer (or left out), got '12'"]),
    (b"\xff\xfe", ["can't decode byte 0xff"]),
], ids=["status", "step", "binary"])
def test_run_status_file(tmp_path, content, fragments):
    from lammps_al.core.records import read_run_status

    path = tmp_path / "r.json"
    path.write_bytes(content)
    raises(StoreError, lambda: read_run_status(path), str(path), "is not a run status written by the lammps_al fix",
           *fragments)


@pytest.mark.parametrize("text, fragments", [
    ('{"iterations": 3}', ["history.json.iterations must be a list of tables, got 3"]),
    ('{"iterations": [{"iteration": "first"}]}',
     ["history.json.iterations[0].iteration must be an integer, got 'first'"]),
    ('{"converged": "yes"}', ["history.json.converged must be true or false, got 'yes'"]),
    ("", ["Expecting value"]),
], ids=["iterations", "iteration", "converged", "empty"])
def test_history_json(tmp_path, text, fragments):
    from lammps_al.core.records import History, read_marker

    (tmp_path / "history.json").write_text(text)
    raises(LoopError, lambda: read_marker(tmp_path, History), str(tmp_path / "history.json"),
           "is not a history stage marker", *fragments, "remove it to run that stage again with --resume")


def test_parsl_config_file(tmp_path):
    from lammps_al.executors.parsl import _from_file

    path = tmp_path / "site.py"
    path.write_text("def make_config(run_dir:\n")
    raises(ConfigError, lambda: _from_file(path, tmp_path), f"config_file {path} cannot be run (SyntaxError",
           "define make_config(run_dir)")
    path.write_text("X = 1\n")
    raises(ConfigError, lambda: _from_file(path, tmp_path),
           f"{path} must define make_config(run_dir) returning a parsl.config.Config")
    path.write_text("def make_config(run_dir):\n    raise KeyError('partition')\n")
    raises(ConfigError, lambda: _from_file(path, tmp_path), f"config_file {path}: make_config(", "failed (KeyError")


def test_label_inputs(tmp_path):
    """[label] inputs (or the files given to lammps-al label): structure files or folders of them."""
    from lammps_al.train.label import read_inputs

    raises(DatasetError, lambda: read_inputs([tmp_path / "gone.extxyz"]),
           f"label input {tmp_path / 'gone.extxyz'} does not exist")
    (tmp_path / "cells").mkdir()
    (tmp_path / "cells" / "notes.txt").write_text("x")
    raises(DatasetError, lambda: read_inputs([tmp_path / "cells"]),
           f"label input {tmp_path / 'cells'} is a folder without structure files (looked for *.extxyz, *.xyz")
    (tmp_path / "cells" / "a.extxyz").write_text("2\nnonsense\nAl 0 0\n")
    raises(DatasetError, lambda: read_inputs([tmp_path / "cells"]),
           f"{tmp_path / 'cells' / 'a.extxyz'} cannot be read as a structure file")
    bad = bulk("Al", "fcc", a=4.05)
    bad.positions[0, 0] = np.nan
    bad.write(tmp_path / "nan.extxyz")
    raises(DatasetError, lambda: read_inputs([tmp_path / "nan.extxyz"]),
           f"{tmp_path / 'nan.extxyz'} frame 0: positions contain NaN or inf")


# ---- the on-the-fly learning config ([otf]; lammps_al/otf/config.py, shipped: in_files/al_otf.toml) -----------

OTF_CASES = [
    ("otf.target", "target = -1", ["[otf] target must be > 0", "-1"]),
    ("otf.converge_ps", "converge_ps = 0", ["[otf] converge_ps must be > 0 ps, got 0"]),
    ("otf.start", 'start = "big"', ["otf", "start", "big"]),
    ("otf.reoptimise_every", "reoptimise_every = 0", ["[otf] reoptimise_every must be >= 1, got 0"]),
    ("otf.window", "window = 0", ["[otf] window must be >= 1, got 0"]),
    ("otf.max_labels", "max_labels = 0", ["[otf] max_labels must be >= 1, got 0"]),
    ("otf.cx", "cx = -0.5", ["[otf] cx must be >= 0, got -0.5"]),
    ("otf.halt_factor", "halt_factor = 2", ["[otf] halt_factor must be > 3", "got 2"]),
    ("otf.potential_name", 'potential_name = "a/b"', ["[otf] potential_name must be a file stem, got 'a/b'"]),
    ("otf.group", "group = 3", ["otf", "group", "3"]),
    ("otf.crystal_tolerance", "crystal_tolerance = 1", ["[otf] crystal_tolerance must be in [0, 1)", "got 1"]),
    ("otf.unknown", "targett = 0.1", ["unknown key(s) ['targett'] in [otf]"]),
]


@pytest.mark.parametrize("name, line, fragments", OTF_CASES, ids=[c[0] for c in OTF_CASES])
def test_otf_config_key(tmp_path, name, line, fragments):
    from lammps_al.otf.config import load_otf_config

    text = (ROOT / "in_files" / "al_otf.toml").read_text()
    key = line.split("=")[0].strip()
    lines = [l for l in text.splitlines() if not l.startswith(f"{key} =")]
    text = "\n".join(lines).replace("[otf]\n", f"[otf]\n{line}\n")
    path = tmp_path / "otf.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_otf_config(path)
    for fragment in fragments:
        assert fragment in str(info.value), (fragment, str(info.value))


def test_every_key_of_the_otf_config_has_a_case():
    import dataclasses

    from lammps_al.otf.config import OTFSettings

    assert {f.name for f in dataclasses.fields(OTFSettings)} <= {c[0].split(".")[1] for c in OTF_CASES}


def test_an_otf_config_with_outlier_weights_is_refused(tmp_path):
    """[fit] outlier_force_scale weighs a label against the whole store's median: on-the-fly learning adds each
    label's rows once, so the two cannot agree; the config says so when it loads."""
    from lammps_al.otf.config import load_otf_config

    text = (ROOT / "in_files" / "al_otf.toml").read_text()
    assert "[fit]\n" in text
    path = tmp_path / "otf.toml"
    path.write_text(text.replace("[fit]\n", "[fit]\noutlier_force_scale = 2.0\n"))
    raises(ConfigError, lambda: load_otf_config(path), str(path), "outlier_force_scale = 2.0", "remove it")


def test_the_shipped_otf_config_loads():
    from lammps_al.otf.config import load_otf_config

    config, otf = load_otf_config(ROOT / "in_files" / "al_otf.toml")
    assert otf.target == 0.05 and config.fit.solver == "bayes"


def test_a_damaged_flagged_configuration_names_itself_and_what_to_do(tmp_path):
    """Selection reads the fix's flagged files: one that is damaged (a disk error, a hand edit) stops the
    selection with its path and what to do, not ASE's own exception."""
    from lammps_al.loop.select import candidate_features

    bad = tmp_path / "run-s000000010.extxyz"
    bad.write_text("3\nLattice=\"1 0 0\" garbage\nAl 0 0\n")
    with pytest.raises(DatasetError, match=r"flagged configuration .*run-s000000010.extxyz \(named in .*manifest"
                                           r".jsonl\) cannot be read: .*remove its line from the manifest"):
        candidate_features(ROOT / "potentials" / "Al_linear.npz", [bad])
