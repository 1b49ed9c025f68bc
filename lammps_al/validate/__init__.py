"""Validation of a learned potential against the reference: crystal properties side by side
(:mod:`~lammps_al.validate.properties`), the melting point by coexistence (:mod:`lammps_al.train.melting`),
errors on the held-out reference MD set (:mod:`lammps_al.train.held_out`), and LAMMPS's own Ta06A example
through three pair styles (:mod:`~lammps_al.validate.regression`)."""

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
from lammps_al.validate.properties import PairSetup, learned_pair, properties, reference_pair


def validate(potential_path: Path, held_out: bool = True, held_out_cache: Path | None = None,
             melting: Coexistence | None = Coexistence(), workdir: Path | None = None,
             seeds: tuple[int, ...] = (8123, 8124, 8125), reference_seeds: tuple[int, ...] = (8123, 8124, 8125, 8126,
                                                                                            8127),
             reference: PairSetup | None = None) -> dict:
    """Properties side by side; the melting point unless ``melting`` is None (runs in ``workdir``): the mean
    of independent coexistence runs, ``seeds`` for the learned potential and ``reference_seeds`` for the
    reference, each with the spread between its runs. ``reference``: the pair setup to compare with (default
    Mendelev's Al EAM); its element is the one whose properties are computed."""
    reference_setup = reference or reference_pair()
    learned_setup = learned_pair(potential_path)
    if learned_setup.element != reference_setup.element:
        raise ConfigError(f"{potential_path} is a potential for {learned_setup.element}, the reference "
                          f"{reference_setup.name} is one for {reference_setup.element}: validate against a "
                          f"reference of the same element")
    learned = properties(learned_setup)
    reference = properties(reference_setup)
    report = {"potential": str(potential_path), "reference_potential": reference_setup.name,
              "element": reference_setup.element, "learned": learned, "reference": reference,
              "relative_difference": {k: (learned[k] - reference[k]) / abs(reference[k]) for k in reference}}
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
        report["held_out"] = to_mapping(held_out_errors(potential_path, labelled_held_out_set(held_out_cache)))
    return report


def report_lines(report: dict) -> list[str]:
    lines = [f"validation of {report['potential']} against the {report.get('reference_potential', 'reference')}",
             f"  {'property':<24s} {'learned':>12s} {'reference':>12s} {'rel. diff':>10s}"]
    for k, ref in report["reference"].items():
        lines.append(f"  {k:<24s} {report['learned'][k]:12.5g} {ref:12.5g} {report['relative_difference'][k]:+10.2%}")
    m = report.get("melting")
    if m:
        def fmt(r):
            if r["melting_point_K"] is None:
                return "not determined (no solid-liquid interface survived)"
            spread = f", spread {r['spread_K']:.0f} K" if r["spread_K"] is not None else ""
            return f"{r['melting_point_K']:.0f} +- {r['stderr_K'] or 0:.0f} K ({r['runs_ok']} seeds{spread})"
        lines.append(f"  melting point ({m['natoms']}-atom coexistence, NPH {m['nph_ps']:.0f} ps): learned "
                     f"{fmt(m['learned'])}, reference {fmt(m['reference'])}"
                     + (f", difference {m['difference_K']:+.0f} +- {m['difference_error_K']:.0f} K"
                        if m["difference_K"] is not None else ""))
    else:
        lines.append("  melting point: not computed (--no-melting)")
    if "held_out" in report:
        h = report["held_out"]
        lines.append(f"  held-out ({h['snapshots']} reference MD snapshots: crystal 0.33-0.95 Tm, vacancy, slab, "
                     f"liquid 1.2-1.75 Tm): "
                     f"energy RMSE {h['energy_rmse_eV_atom'] * 1e3:.2f} meV/atom, force RMSE "
                     f"{h['force_rmse_eV_A']:.4f} eV/A, Spearman(sigma, error) "
                     f"{h['spearman_sigma_vs_force_error']:.2f}")
    return lines


def write_report(report: dict, path: Path) -> None:
    atomic_write_text(Path(path), json.dumps(report, indent=2, default=json_default))
