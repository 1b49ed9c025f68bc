"""The loop's config loads through the fit's machinery: types checked with a clear message, unknown keys
named, what the loop sets itself never set silently by the file, everything it names checked on load."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from lammps_al.core.errors import ConfigError
from lammps_al.loop.config import load_loop_config

BASE = """\
[loop]
workdir = "state"
{loop}

[[explore]]
name = "melt"
input = "in_files/explore_melt.in"
{explore}

[oracle]
name = "emt"

[descriptor]
elements = ["Al"]
twojmax = 4
rcutfac = 4.5
radelem = [0.5]
wj = [1.0]
{extra}
"""


def config(tmp_path: Path, loop: str = "", explore: str = "", extra: str = "") -> Path:
    path = tmp_path / "loop.toml"
    path.write_text(BASE.format(loop=loop, explore=explore, extra=extra))
    return path


def test_a_good_config_loads_with_the_loop_s_own_store_and_name(tmp_path):
    cfg = load_loop_config(config(tmp_path, loop="iterations = 2"))
    assert cfg.loop.workdir == tmp_path / "state" and cfg.loop.iterations == 2
    assert cfg.fit.training.dir == tmp_path / "state" / "training" and cfg.fit.fit.name == "Al"
    assert cfg.loop.explore[0].input.name == "explore_melt.in" and cfg.loop.explore[0].input.is_file()
    assert cfg.loop.explore[0].kind == "melt"


def test_the_loop_s_fits_weigh_far_labels_down_unless_the_config_says_otherwise(tmp_path):
    """The loop labels what wrong models drove MD into: its fits use [fit] outlier_force_scale =
    LOOP_OUTLIER_FORCE_SCALE unless the file sets one (0 turns it off); a plain fit keeps FitSNAP's weights."""
    from lammps_al.loop.config import LOOP_OUTLIER_FORCE_SCALE
    from lammps_al.train.config import load_config

    assert load_loop_config(config(tmp_path)).fit.fit.outlier_force_scale == LOOP_OUTLIER_FORCE_SCALE == 2.0
    other = tmp_path / "other"
    other.mkdir()
    cfg = load_loop_config(config(other, extra="[fit]\nseed = 3\noutlier_force_scale = 0\n"))
    assert cfg.fit.fit.outlier_force_scale == 0 and cfg.fit.fit.seed == 3
    plain = tmp_path / "fit.toml"
    plain.write_text("[descriptor]\nelements = ['Al']\ntwojmax = 2\nrcutfac = 4.5\nradelem = [0.5]\nwj = [1.0]\n")
    assert load_config(plain).fit.outlier_force_scale == 0.0


@pytest.mark.parametrize("loop, message", [
    ('iterations = "8"', r"\[loop\].iterations must be an integer, got '8'"),
    ("sigma_target = -1", "sigma_target must be > 0"),
    ('selection = "greedy"', r"\[loop\].selection must be one of 'uncertainty', 'random', got 'greedy'"),
    ("speed = 'fast'", r"unknown key\(s\) \['speed'\] in \[loop\]; allowed:"),
    ("lammps_variables = 3", r"\[loop\].lammps_variables must be a table, got 3"),
])
def test_loop_values_of_the_wrong_type_are_named(tmp_path, loop, message):
    with pytest.raises(ConfigError, match=message):
        load_loop_config(config(tmp_path, loop=loop))


def test_the_loop_s_store_and_potential_name_are_not_overridden_silently(tmp_path):
    with pytest.raises(ConfigError, match=r"\[training\] dir is set by the loop"):
        load_loop_config(config(tmp_path, extra='[training]\ndir = "elsewhere"\n'))
    with pytest.raises(ConfigError, match=r"\[fit\] name is set by \[loop\] potential_name"):
        load_loop_config(config(tmp_path, extra='[fit]\nname = "X"\n'))


def test_explore_runs_are_checked_on_load(tmp_path):
    with pytest.raises(ConfigError, match=r"input nowhere.in not found \(looked in"):
        load_loop_config(config(tmp_path, explore='[[explore]]\nname = "x"\ninput = "nowhere.in"\n'))
    with pytest.raises(ConfigError, match="names must differ"):
        load_loop_config(config(tmp_path, explore='[[explore]]\nname = "melt"\ninput = "in_files/explore_npt.in"\n'))
    with pytest.raises(ConfigError, match=r"\[explore\]\[0\].variables must be a table"):
        load_loop_config(config(tmp_path, explore="variables = 4\n"))


def test_an_unknown_oracle_is_found_when_the_config_loads(tmp_path):
    path = config(tmp_path)
    path.write_text(path.read_text().replace('name = "emt"', 'name = "dft-magic"'))
    with pytest.raises(ConfigError, match="unknown oracle 'dft-magic'"):
        load_loop_config(path)


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write anywhere")
def test_an_unwritable_workdir_is_found_when_the_config_loads(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    with pytest.raises(ConfigError, match="workdir .* cannot be created"):
        path = config(tmp_path)
        path.write_text(path.read_text().replace('workdir = "state"', f'workdir = "{locked}/state"'))
        load_loop_config(path)


def test_a_workdir_under_a_file_is_found_when_the_config_loads(tmp_path):
    (tmp_path / "a_file").write_text("x")
    path = config(tmp_path)
    path.write_text(path.read_text().replace('workdir = "state"', 'workdir = "a_file/state"'))
    with pytest.raises(ConfigError, match=r"workdir .*a_file/state cannot be created \(.*a_file is not a writable "
                                          r"folder\)"):
        load_loop_config(path)


def test_the_copper_demo_is_the_aluminium_demo_with_another_element_and_oracle():
    """Nothing in the discovery loop is aluminium's: the copper config changes only the element, the oracle and
    the names of its workdir and potential (comments aside)."""
    from lammps_al.core.config import read_toml

    root = Path(__file__).resolve().parents[2] / "in_files"
    al, cu = read_toml(root / "al_demo.toml"), read_toml(root / "cu_demo.toml")
    assert cu["descriptor"].pop("elements") == ["Cu"] and al["descriptor"].pop("elements") == ["Al"]
    assert cu.pop("oracle")["settings"] == {"potential": "Cu_mishin1.eam.alloy", "elements": ["Cu"]}
    al.pop("oracle")
    for key in ("workdir", "potential_name"):
        assert cu["loop"].pop(key) != al["loop"].pop(key)
    assert cu == al
    assert load_loop_config(root / "cu_demo.toml").fit.oracle.settings["elements"] == ["Cu"]
