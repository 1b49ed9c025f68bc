"""Validation of a learned potential against the reference: crystal properties side by side
(:mod:`~lammps_al.validate.properties`), the melting point by coexistence (:mod:`~lammps_al.validate.melting`),
errors on the held-out reference MD set (:mod:`lammps_al.train.held_out`), and LAMMPS's own Ta06A example
through three pair styles (:mod:`~lammps_al.validate.regression`)."""

from __future__ import annotations

import json
from pathlib import Path

from lammps_al.core.io import atomic_write_text, json_default
from lammps_al.core.schema import to_mapping
from lammps_al.train.held_out import held_out_errors, labelled_held_out_set
from lammps_al.validate.melting import Coexistence, melting_point
from lammps_al.validate.properties import learned_pair, properties, reference_pair


def validate(potential_path: Path, held_out: bool = True, held_out_cache: Path | None = None,
             melting: Coexistence | None = Coexistence(), workdir: Path | None = None) -> dict:
    """Properties side by side; the melting point unless ``melting`` is None (runs in ``workdir``)."""
    learned_setup, reference_setup = learned_pair(potential_path), reference_pair()
    learned = properties(learned_setup)
    reference = properties(reference_setup)
    report = {"potential": str(potential_path), "learned": learned, "reference": reference,
              "relative_difference": {k: (learned[k] - reference[k]) / abs(reference[k]) for k in reference}}
    if melting is not None:
        workdir = Path(workdir) if workdir is not None else Path(potential_path).resolve().parent / "validation"
        ref = melting_point(reference_setup, workdir / "melting_reference", melting)
        guess = ref["melting_point_K"] or melting.t_guess
        mine = melting_point(learned_setup, workdir / "melting_learned", melting, t_guess=guess)
        report["melting"] = {"learned": mine, "reference": ref, "method": "solid-liquid coexistence, NPH, P=0",
                             "difference_K": (mine["melting_point_K"] - ref["melting_point_K"]
                                              if mine["melting_point_K"] and ref["melting_point_K"] else None)}
    if held_out:
        report["held_out"] = to_mapping(held_out_errors(potential_path, labelled_held_out_set(held_out_cache)))
    return report


def report_lines(report: dict) -> list[str]:
    lines = [f"validation of {report['potential']} against the reference (Mendelev EAM)",
             f"  {'property':<24s} {'learned':>12s} {'reference':>12s} {'rel. diff':>10s}"]
    for k, ref in report["reference"].items():
        lines.append(f"  {k:<24s} {report['learned'][k]:12.5g} {ref:12.5g} {report['relative_difference'][k]:+10.2%}")
    m = report.get("melting")
    if m:
        def fmt(r):
            if r["melting_point_K"] is None:
                return f"not determined: {r['error']}"
            return f"{r['melting_point_K']:.0f} +- {r['stderr_K']:.0f} K"
        a = m["reference"]["attempts"][-1]
        lines.append(f"  melting point ({a['natoms']}-atom coexistence, NPH {a['nph_ps']:.0f} ps): learned "
                     f"{fmt(m['learned'])}, reference {fmt(m['reference'])}"
                     + (f", difference {m['difference_K']:+.0f} K" if m["difference_K"] is not None else ""))
    else:
        lines.append("  melting point: not computed (--no-melting)")
    if "held_out" in report:
        h = report["held_out"]
        lines.append(f"  held-out ({h['snapshots']} reference MD snapshots, 300-1500 K, vacancy, surface, liquid): "
                     f"energy RMSE {h['energy_rmse_eV_atom'] * 1e3:.2f} meV/atom, force RMSE "
                     f"{h['force_rmse_eV_A']:.4f} eV/A, Spearman(sigma, error) {h['spearman_sigma_vs_force_error']:.2f}")
    return lines


def write_report(report: dict, path: Path) -> None:
    atomic_write_text(Path(path), json.dumps(report, indent=2, default=json_default))
