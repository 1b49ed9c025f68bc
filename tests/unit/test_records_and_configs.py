"""Typed records and the config machinery: every record's writer and reader agree, damaged records and
config values of the wrong type get a message naming the file, the key, the value and what is right."""

from __future__ import annotations

import os

import pytest

from lammps_al.core.errors import ConfigError, LoopError, StoreError
from lammps_al.core.records import (ExploreRecord, ExploreRunResult, FlaggedEntry, HeldOutSummary, History,
                                    IterationSummary, LearningPoint, RunLogRow, RunStatus, ScoreStats,
                                    append_flagged, append_run_log, read_flagged, read_marker, read_run_log,
                                    read_run_status, run_log_path, run_status_path, write_marker, write_run_status)
from lammps_al.train.config import load_config


def test_flagged_entries_round_trip_and_old_manifests_still_read(tmp_path):
    entry = FlaggedEntry(file="run-s000000010.extxyz", kind="configuration", natoms=32, step=10, run_id="run",
                         max_sigma=0.02, halt=False, max_sigma_id=7, seconds=0.01)
    append_flagged(tmp_path, entry)
    with open(tmp_path / "manifest.jsonl", "a") as fh:      # a line written before these records existed
        fh.write('{"file": "old.extxyz", "kind": "local_environment", "natoms": 80, "step": 20, "run_id": "r", '
                 '"max_sigma": 0.5, "cut_seconds": 0.25, "local_environment": true, "center_id": 3}\n')
    first, old = read_flagged(tmp_path)
    assert first == entry
    assert old.kind == "local_environment" and old.seconds == 0.25 and old.center_id == 3
    assert read_flagged(tmp_path, existing_only=True) == []


def test_a_malformed_manifest_line_names_the_file_and_line(tmp_path):
    (tmp_path / "manifest.jsonl").write_text('{"file": "a.extxyz", "kind": "configuration"}\n{"x": 1}\n')
    with pytest.raises(StoreError, match=r"manifest.jsonl line 1.* lacks natoms, step, run_id, max_sigma"):
        read_flagged(tmp_path)


def test_run_log_rows_round_trip_and_a_torn_last_row_is_skipped(tmp_path):
    path = run_log_path(tmp_path, "r")
    path.parent.mkdir()
    rows = [RunLogRow(0, 0.0, 300.0, 0.01, 0.005, 0, 32, "none", 1.5),
            RunLogRow(10, 0.02, 310.5, 0.05, 0.01, 3, 32, "write", 2.25)]
    for row in rows:
        append_run_log(path, row)
    assert read_run_log(path) == rows
    with open(path, "a") as fh:
        fh.write("20,0.04,3")
    assert read_run_log(path) == rows


def test_run_status_says_halted_and_why(tmp_path):
    (tmp_path / "runs").mkdir()
    write_run_status(tmp_path, RunStatus(run_id="melt", status="halted", reason="sigma 0.3 >= 0.12", step=230,
                                         max_sigma=0.3))
    status = read_run_status(run_status_path(tmp_path, "melt"))
    assert status.status == "halted" and status.step == 230 and "0.12" in status.reason
    run_status_path(tmp_path, "bad").write_text('{"run_id": "bad", "status": "exploded"}')
    with pytest.raises(StoreError, match=r"bad.json is not a run status.*status must be one of 'started', 'halted'"):
        read_run_status(run_status_path(tmp_path, "bad"))


def test_score_statistics_keep_the_p99_9_key_of_older_potentials():
    stats = ScoreStats.from_values([1.0, 2.0, 3.0, 4.0])
    assert stats.to_dict()["p99.9"] == pytest.approx(3.997)
    assert ScoreStats.from_dict(stats.to_dict(), "x") == stats


def test_stage_markers_round_trip_with_nested_records(tmp_path):
    run = ExploreRunResult(name="melt", kind="liquid", status="halted", seconds=3.0, seed=5, max_sigma=[0.1, 0.2],
                           halt_reason="why")
    record = ExploreRecord(runs={"melt": run}, trajectory_sigma=0.15, flag_fraction=1.0, crashed=[],
                           halted=["melt"], seconds=3.1)
    write_marker(tmp_path, record)
    assert read_marker(tmp_path, ExploreRecord) == record
    history = History(start=LearningPoint(10, HeldOutSummary(0.001, 0.05, 0.9)), iterations=[IterationSummary(
        iteration=0, trajectory_sigma=None, flag_fraction=0.0, flagged=0, selected=0, labelled=0, labels_total=10,
        held_out=HeldOutSummary())])
    write_marker(tmp_path, history)
    assert read_marker(tmp_path, History) == history
    assert read_marker(tmp_path / "nowhere", History) is None


def test_a_damaged_stage_marker_says_how_to_redo_the_stage(tmp_path):
    (tmp_path / "explore.json").write_text('{"runs": {"a": {"name": 3}}')
    with pytest.raises(LoopError, match=r"explore.json is not a explore stage marker.*remove it to run that stage again"):
        read_marker(tmp_path, ExploreRecord)


@pytest.mark.parametrize("text, message", [
    ("[fit]\nworkers = '2'\n", r"\[fit\].workers must be an integer, got '2'"),
    ("[fit]\nalpha = 'abc'\n", r"\[fit\].alpha must be a number \(or left out\), got 'abc'"),
    ("[fit]\nenergy = 1\n", r"\[fit\].energy must be true or false, got 1"),
    ("[training]\nsources = [{path = 3}]\n", r"\[training.sources\[0\]\].path must be a path \(string\), got 3"),
    ("[descriptor]\nelements = 'Al'\ntwojmax = 4\nrcutfac = 4.0\nradelem = [0.5]\nwj = [1.0]\n",
     "elements must be a list"),
    ("[descriptor]\nelements = ['Al']\ntwojmax = '4'\nrcutfac = 4.0\nradelem = [0.5]\nwj = [1.0]\n",
     "twojmax must be a non-negative integer, got '4'"),
    ("[descriptor]\nelements = ['Al']\ntwojmax = 4\nrcutfac = 'abc'\nradelem = [0.5]\nwj = [1.0]\n",
     "rcutfac must be a number, got 'abc'"),
    ("[oracle]\nname = 'nosuch'\n", "unknown oracle 'nosuch'"),
    ("[oracle]\nname = 'emt'\n[oracle.settings]\ncutoff = 3\n", r"emt oracle: unknown setting\(s\) \['cutoff'\]"),
    ("[oracle]\nname = 'no.such.module:Calc'\n", "cannot import module 'no.such.module'"),
    ("[groups]\ndefault = 3\n", r"\[groups.default\] must be a table, got int"),
    ("fit = 3\n", r"\[fit\] must be a table, got int"),
])
def test_config_values_of_the_wrong_type_name_the_file_key_and_value(tmp_path, text, message):
    path = tmp_path / "c.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message) as info:
        load_config(path)
    assert str(path) in str(info.value)


def test_a_missing_or_malformed_config_file_is_named(tmp_path):
    with pytest.raises(ConfigError, match="config file .*nope.toml does not exist"):
        load_config(tmp_path / "nope.toml")
    (tmp_path / "bad.toml").write_text("[fit\nmodel = 1")
    with pytest.raises(ConfigError, match="bad.toml is not valid TOML"):
        load_config(tmp_path / "bad.toml")
    os.mkdir(tmp_path / "dir.toml")
    with pytest.raises(ConfigError, match="dir.toml is a folder"):
        load_config(tmp_path / "dir.toml")
