"""Config validation, potential files and training-data readers: bad input gets a clear error."""

from __future__ import annotations

import json

import numpy as np
import pytest
from ase.build import bulk

from lammps_al.core.descriptor import SNAPSettings, n_bispectrum
from lammps_al.core.errors import ConfigError, DatasetError, PotentialError, ScorerError
from lammps_al.core.io import read_jsonl
from lammps_al.core.potential import COEFFICIENTS, COVARIANCE, FORMAT, Potential, load, save
from lammps_al.core.records import LabelRecord
from lammps_al.models.registry import make_scorer, model_for
from lammps_al.train.config import load_config
from lammps_al.train.dataset import config_hash, deduplicate, read_extxyz, read_fitsnap_json
from lammps_al.train.lammps_files import to_snapcoeff_string
from lammps_al.train.store import LabelledStore

AL = SNAPSettings(elements=("Al",), twojmax=4, rcutfac=4.1, radelem=(0.5,), wj=(1.0,))


def write(tmp_path, text, name="c.toml"):
    p = tmp_path / name
    p.write_text(text)
    return p


def test_unknown_key_is_rejected_with_the_allowed_ones(tmp_path):
    p = write(tmp_path, "[fit]\nmodel = 'linear'\nsolvr = 'svd'\n")
    with pytest.raises(ConfigError, match=r"unknown key\(s\) \['solvr'\] in \[fit\]; allowed: .*'solver'"):
        load_config(p)


def test_unknown_section_is_rejected(tmp_path):
    with pytest.raises(ConfigError, match=r"unknown section\(s\) or top-level key\(s\) \['fitting'\]"):
        load_config(write(tmp_path, "[fitting]\nmodel = 'linear'\n"))


def test_impossible_values_are_rejected(tmp_path):
    with pytest.raises(ConfigError, match="unknown model kind 'cubic': choose one of"):
        load_config(write(tmp_path, "[fit]\nmodel = 'cubic'\n"))
    with pytest.raises(ConfigError, match=r"\[fit\].solver must be one of 'bayes', 'svd', 'ridge', got 'lsq'"):
        load_config(write(tmp_path, "[fit]\nsolver = 'lsq'\n"))
    with pytest.raises(ConfigError, match="energy_weight must be >= 0"):
        load_config(write(tmp_path, "[groups.bulk]\nenergy_weight = -1\n"))
    with pytest.raises(ConfigError, match="need 1 radelem"):
        load_config(write(tmp_path, "[descriptor]\nelements=['Al']\ntwojmax=4\nrcutfac=4.0\nradelem=[0.5,0.5]\nwj=[1.0]\n"))


def test_relative_paths_follow_the_config_file(tmp_path):
    cfg = load_config(write(tmp_path, "[training]\ndir = 'store'\n[fit]\noutput_dir = 'pots'\n"))
    assert cfg.training.dir == tmp_path / "store" and cfg.fit.output_dir == tmp_path / "pots"


def test_bispectrum_counts_match_lammps():
    assert [n_bispectrum(j) for j in (2, 4, 6, 8)] == [5, 14, 30, 55]


def make_potential(model="linear"):
    s = AL if model == "linear" else SNAPSettings.from_dict({**AL.to_dict(), "quadraticflag": 1})
    rng = np.random.default_rng(0)
    coef = rng.normal(size=(1, 1 + s.n_features))
    cov = np.eye(coef.size) * 1e-4
    return Potential(elements=("Al",), model=model, descriptor=s, arrays={COEFFICIENTS: coef, COVARIANCE: cov})


@pytest.mark.parametrize("model", ["linear", "quadratic"])
def test_potential_round_trip_without_pickle(tmp_path, model):
    p = make_potential(model)
    save(p, tmp_path / "x.npz")
    with np.load(tmp_path / "x.npz", allow_pickle=False) as data:  # plain data only
        assert set(data.files) == {COEFFICIENTS, COVARIANCE, "metadata"}
    q = load(tmp_path / "x.npz")
    np.testing.assert_array_equal(q.coefficients, p.coefficients)
    np.testing.assert_array_equal(q.covariance, p.covariance)
    assert q.descriptor == p.descriptor and q.model == model


def test_a_full_disk_while_writing_a_potential_keeps_the_old_file(tmp_path, monkeypatch):
    """ENOSPC at the fsync of the new file: a StoreError with the path and the free space; the potential
    written before is still there and loads, and no temporary file is left."""
    import errno
    import os

    from lammps_al.core.errors import StoreError

    path = tmp_path / "Al.npz"
    old = make_potential("linear")
    save(old, path)
    real = os.fsync

    def fsync(fd):
        if os.readlink(f"/proc/self/fd/{fd}").endswith(".tmp"):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    new = make_potential("quadratic")
    with pytest.raises(StoreError, match=r"cannot write .*Al\.npz: No space left on device \([\d.]+ MB free there, "
                                         r"this write needs [\d.]+ MB\)"):
        save(new, path)
    monkeypatch.undo()
    assert load(path).model == "linear"
    assert sorted(f.name for f in tmp_path.iterdir()) == ["Al.npz"]


def test_malformed_and_missing_potential_files(tmp_path):
    with pytest.raises(PotentialError, match="does not exist"):
        load(tmp_path / "none.npz")
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(PotentialError, match="junk.npz is not a readable lammps_al potential file"):
        load(tmp_path / "junk.npz")


def test_covariance_of_wrong_shape_is_refused():
    p = make_potential()
    bad = Potential(elements=("Al",), model="linear", descriptor=AL,
                    arrays={COEFFICIENTS: p.coefficients, COVARIANCE: np.eye(3)})
    with pytest.raises(ScorerError, match=r"covariance has shape \(3, 3\), expected \(15, 15\)"):
        make_scorer(bad, model_for(bad), "bayes")


