"""The LAMMPS files written from a potential: pure ``to_*_string`` functions and a thin :func:`write_all`.

- ``NAME.npz``: the potential file itself (:mod:`lammps_al.core.potential`);
- ``NAME.mliap.descriptor``: the ML-IAP ``descriptor sna`` file;
- ``NAME.mliappy.lammps``: an ``include``-able snippet running the Python model through ML-IAP, with
  per-atom uncertainty (any model);
- for SNAP models (linear, quadratic) also ``NAME.snapcoeff``/``NAME.snapparam`` for LAMMPS's native
  ``pair_style snap`` and the snippet ``NAME.snap.lammps`` (native forces, uncertainty on scoring steps).

Every file carries a provenance header: model, elements, date, command, training-set and potential hashes.
"""

from __future__ import annotations

from pathlib import Path

from lammps_al.core.io import atomic_write_text
from lammps_al.core.potential import Potential, save
from lammps_al.models.registry import default_scorer, stamp

NATIVE_MODELS = ("linear", "quadratic")   # models LAMMPS's pair_style snap evaluates itself
ADAPTER = "lammps_al.inrun.adapter"


def provenance_lines(p: Potential, name: str) -> list[str]:
    return [f"lammps_al {p.model} potential {name} for {' '.join(p.elements)}",
            f"created {p.created} by: {p.command}",
            f"training set {p.training_set_hash}; potential hash {p.content_hash()}"]


def _header(p: Potential, name: str) -> str:
    return "".join(f"# {line}\n" for line in provenance_lines(p, name))


def to_snapparam_string(p: Potential, name: str = "potential") -> str:
    d = p.descriptor
    return (f"{_header(p, name)}\nrcutfac {d.rcutfac:.17g}\ntwojmax {d.twojmax}\nrfac0 {d.rfac0:.17g}\n"
            f"rmin0 {d.rmin0:.17g}\nbzeroflag {d.bzeroflag}\nquadraticflag {d.quadraticflag}\n"
            f"switchflag {d.switchflag}\n" + ("chemflag 1\nbnormflag 1\n" if d.chemflag else ""))


def to_snapcoeff_string(p: Potential, name: str = "potential") -> str:
    d = p.descriptor
    coefficients = p.coefficients.reshape(len(p.elements), -1)
    lines = [f"# {line}" for line in provenance_lines(p, name)]
    lines += ["", f"{len(p.elements)} {coefficients.shape[1]}"]
    for e, element in enumerate(p.elements):
        lines.append(f"{element} {d.radelem[e]:.17g} {d.wj[e]:.17g}")
        lines += [f"{c:.17g}" for c in coefficients[e]]
    return "\n".join(lines) + "\n"


def to_mliap_descriptor_string(p: Potential, name: str = "potential") -> str:
    d = p.descriptor
    return (f"{_header(p, name)}\nrcutfac {d.rcutfac:.17g}\ntwojmax {d.twojmax}\nnelems {len(p.elements)}\n"
            f"elems {' '.join(p.elements)}\nradelems {' '.join(f'{r:.17g}' for r in d.radelem)}\n"
            f"welems {' '.join(f'{w:.17g}' for w in d.wj)}\nrfac0 {d.rfac0:.17g}\nrmin0 {d.rmin0:.17g}\n"
            f"bzeroflag {d.bzeroflag}\nswitchflag {d.switchflag}\n" + ("chemflag 1\nbnormflag 1\n" if d.chemflag else ""))


def pair_lines(p: Potential, main_style: str, main_coeff: str) -> list[str]:
    """pair_style/pair_coeff lines, with the reference potential overlaid when there is one."""
    if not p.reference.active:
        return [f"pair_style {main_style}", f"pair_coeff * * {main_coeff}"]
    tokens = p.reference.pair_style.split()
    hybrid = tokens[0] in ("hybrid/overlay", "hybrid")
    if hybrid:
        tokens = tokens[1:]
    kept, i = [], 0
    while i < len(tokens):  # a 'zero CUTOFF' sub-style only gave compute snap its cutoff: drop it
        if tokens[i] == "zero":
            i += 2 if i + 1 < len(tokens) and _is_number(tokens[i + 1]) else 1
            continue
        kept.append(tokens[i])
        i += 1
    lines = [f"pair_style hybrid/overlay {' '.join(kept)} {main_style}"]
    for coeff in p.reference.pair_coeff:
        words = coeff.split()
        if not hybrid:  # a plain reference style needs its name in hybrid/overlay's pair_coeff
            words = words[:2] + [tokens[0]] + words[2:]
        if len(words) > 2 and words[2] == "zero":
            continue
        lines.append("pair_coeff " + " ".join(words))
    lines.append(f"pair_coeff * * {main_style.split()[0]} {main_coeff}")
    return lines


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _common_lines(p: Potential, name: str, potdir: str, descriptor: bool) -> str:
    """Variables, the folder lookup, the check of the potential against the input, the sigma property."""
    desc = f"${{lal_potdir}}/{name}.mliap.descriptor" if descriptor else "none"
    return (f"variable lal_potdir index {potdir}   # folder of {name}.npz (-var lal_potdir DIR to change)\n"
            f"python lal_locate input 5 SELF {name} ${{lal_potdir}} {potdir} {p.content_hash()} format pssss here "
            f"\"from {ADAPTER} import locate as lal_locate\"\n"
            "python lal_locate invoke\n"
            f"variable lal_scorer index {default_scorer(p)}      # per-atom uncertainty: bayes, committee, grade, "
            f"none or package.module:Class\n"
            "variable lal_score_every index 10    # score every N steps (and at step 0)\n"
            f"variable lal_elements index \"{' '.join(p.elements)}\"   # element of each atom type, in order\n"
            f"python lal_check_potential input 4 SELF ${{lal_potdir}}/{name}.npz {desc} v_lal_elements format "
            f"psss here \"from {ADAPTER} import check_potential as lal_check_potential\"\n"
            "python lal_check_potential invoke\n"
            "fix lal_sigma all property/atom d_lal_sigma\n")


