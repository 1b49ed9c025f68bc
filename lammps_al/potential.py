"""The plain-data potential file and what is written from it.

A potential is one ``.npz`` file read with ``allow_pickle=False``: arrays ``coefficients`` (n_elements,
1 + n_features: per element the constant energy, then the linear and, for quadratic SNAP, the quadratic
coefficients in compute snap's order) and ``covariance`` (the posterior covariance over all coefficients,
element-major, same order; absent for non-Bayesian fits), plus ``metadata``, a JSON string: elements,
descriptor settings, model kind, reference potential, noise, training-set hash, fit settings, date and
the command that made it.

From it come, by pure ``to_*_string`` functions and thin writers: the ML-IAP descriptor file, a
``.snapcoeff``/``.snapparam`` pair for native ``pair_style snap``, and two ``include``-able LAMMPS
snippets, ``NAME.mliappy.lammps`` (the Python model through ML-IAP) and ``NAME.snap.lammps`` (native).
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from lammps_al.descriptors import ReferencePotential, SNAPSettings
from lammps_al.errors import LammpsAlError

FORMAT = "lammps_al-potential"
FORMAT_VERSION = 1
MODELS = ("linear", "quadratic")


class PotentialError(LammpsAlError):
    """Raised when a potential file is missing, malformed, or inconsistent with its settings."""


@dataclass
class Potential:
    elements: tuple[str, ...]
    model: str
    descriptor: SNAPSettings
    coefficients: np.ndarray
    covariance: np.ndarray | None = None
    committee: np.ndarray | None = None          # (K, n_coefficients) posterior samples
    grade: list = field(default_factory=list)    # per element: (1 + n_features, r) MaxVol projector
    reference: ReferencePotential = field(default_factory=ReferencePotential)
    noise: dict = field(default_factory=dict)
    training_set_hash: str = ""
    settings: dict = field(default_factory=dict)
    created: str = ""
    command: str = ""
    extra: dict = field(default_factory=dict)

    def __post_init__(self):
        self.coefficients = np.atleast_2d(np.asarray(self.coefficients, dtype=float))
        if self.model not in MODELS:
            raise PotentialError(f"model must be one of {MODELS}, got {self.model!r}")
        if tuple(self.elements) != tuple(self.descriptor.elements):
            raise PotentialError(f"potential elements {list(self.elements)} differ from its descriptor "
                                 f"settings' {list(self.descriptor.elements)}")
        if bool(self.descriptor.quadraticflag) != (self.model == "quadratic"):
            raise PotentialError(f"model {self.model!r} needs descriptor quadraticflag "
                                 f"{int(self.model == 'quadratic')}, got {self.descriptor.quadraticflag}")
        want = (len(self.elements), 1 + self.descriptor.n_features)
        if self.coefficients.shape != want:
            raise PotentialError(f"coefficients have shape {self.coefficients.shape}, expected {want} "
                                 f"({len(self.elements)} element(s) x (1 + {self.descriptor.n_features} features))")
        if self.covariance is not None:
            self.covariance = np.asarray(self.covariance, dtype=float)
            p = self.coefficients.size
            if self.covariance.shape != (p, p):
                raise PotentialError(f"covariance has shape {self.covariance.shape}, expected ({p}, {p}) for "
                                     f"{p} coefficients")

        if self.committee is not None:
            self.committee = np.atleast_2d(np.asarray(self.committee, dtype=float))
            if self.committee.shape[1] != self.coefficients.size:
                raise PotentialError(f"committee has {self.committee.shape[1]} coefficients per member, expected "
                                     f"{self.coefficients.size}")
        self.grade = [np.asarray(g, dtype=float) for g in self.grade]
        if self.grade and (len(self.grade) != len(self.elements)
                           or any(g.shape[0] != self.coefficients.shape[1] for g in self.grade)):
            raise PotentialError(f"grade projectors have shapes {[g.shape for g in self.grade]}, expected one per "
                                 f"element with {self.coefficients.shape[1]} rows")

    @property
    def n_descriptors(self) -> int:
        return self.descriptor.n_descriptors

    def metadata(self) -> dict:
        return {"format": FORMAT, "format_version": FORMAT_VERSION, "elements": list(self.elements),
                "model": self.model, "descriptor": self.descriptor.to_dict(),
                "reference": self.reference.to_dict(), "noise": self.noise,
                "training_set_hash": self.training_set_hash, "settings": self.settings,
                "created": self.created, "command": self.command, "extra": self.extra}

    def content_hash(self) -> str:
        import hashlib

        h = hashlib.sha256(json.dumps({k: v for k, v in self.metadata().items() if k not in ("created", "command")},
                                      sort_keys=True, default=str).encode())
        h.update(np.ascontiguousarray(self.coefficients).tobytes())
        return h.hexdigest()[:16]


def now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()


def command_line() -> str:
    return " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]) if sys.argv else ""


# ---- the plain-data file ---------------------------------------------------------------------------

def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file and a rename: never a half-written file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def save(potential: Potential, path: Path) -> None:
    import io

    arrays = {"coefficients": potential.coefficients,
              "metadata": np.array(json.dumps(potential.metadata(), default=_json_default))}
    if potential.covariance is not None:
        arrays["covariance"] = potential.covariance
    if potential.committee is not None:
        arrays["committee"] = potential.committee
    for e, g in enumerate(potential.grade):
        arrays[f"grade_{e}"] = g
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    atomic_write_bytes(Path(path), buf.getvalue())


def _json_default(obj):
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"cannot store {type(obj).__name__} in potential metadata")


def load(path: str | Path) -> Potential:
    """Read a potential file; never unpickles anything."""
    path = Path(path)
    if not path.is_file():
        raise PotentialError(f"potential file {path} does not exist (expected a .npz written by lammps-al fit)")
    try:
        with np.load(path, allow_pickle=False) as data:
            meta = json.loads(str(data["metadata"]))
            coefficients = np.array(data["coefficients"])
            covariance = np.array(data["covariance"]) if "covariance" in data.files else None
            committee = np.array(data["committee"]) if "committee" in data.files else None
            grade = [np.array(data[f"grade_{e}"]) for e in range(len(meta.get("elements", [])))
                     if f"grade_{e}" in data.files]
    except (ValueError, OSError, KeyError, json.JSONDecodeError) as exc:
        raise PotentialError(f"{path} is not a lammps_al potential file: {exc}") from exc
    if meta.get("format") != FORMAT:
        raise PotentialError(f"{path}: metadata format is {meta.get('format')!r}, expected {FORMAT!r}")
    if meta.get("format_version", 0) > FORMAT_VERSION:
        raise PotentialError(f"{path}: format version {meta.get('format_version')} is newer than this "
                             f"lammps_al reads ({FORMAT_VERSION}); upgrade lammps_al")
    try:
        descriptor = SNAPSettings.from_dict(meta["descriptor"])
        ref = meta.get("reference") or {}
        reference = ReferencePotential(ref.get("pair_style", ""), tuple(ref.get("pair_coeff", ())))
        return Potential(elements=tuple(meta["elements"]), model=meta["model"], descriptor=descriptor,
                         coefficients=coefficients, covariance=covariance, committee=committee, grade=grade,
                         reference=reference,
                         noise=meta.get("noise", {}), training_set_hash=meta.get("training_set_hash", ""),
                         settings=meta.get("settings", {}), created=meta.get("created", ""),
                         command=meta.get("command", ""), extra=meta.get("extra", {}))
    except LammpsAlError as exc:
        raise PotentialError(f"{path}: {exc}") from exc
    except (KeyError, TypeError) as exc:
        raise PotentialError(f"{path}: metadata lacks or mangles {exc}") from exc


# ---- LAMMPS files -----------------------------------------------------------------------------------

def provenance_lines(p: Potential, name: str) -> list[str]:
    return [f"lammps_al {p.model} SNAP potential {name} for {' '.join(p.elements)}",
            f"created {p.created} by: {p.command}",
            f"training set {p.training_set_hash}; potential hash {p.content_hash()}"]


def to_snapparam_string(p: Potential, name: str = "potential") -> str:
    d = p.descriptor
    head = "".join(f"# {line}\n" for line in provenance_lines(p, name))
    return (f"{head}\nrcutfac {d.rcutfac:.17g}\ntwojmax {d.twojmax}\nrfac0 {d.rfac0:.17g}\nrmin0 {d.rmin0:.17g}\n"
            f"bzeroflag {d.bzeroflag}\nquadraticflag {d.quadraticflag}\nswitchflag {d.switchflag}\n")


def to_snapcoeff_string(p: Potential, name: str = "potential") -> str:
    d = p.descriptor
    lines = [f"# {line}" for line in provenance_lines(p, name)]
    lines += ["", f"{len(p.elements)} {p.coefficients.shape[1]}"]
    for e, element in enumerate(p.elements):
        lines.append(f"{element} {d.radelem[e]:.17g} {d.wj[e]:.17g}")
        lines += [f"{c:.17g}" for c in p.coefficients[e]]
    return "\n".join(lines) + "\n"


def to_mliap_descriptor_string(p: Potential, name: str = "potential") -> str:
    d = p.descriptor
    head = "".join(f"# {line}\n" for line in provenance_lines(p, name))
    return (f"{head}\nrcutfac {d.rcutfac:.17g}\ntwojmax {d.twojmax}\nnelems {len(p.elements)}\n"
            f"elems {' '.join(p.elements)}\nradelems {' '.join(f'{r:.17g}' for r in d.radelem)}\n"
            f"welems {' '.join(f'{w:.17g}' for w in d.wj)}\nrfac0 {d.rfac0:.17g}\nrmin0 {d.rmin0:.17g}\n"
            f"bzeroflag {d.bzeroflag}\nswitchflag {d.switchflag}\n")


def _pair_lines(p: Potential, main_style: str, main_coeff: str) -> list[str]:
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
    parts = " ".join(kept)
    lines = [f"pair_style hybrid/overlay {parts} {main_style}"]
    for coeff in p.reference.pair_coeff:
        words = coeff.split()
        if not hybrid:  # a plain reference style needs its name in hybrid/overlay's pair_coeff
            words = words[:2] + [tokens[0]] + words[2:]
        if len(words) > 2 and words[2] == "zero":
            continue
        lines.append("pair_coeff " + " ".join(words))
    style_word = main_style.split()[0]
    lines.append(f"pair_coeff * * {style_word} {main_coeff}")
    return lines


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def scoring_variables(p: Potential) -> str:
    from lammps_al.uncertainty import default_scorer

    return (f"variable lal_scorer index {default_scorer(p)}      # per-atom uncertainty: bayes, committee, grade "
            f"or none\n"
            "variable lal_score_every index 10    # score every N steps (and at step 0)\n"
            "fix lal_sigma all property/atom d_lal_sigma\n")
SCORING_OUTPUT = ("compute lal_sigma_atom all property/atom d_lal_sigma\n"
                  "compute lal_max_sigma all reduce max c_lal_sigma_atom\n")


def _check_lines(p: Potential, name: str, descriptor: bool) -> str:
    desc = f"${{lal_potdir}}/{name}.mliap.descriptor" if descriptor else "none"
    return (f"variable lal_elements index \"{' '.join(p.elements)}\"   # element of each atom type, in order\n"
            f"python lal_check_potential input 4 SELF ${{lal_potdir}}/{name}.npz {desc} v_lal_elements format "
            f"psss here \"from lammps_al.models.mliap import check_potential as lal_check_potential\"\n"
            f"python lal_check_potential invoke\n")


def to_snap_snippet_string(p: Potential, name: str, potdir: str) -> str:
    """Native pair_style snap for the forces; descriptors (compute sna/atom) only on scoring steps."""
    d = p.descriptor
    head = "".join(f"# {line}\n" for line in provenance_lines(p, name))
    body = _pair_lines(p, "snap", f"${{lal_potdir}}/{name}.snapcoeff ${{lal_potdir}}/{name}.snapparam "
                                  f"${{lal_elements}}")
    radii = " ".join(f"{r:.17g}" for r in d.radelem)
    weights = " ".join(f"{w:.17g}" for w in d.wj)
    sna = (f"compute lal_sna all sna/atom {d.rcutfac:.17g} {d.rfac0:.17g} {d.twojmax} {radii} {weights} "
           f"rmin0 {d.rmin0:.17g} bzeroflag {d.bzeroflag} switchflag {d.switchflag}\n")
    scoring = (sna + f"python lal_setup_native input 4 SELF ${{lal_potdir}}/{name}.npz ${{lal_scorer}} "
               f"${{lal_score_every}} format pssi here "
               f"\"from lammps_al.models.mliap import setup_native as lal_setup_native\"\n"
               "python lal_setup_native invoke\n"
               "python source here \"from lammps_al.models.mliap import score_native as lal_score_native\"\n"
               "fix lal_score all python/invoke ${lal_score_every} post_force lal_score_native\n")
    return (f"{head}# native pair_style snap for forces; per-atom uncertainty d_lal_sigma from compute sna/atom on\n"
            f"# scoring steps. The atom types must map to {' '.join(p.elements)} in order. Needs the venv active.\n"
            f"variable lal_potdir index {potdir}\n" + scoring_variables(p) + _check_lines(p, name, False)
            + "\n".join(body) + "\n" + scoring
            + SCORING_OUTPUT)


def to_mliappy_snippet_string(p: Potential, name: str, potdir: str) -> str:
    """The Python model through ML-IAP; it writes d_lal_sigma itself on scoring steps."""
    head = "".join(f"# {line}\n" for line in provenance_lines(p, name))
    body = _pair_lines(p, "mliap model mliappy LATER descriptor sna ${lal_potdir}/" + f"{name}.mliap.descriptor",
                       "${lal_elements}")
    loader = (f"python lal_load_potential input 5 SELF ${{lal_potdir}}/{name}.npz "
              f"${{lal_potdir}}/{name}.mliap.descriptor ${{lal_scorer}} ${{lal_score_every}} format psssi here "
              f"\"from lammps_al.models.mliap import load_potential as lal_load_potential\"\n"
              f"python lal_load_potential invoke\n")
    return (f"{head}# the Python {p.model} SNAP model through ML-IAP, per-atom uncertainty in d_lal_sigma\n"
            f"# (needs the venv active)\n"
            f"variable lal_potdir index {potdir}\n" + scoring_variables(p) + _check_lines(p, name, True)
            + "\n".join(body) + "\n" + loader
            + SCORING_OUTPUT)


def write_all(p: Potential, directory: Path, name: str, potdir_in_snippet: str | None = None) -> dict[str, Path]:
    """Write the potential file, its LAMMPS companions and snippets into ``directory``; return the paths."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    potdir = potdir_in_snippet if potdir_in_snippet is not None else str(directory)
    paths = {
        "potential": directory / f"{name}.npz",
        "snapcoeff": directory / f"{name}.snapcoeff",
        "snapparam": directory / f"{name}.snapparam",
        "descriptor": directory / f"{name}.mliap.descriptor",
        "snippet_mliappy": directory / f"{name}.mliappy.lammps",
        "snippet_snap": directory / f"{name}.snap.lammps",
    }
    save(p, paths["potential"])
    atomic_write_text(paths["snapcoeff"], to_snapcoeff_string(p, name))
    atomic_write_text(paths["snapparam"], to_snapparam_string(p, name))
    atomic_write_text(paths["descriptor"], to_mliap_descriptor_string(p, name))
    atomic_write_text(paths["snippet_mliappy"], to_mliappy_snippet_string(p, name, potdir))
    atomic_write_text(paths["snippet_snap"], to_snap_snippet_string(p, name, potdir))
    return paths