def test_coefficients_of_wrong_shape_are_refused():
    bad = Potential(elements=("Al",), model="linear", descriptor=AL, arrays={COEFFICIENTS: np.zeros((1, 7))})
    with pytest.raises(PotentialError, match=r"linear SNAP coefficients have shape \(1, 7\), expected \(1, 15\)"):
        model_for(bad)


def test_version_1_files_still_load(tmp_path):
    """A potential written before the model protocol (arrays coefficients, covariance, grade_0) loads."""
    p = make_potential("linear")
    meta = {**p.metadata(), "format_version": 1}
    meta.pop("model_class")
    np.savez(tmp_path / "v1.npz", coefficients=p.coefficients, covariance=p.arrays[COVARIANCE],
             grade_0=np.ones((15, 3)), metadata=np.array(json.dumps(meta)))
    q = load(tmp_path / "v1.npz")
    np.testing.assert_array_equal(q.coefficients, p.coefficients)
    assert set(q.arrays) == {COEFFICIENTS, COVARIANCE, "grade.projector.0"}


def test_non_finite_coefficients_are_refused(tmp_path):
    p = make_potential()
    coef = p.coefficients.copy()
    coef[0, 3] = np.nan
    np.savez(tmp_path / "nan.npz", **{COEFFICIENTS: coef}, metadata=np.array(json.dumps(p.metadata())))
    with pytest.raises(PotentialError, match=r"nan.npz: array 'model.coefficients' holds 1 NaN or infinite"):
        load(tmp_path / "nan.npz")


def test_a_damaged_potential_file_names_itself(tmp_path):
    p = make_potential()
    save(p, tmp_path / "x.npz")
    data = (tmp_path / "x.npz").read_bytes()
    (tmp_path / "cut.npz").write_bytes(data[: len(data) // 2])
    with pytest.raises(PotentialError, match="cut.npz is not a readable lammps_al potential file.*damaged"):
        load(tmp_path / "cut.npz")
    meta = json.loads(json.dumps(p.metadata()))
    meta["format"] = "something-else"
    np.savez(tmp_path / "other.npz", metadata=np.array(json.dumps(meta)))
    with pytest.raises(PotentialError, match=f"other.npz: metadata format is 'something-else', expected '{FORMAT}'"):
        load(tmp_path / "other.npz")


def test_snapcoeff_layout_has_element_header_and_all_coefficients():
    p = make_potential("quadratic")
    lines = [l for l in to_snapcoeff_string(p).splitlines() if l and not l.startswith("#")]
    assert lines[0] == f"1 {1 + 14 + 105}"
    assert lines[1].startswith("Al 0.5 1")
    assert len(lines) == 2 + 120


FITSNAP_JSON = """# comment
{"Dataset": {"Data": [{"Positions": [[0,0,0],[1.6,1.6,1.6]], "Lattice": [[3.2,0,0],[0,3.2,0],[0,0,3.2]],
 "AtomTypes": ["Ta","Ta"], "Energy": -20.0, "Forces": [[0,0,0],[0,0,0]],
 "Stress": [[1000,0,0],[0,1000,0],[0,0,1000]]}]}}
"""


def test_fitsnap_json_converts_pressure_in_bar_to_ase_stress(tmp_path):
    d = tmp_path / "Bulk"
    d.mkdir()
    (d / "a.json").write_text(FITSNAP_JSON)
    atoms = read_fitsnap_json(d / "a.json")
    assert atoms.info["group"] == "Bulk" and atoms.info["REF_energy"] == -20.0
    assert atoms.info["REF_stress"][0] == pytest.approx(-1000 / 1.6021765e6)


def test_malformed_json_and_extxyz_name_the_file(tmp_path):
    (tmp_path / "bad.json").write_text("# c\n{not json")
    with pytest.raises(DatasetError, match="bad.json is not a FitSNAP JSON file"):
        read_fitsnap_json(tmp_path / "bad.json")
    (tmp_path / "bad.extxyz").write_text("3\nnonsense line\nAl 0 0\n")
    with pytest.raises(DatasetError, match="bad.extxyz is not a readable extxyz file"):
        read_extxyz(tmp_path / "bad.extxyz")


def test_configuration_without_labels_is_refused(tmp_path):
    atoms = bulk("Al", "fcc", a=4.05)
    atoms.write(tmp_path / "nolabel.extxyz")
    with pytest.raises(DatasetError, match="no REF_energy label"):
        read_extxyz(tmp_path / "nolabel.extxyz")


def test_deduplication_by_structure():
    a = bulk("Al", "fcc", a=4.05)
    b = a.copy()
    c = a.copy()
    c.positions[0, 0] += 0.01
    kept, dropped = deduplicate([a, b, c])
    assert dropped == 1 and len(kept) == 2
    assert config_hash(a) == config_hash(b) != config_hash(c)


def test_store_survives_a_torn_manifest_line(tmp_path):
    store = LabelledStore(tmp_path)
    atoms = bulk("Al", "fcc", a=4.05)
    atoms.info["REF_energy"] = -3.4
    store.add_label(atoms, LabelRecord(hash="h1", oracle="emt", oracle_hash="o", status="ok", group="g"))
    with open(store.manifest, "a") as fh:
        fh.write('{"hash": "h2", "ora')  # a crash mid-append
    assert [r.hash for r in store.records()] == ["h1"]
    assert store.load()[0].info["REF_energy"] == -3.4
    assert json.loads(store.manifest.read_text().splitlines()[0])["file"] == "g/h1-o.extxyz"
    assert len(read_jsonl(store.manifest)) == 1