SCORING_OUTPUT = ("compute lal_sigma_atom all property/atom d_lal_sigma\n"
                  "compute lal_max_sigma all reduce max c_lal_sigma_atom\n")


def to_snap_snippet_string(p: Potential, name: str, potdir: str) -> str:
    """Native pair_style snap for the forces; descriptors (compute sna/atom) only on scoring steps."""
    body = pair_lines(p, "snap", f"${{lal_potdir}}/{name}.snapcoeff ${{lal_potdir}}/{name}.snapparam "
                                 f"${{lal_elements}}")
    scoring = (f"python lal_setup_native input 4 SELF ${{lal_potdir}}/{name}.npz ${{lal_scorer}} "
               f"${{lal_score_every}} format pssi here \"from {ADAPTER} import setup_native as lal_setup_native\"\n"
               "python lal_setup_native invoke\n"
               f"python source here \"from {ADAPTER} import score_native as lal_score_native\"\n"
               "fix lal_score all python/invoke ${lal_score_every} post_force lal_score_native\n")
    return (f"{_header(p, name)}# native pair_style snap for forces; per-atom uncertainty d_lal_sigma from compute "
            f"sna/atom on\n# scoring steps. Atom types map to elements through lal_elements. Needs lammps_al "
            f"importable by lmp's Python.\n"
            + _common_lines(p, name, potdir, False) + "\n".join(body) + "\n" + scoring + SCORING_OUTPUT)


def to_mliappy_snippet_string(p: Potential, name: str, potdir: str) -> str:
    """The Python model through ML-IAP; it writes d_lal_sigma itself on scoring steps."""
    body = pair_lines(p, "mliap model mliappy LATER descriptor sna ${lal_potdir}/" + f"{name}.mliap.descriptor",
                      "${lal_elements}")
    loader = (f"python lal_load_potential input 5 SELF ${{lal_potdir}}/{name}.npz "
              f"${{lal_potdir}}/{name}.mliap.descriptor ${{lal_scorer}} ${{lal_score_every}} format psssi here "
              f"\"from {ADAPTER} import load_potential as lal_load_potential\"\n"
              "python lal_load_potential invoke\n")
    return (f"{_header(p, name)}# the Python {p.model} model through ML-IAP, per-atom uncertainty in d_lal_sigma\n"
            f"# (needs lammps_al importable by lmp's Python)\n"
            + _common_lines(p, name, potdir, True) + "\n".join(body) + "\n" + loader + SCORING_OUTPUT)


def write_all(p: Potential, directory: Path, name: str, potdir_in_snippet: str | None = None) -> dict[str, Path]:
    """Write the potential file, its LAMMPS companions and snippets into ``directory``; return the paths."""
    directory = Path(directory)
    stamp(p)
    potdir = potdir_in_snippet if potdir_in_snippet is not None else str(directory)
    paths = {"potential": directory / f"{name}.npz", "descriptor": directory / f"{name}.mliap.descriptor",
             "snippet_mliappy": directory / f"{name}.mliappy.lammps"}
    save(p, paths["potential"])
    atomic_write_text(paths["descriptor"], to_mliap_descriptor_string(p, name))
    atomic_write_text(paths["snippet_mliappy"], to_mliappy_snippet_string(p, name, potdir))
    if p.model in NATIVE_MODELS:
        paths.update({"snapcoeff": directory / f"{name}.snapcoeff", "snapparam": directory / f"{name}.snapparam",
                      "snippet_snap": directory / f"{name}.snap.lammps"})
        atomic_write_text(paths["snapcoeff"], to_snapcoeff_string(p, name))
        atomic_write_text(paths["snapparam"], to_snapparam_string(p, name))
        atomic_write_text(paths["snippet_snap"], to_snap_snippet_string(p, name, potdir))
    return paths
