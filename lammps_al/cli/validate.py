"""Validate a learned potential against the reference, side by side in LAMMPS.

Lattice constant, cohesive energy, C11/C12/C44, vacancy formation energy, (100)/(110)/(111) surface
energies, the intrinsic stacking-fault energy and the melting point (solid-liquid coexistence); energy/force
errors on held-out reference MD snapshots (crystal at 0.33-0.95 Tm, vacancy, slab, liquid at 1.2-1.75 Tm) and
the rank correlation of sigma with the actual error. For a binary potential also: both elements' lattice
constants and cohesive energies, formation energies of ordered compounds, the solution energy of the second
element in the first and its binding to a vacancy, the liquid's mixing enthalpy, and held-out errors per
element and composition. POTENTIAL is a .npz file or a loop's workdir (its final potential, its held-out set,
its oracle as the reference, and its folder for the report). ``--test-set FILE``: the potential's errors on
labelled configurations from another source too (DFT by another code: with the systematic energy offset).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from lammps_al.core.errors import ConfigError, LammpsAlError
from lammps_al.loop.driver import CONFIG_COPY
from lammps_al.core.records import History, read_marker
from lammps_al.validate import Coexistence, report_lines, validate, write_report


def add_arguments(parser) -> None:
    parser.add_argument("potential", type=Path, help="the learned potential (.npz), or a loop's workdir")
    parser.add_argument("--no-held-out", action="store_true", help="skip the held-out MD set")
    parser.add_argument("--output", type=Path, help="write the report as JSON here")
    parser.add_argument("--no-melting", action="store_true", help="skip the melting point (the slowest part)")
    parser.add_argument("--nprocs", type=int, default=2, help="MPI ranks for the coexistence runs (default 2)")
    parser.add_argument("--t-guess", type=float, default=Coexistence.t_guess,
                        help="start temperature of the reference's coexistence run, K (default %(default)s)")
    parser.add_argument("--workdir", type=Path, help="folder for the coexistence runs (default: beside the potential)")
    parser.add_argument("--held-out-cache", type=Path, help="extxyz of the labelled held-out set (made if missing)")
    parser.add_argument("--config", type=Path, help="a fit, loop or on-the-fly config: its [oracle] is the "
                                                    "reference (LAMMPS runs an eam oracle; any other ASE "
                                                    "calculator, DFT, is compared in small cells it computes "
                                                    "itself)")
    parser.add_argument("--test-set", type=Path, action="append", default=[], metavar="FILE",
                        help="labelled configurations from another source (extxyz: REF_energy in eV, REF_forces in "
                             "eV/A) to give the potential's errors on, with the systematic energy offset; repeatable")
    parser.add_argument("--seeds", type=int, default=3, help="independent coexistence runs of the learned potential "
                                                             "(default 3; the reference gets 5)")


def loop_reference(held_out_cache: Path):
    """The loop's oracle as the reference (its pair lines and element, from the plan of its held-out set) and
    its melting point; (None, None) when the loop has no such plan (the default reference then)."""
    from lammps_al.validate.properties import PairSetup

    plan_file = held_out_cache.with_suffix(".plan.json")
    if not plan_file.is_file():
        return None, None
    try:
        plan = json.loads(plan_file.read_text())
        if plan.get("kind") == "oracle-md":          # an oracle LAMMPS cannot run: its config says which
            return None, None
        name = Path(str(plan["pair"][-1]).split()[3]).name if len(str(plan["pair"][-1]).split()) > 3 else "oracle"
        elements = tuple(plan.get("elements") or (str(plan["element"]),))
        return PairSetup(f"reference ({name})", list(plan["pair"]), elements=elements), float(plan["tm"])
    except (ValueError, KeyError, IndexError, TypeError) as exc:
        raise ConfigError(f"{plan_file}: not a held-out plan this version can read ({exc}); delete it and "
                          f"{held_out_cache} to make them again") from None


def config_oracle(path: Path):
    """The [oracle] of a fit, loop or on-the-fly config, as an OracleSpec (checked: name, settings, files)."""
    from lammps_al.core.config import read_toml
    from lammps_al.core.resources import find_file
    from lammps_al.train.oracles import OracleSpec, check_spec

    path = find_file(path, "in_files", Path.cwd(), what="config")
    raw = read_toml(path)
    if "loop" in raw:         # only its [oracle]: a copy in a workdir has its explore inputs elsewhere
        oracle = raw.get("oracle")
        if not isinstance(oracle, dict) or not isinstance(oracle.get("name", "eam"), str):
            raise ConfigError(f"{path}: no [oracle] section with a name: --config needs the config whose oracle is "
                              f"the reference")
        settings = oracle.get("settings", {}) or {}
        if not isinstance(settings, dict):
            raise ConfigError(f"{path}: [oracle.settings] must be a table, got {settings!r}")
        spec = OracleSpec(str(oracle.get("name", "eam")), dict(settings))
        try:
            check_spec(spec)
        except LammpsAlError as exc:
            raise ConfigError(f"{path}: {exc}") from None
        return spec
    if "otf" in raw:          # an on-the-fly config: its fit sections (the oracle named: it labels with it)
        from lammps_al.otf.config import load_otf_config

        oracle = load_otf_config(path)[0].oracle
        return OracleSpec(oracle.name, dict(oracle.settings))
    from lammps_al.train.config import load_config

    config = load_config(path)
    if not config.oracle_named:
        raise ConfigError(f"{path} has no [oracle] section: --config needs the config whose oracle is the "
                          f"reference")
    oracle = config.oracle
    return OracleSpec(oracle.name, dict(oracle.settings))


def run(args) -> int:
    if args.nprocs < 1:
        raise ConfigError(f"--nprocs must be >= 1, got {args.nprocs}")
    melting = None if args.no_melting else Coexistence(nprocs=args.nprocs, t_guess=args.t_guess)
    potential, cache, output = args.potential, args.held_out_cache, args.output
    reference = None
    if potential.is_dir():
        history = read_marker(potential, History)
        if history is None or not history.final_potential:
            raise ConfigError(f"{potential} is a folder but not a finished loop's workdir (no final potential in "
                              f"{potential / 'history.json'}); give a .npz file or run the loop to its end")
        cache = cache or potential / "held_out.extxyz"
        output = output or potential / "validation.json"
        reference, t_guess = loop_reference(cache)
        copy = potential / CONFIG_COPY
        if args.config is not None and copy.is_file() and config_oracle(args.config) != config_oracle(copy):
            # another oracle than the loop's: the loop's held-out set and melting point are not its own
            reference, t_guess, output = None, None, args.output
            cache = args.held_out_cache
        elif reference is None and args.config is None and copy.is_file():
            args.config = copy                       # the loop's own [oracle]
        if melting is not None and t_guess:
            melting = dataclasses.replace(melting, t_guess=t_guess, retry_shift=0.15 * t_guess)
        potential = Path(history.final_potential)
    if args.seeds < 1:
        raise ConfigError(f"--seeds must be >= 1, got {args.seeds}")
    oracle = config_oracle(args.config) if args.config is not None else None
    if oracle is not None and cache is None and args.output is not None:
        cache = Path(args.output).with_name("held_out.extxyz")   # the oracle's own held-out set, made once
    report = validate(potential, held_out=not args.no_held_out, held_out_cache=cache, melting=melting,
                      workdir=args.workdir, seeds=tuple(8123 + i for i in range(args.seeds)), reference=reference,
                      oracle=oracle, test_sets=tuple(args.test_set))
    for line in report_lines(report):
        print(line)
    if output:
        write_report(report, output)
        print(f"report: {output}")
    return 0
