"""Validation of a learned potential against the reference: crystal properties side by side
(:mod:`~lammps_al.validate.properties`), the melting point by coexistence (:mod:`lammps_al.train.melting`),
errors on the held-out reference MD set (:mod:`lammps_al.train.held_out`), and LAMMPS's own Ta06A example
through three pair styles (:mod:`~lammps_al.validate.regression`).

The reference is the oracle: an oracle LAMMPS can run is compared property by property in converged cells; for
any other ASE calculator (DFT) the oracle and the learned potential are compared in cells the oracle can afford
(:mod:`~lammps_al.validate.small_cells`), with the learned potential's converged values beside them. Measured
values (:mod:`~lammps_al.validate.experiment`) are a third column. A binary potential gets its alloy's
properties too (:mod:`~lammps_al.validate.alloy`), the properties above being those of its first element."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from lammps_al.core.elements import element_data
from lammps_al.core.errors import ConfigError
from lammps_al.core.io import atomic_write_text, json_default
from lammps_al.core.schema import to_mapping
from lammps_al.train.held_out import held_out_errors, labelled_held_out_set
from lammps_al.train.melting import Coexistence, melting_statistics
from lammps_al.validate.experiment import experiment
from lammps_al.validate.properties import PairSetup, learned_pair, properties, reference_pair


def validate(potential_path: Path, held_out: bool = True, held_out_cache: Path | None = None,
             melting: Coexistence | None = Coexistence(), workdir: Path | None = None,
             seeds: tuple[int, ...] = (8123, 8124, 8125), reference_seeds: tuple[int, ...] = (8123, 8124, 8125, 8126,
                                                                                            8127),
             reference: PairSetup | None = None, oracle=None, test_sets: tuple[Path, ...] = ()) -> dict:
    """Properties side by side; the melting point unless ``melting`` is None (runs in ``workdir``): the mean
    of independent coexistence runs, ``seeds`` for the learned potential and ``reference_seeds`` for the
    reference, each with the spread between its runs. ``reference``: the pair setup to compare with (default
    Mendelev's Al EAM); its element is the one whose properties are computed. ``oracle`` (an OracleSpec, a
    config's ``[oracle]``) replaces ``reference``: as its pair setup when LAMMPS can run it, else through
    small cells computed by the oracle itself. ``test_sets``: labelled files from another source (DFT by another
    code, say) to give the potential's errors on, with the systematic energy offset."""
    from lammps_al.train.held_out import score_test_set

    scores = [score_test_set(potential_path, path) for path in test_sets]    # seconds: a bad file fails first
    report = _validate(potential_path, held_out, held_out_cache, melting, workdir, seeds, reference_seeds,
                       reference, oracle)
    if scores:
        report["test_sets"] = scores
    return report


def _validate(potential_path, held_out, held_out_cache, melting, workdir, seeds, reference_seeds, reference,
              oracle) -> dict:
    learned_setup = learned_pair(potential_path)
    held_out_set = None
    if oracle is not None:
        from lammps_al.train.lammps_calc import oracle_pair

        reference = oracle_pair(oracle)
        if reference is None:
            return validate_small_cells(potential_path, oracle, held_out_cache if held_out else None, melting,
                                        workdir, seeds)
        if held_out and (held_out_cache is None or not Path(held_out_cache).is_file()):
            from lammps_al.train.held_out import reference_plan      # the oracle's own set, made once

            cache_dir = Path(held_out_cache).parent if held_out_cache is not None else None
            held_out_set = labelled_held_out_set(held_out_cache, reference_plan(oracle, learned_setup.elements,
                                                                                cache_dir), oracle)
    reference_setup = reference or reference_pair()
    if learned_setup.element != reference_setup.element:
        raise ConfigError(f"{potential_path} is a potential for {learned_setup.element}, the reference "
                          f"{reference_setup.name} is one for {reference_setup.element}: validate against a "
                          f"reference of the same element")
    if len(learned_setup.elements) > 1 and learned_setup.elements != reference_setup.elements[:len(learned_setup.elements)]:
        raise ConfigError(f"{potential_path} is a potential for {list(learned_setup.elements)}, the reference "
                          f"{reference_setup.name} maps its atom types to {list(reference_setup.elements)}: give a "
                          f"reference ([oracle.settings] elements) with the same elements in the same order")
    learned = properties(learned_setup)
    reference = properties(reference_setup)
    report = {"potential": str(potential_path), "reference_potential": reference_setup.name,
              "element": reference_setup.element, "learned": learned, "reference": reference,
              "relative_difference": {k: (learned[k] - reference[k]) / abs(reference[k]) for k in reference},
              "experiment": experiment(reference_setup.element)}
    if len(learned_setup.elements) == 2:
        report["alloy"] = alloy_report(learned_setup, reference_setup)
    if melting is not None:
        workdir = Path(workdir) if workdir is not None else Path(potential_path).resolve().parent / "validation"
        mass = element_data(reference_setup.element).mass
        ref = melting_statistics(reference_setup, workdir / "melting_reference", reference_seeds, melting,
                                 lattice={"lattice": "fcc", "a": reference["lattice_constant_A"], "mass": mass})
        guess = ref["melting_point_K"] or melting.t_guess
        mine = melting_statistics(learned_setup, workdir / "melting_learned", seeds, melting, t_guess=guess,
                                  lattice={"lattice": "fcc", "a": learned["lattice_constant_A"], "mass": mass})
        both = mine["melting_point_K"] is not None and ref["melting_point_K"] is not None
        report["melting"] = {"learned": mine, "reference": ref, "method": "solid-liquid coexistence, NPH, P=0",
                             "natoms": 4 * melting.nx * melting.nx * melting.nz,
                             "nph_ps": melting.steps_nph * melting.dt, "averaged_ps": melting.steps_avg * melting.dt,
                             "difference_K": mine["melting_point_K"] - ref["melting_point_K"] if both else None,
                             "difference_error_K": float(np.hypot(mine["stderr_K"] or 0.0, ref["stderr_K"] or 0.0))
                             if both else None}
    if held_out:
        snapshots = held_out_set if held_out_set is not None else labelled_held_out_set(held_out_cache)
        report["held_out"] = to_mapping(held_out_errors(potential_path, snapshots))
    return report


def alloy_report(learned_setup: PairSetup, reference_setup: PairSetup) -> dict:
    """A binary's properties (:mod:`lammps_al.validate.alloy`) by both potentials, and their differences
    (absolute: formation and mixing energies are near zero)."""
    from lammps_al.validate.alloy import alloy_properties

    learned = alloy_properties(learned_setup)
    reference = alloy_properties(reference_setup)
    return {"learned": learned, "reference": reference,
            "difference": {k: learned[k] - reference[k] for k in reference},
            "relative_difference": {k: (learned[k] - reference[k]) / abs(reference[k]) for k in reference
                                    if k.startswith(("lattice", "cohesive"))}}


def validate_small_cells(potential_path: Path, oracle, held_out_cache: Path | None, melting: Coexistence | None,
                         workdir: Path | None, seeds: tuple[int, ...]) -> dict:
    """Validation against an oracle LAMMPS cannot run: the properties small cells allow, by the oracle and by
    the learned potential's ASE twin in the same cells; the learned potential's properties in converged cells
    and its melting point; its errors on the held-out set when one labelled by the oracle exists."""
    from lammps_al.train.calculator import SNAPCalculator
    from lammps_al.train.oracles import make_calculator
    from lammps_al.validate.small_cells import small_cell_properties

    learned_setup = learned_pair(potential_path)
    element = learned_setup.element
    a_guess = element_data(element).fcc_a
    oracle_values = small_cell_properties(lambda: make_calculator(oracle), element, a_guess)
    learned_small = small_cell_properties(lambda: SNAPCalculator(potential_path), element,
                                          oracle_values["lattice_constant_A"])
    converged = properties(learned_setup)
    skipped = oracle_values.pop("skipped")
    cells = oracle_values.pop("cells")
    warnings = [f"oracle: {w}" for w in oracle_values.pop("warnings", [])]
    warnings += [f"learned: {w}" for w in learned_small.pop("warnings", [])]
    learned_small.pop("skipped"), learned_small.pop("cells")
    reference = {k: v for k, v in oracle_values.items()}
    learned = {k: learned_small[k] for k in reference if k in learned_small}
    report = {"potential": str(potential_path), "reference_potential": f"oracle {oracle.name} (small cells)",
              "element": element, "mode": "small cells", "cells": cells, "skipped": skipped, "warnings": warnings,
              "learned": learned, "reference": reference, "learned_converged": converged,
              "relative_difference": {k: (learned[k] - reference[k]) / abs(reference[k]) for k in reference},
              "experiment": experiment(element)}
    if melting is not None:
        workdir = Path(workdir) if workdir is not None else Path(potential_path).resolve().parent / "validation"
        mine = melting_statistics(learned_setup, workdir / "melting_learned", seeds, melting,
                                  lattice={"lattice": "fcc", "a": converged["lattice_constant_A"],
                                           "mass": element_data(element).mass})
        report["melting"] = {"learned": mine, "reference": None, "method": "solid-liquid coexistence, NPH, P=0",
                             "natoms": 4 * melting.nx * melting.nx * melting.nz,
                             "nph_ps": melting.steps_nph * melting.dt, "averaged_ps": melting.steps_avg * melting.dt,
                             "difference_K": None, "difference_error_K": None}
    plan = Path(held_out_cache).with_suffix(".plan.json") if held_out_cache is not None else None
    if plan is not None and plan.is_file() and Path(held_out_cache).is_file() and \
            json.loads(plan.read_text()).get("kind") == "oracle-md":       # labelled by an oracle's own MD
        report["held_out"] = to_mapping(held_out_errors(potential_path, labelled_held_out_set(held_out_cache)))
    return report


def _experiment_cell(report: dict, key: str) -> str:
    entry = report.get("experiment", {}).get(key)
    return f"{entry['value']:12.5g}" if entry else f"{'-':>12s}"


def report_lines(report: dict) -> list[str]:
    small = report.get("mode") == "small cells"
    exp = bool(report.get("experiment"))
    head = f"  {'property':<24s} {'learned':>12s} {'reference':>12s} {'rel. diff':>10s}"
    if small:
        head = (f"  {'property (small cells)':<24s} {'learned':>12s} {'oracle':>12s} {'rel. diff':>10s} "
                f"{'converged':>12s}")
    lines = [f"validation of {report['potential']} against the {report.get('reference_potential', 'reference')}",
             head + (f" {'experiment':>12s}" if exp else "")]
    for k, ref in report["reference"].items():
        line = f"  {k:<24s} {report['learned'][k]:12.5g} {ref:12.5g} {report['relative_difference'][k]:+10.2%}"
        if small:
            conv = report.get("learned_converged", {}).get(k)
            line += f" {conv:12.5g}" if conv is not None else f" {'-':>12s}"
        lines.append(line + (f" {_experiment_cell(report, k)}" if exp else ""))
    if small:
        c = report.get("cells", {})
        lines.append(f"  small cells: {', '.join(f'{k} {v}' for k, v in c.items())}; 'converged': the learned "
                     f"potential in LAMMPS's converged cells")
        for k, why in report.get("skipped", {}).items():
            lines.append(f"  {k}: skipped, {why}")
        for warning in report.get("warnings", []):
            lines.append(f"  WARNING {warning}")
    if exp:
        tm = report["experiment"].get("melting_point_K")
        melt = f"; melting point {tm['value']:.1f} K" if tm else ""
        lines.append(f"  experiment: 0 K values where they depend on temperature (300 K values and every source in "
                     f"the JSON report){melt}")
    m = report.get("melting")
    if m:
        def fmt(r):
            crashed = [run["seed"] for run in r.get("runs", []) if run.get("error")]
            failed = f"; the run crashed for seed(s) {', '.join(map(str, crashed))}, see the JSON" if crashed else ""
            if r["melting_point_K"] is None:
                return f"not determined (no solid-liquid interface survived{failed})"
            spread = f", spread {r['spread_K']:.0f} K" if r["spread_K"] is not None else ""
            return f"{r['melting_point_K']:.0f} +- {r['stderr_K'] or 0:.0f} K ({r['runs_ok']} seeds{spread}{failed})"
        lines.append(f"  melting point ({m['natoms']}-atom coexistence, NPH {m['nph_ps']:.0f} ps): learned "
                     f"{fmt(m['learned'])}, reference "
                     f"{fmt(m['reference']) if m['reference'] else 'not computed (an oracle LAMMPS cannot run)'}"
                     + (f", difference {m['difference_K']:+.0f} +- {m['difference_error_K']:.0f} K"
                        if m["difference_K"] is not None else ""))
    else:
        lines.append("  melting point: not computed (--no-melting)")
    alloy = report.get("alloy")
    if alloy:
        lines.append(f"  {'alloy property':<34s} {'learned':>10s} {'reference':>10s} {'difference':>11s}")
        for k, ref in alloy["reference"].items():
            rel = alloy["relative_difference"].get(k)
            diff = f"{rel:+11.2%}" if rel is not None else f"{alloy['difference'][k] * 1e3:+8.1f} meV"
            lines.append(f"  {k:<34s} {alloy['learned'][k]:10.4f} {ref:10.4f} {diff}")
        lines.append("  (formation energies per atom against the fcc elements, relaxed; liquid mixing: 108 atoms, "
                     "NPT 1400 K, 3 ps averaged, seed-to-seed spread ~10 meV/atom)")
    if "held_out" in report:
        h = report["held_out"]
        systems = ("solid solutions, compounds, liquids across compositions"
                   if len(h.get("force_rmse_per_element") or {}) > 1
                   else "crystal 0.33-0.95 Tm, vacancy, slab, liquid 1.2-1.75 Tm")
        lines.append(f"  held-out ({h['snapshots']} reference MD snapshots: {systems}): "
                     f"energy RMSE {h['energy_rmse_eV_atom'] * 1e3:.2f} meV/atom, force RMSE "
                     f"{h['force_rmse_eV_A']:.4f} eV/A, Spearman(sigma, error) "
                     f"{h['spearman_sigma_vs_force_error']:.2f}")
        if h.get("force_rmse_per_element"):
            lines.append("    force RMSE per element: " + ", ".join(f"{e} {v:.4f}" for e, v in
                                                                  h["force_rmse_per_element"].items()) + " eV/A")
        if h.get("force_rmse_per_kind"):
            lines.append("    force RMSE per system: " + ", ".join(f"{k} {v:.4f}" for k, v in
                                                                 h["force_rmse_per_kind"].items()) + " eV/A")
    for t in report.get("test_sets", []):
        lines.append(f"  test set {t['path']} ({t['snapshots']} configurations): force RMSE "
                     f"{t['force_rmse_eV_A']:.4f} eV/A, energy RMSE {t['energy_rmse_eV_atom'] * 1e3:.2f} meV/atom, "
                     f"{t['energy_rmse_offset_removed_eV_atom'] * 1e3:.2f} once the systematic offset "
                     f"{t['energy_offset_eV_atom'] * 1e3:+.2f} meV/atom (learned - set) is removed")
        if len(t.get("force_rmse_per_kind") or {}) > 1:
            lines.append("    force RMSE per kind: " + ", ".join(f"{k} {v:.4f}" for k, v in
                                                               t["force_rmse_per_kind"].items()) + " eV/A")
    return lines


def write_report(report: dict, path: Path) -> None:
    atomic_write_text(Path(path), json.dumps(report, indent=2, default=json_default))
