"""The potential file: plain data that both sides read (``allow_pickle=False``).

A potential is one ``.npz`` file holding named arrays and ``metadata``, a JSON string:

- arrays, by the part that owns them: ``model.*`` (the model's own arrays, e.g. ``model.coefficients``),
  ``posterior.*`` (what a Bayesian fit knows, ``posterior.covariance``), and one prefix per scorer for the
  data it needs (``committee.samples``, ``grade.projector.0``, ...). Which arrays a model or scorer needs is
  declared by it (:mod:`lammps_al.models.registry`); this module only stores them, checked finite.
- metadata: format and version, elements, the model kind (``model``) and, for a model that is not built
  in, where to import it from (``model_class``, "package.module:Class"), descriptor settings, the reference
  potential, noise, training-set hash, fit settings, ``extra`` (training-score statistics and the like),
  date and command.

Version 1 files (before the model protocol: arrays ``coefficients``, ``covariance``, ``committee``,
``grade_E``) still load; they are read into the same layout.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import io
import json
import sys
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from lammps_al.core.descriptor import ReferencePotential, SNAPSettings
from lammps_al.core.errors import ConfigError, LammpsAlError, PotentialError
from lammps_al.core.io import atomic_write_bytes, json_default

FORMAT = "lammps_al-potential"
FORMAT_VERSION = 2

COEFFICIENTS = "model.coefficients"
COVARIANCE = "posterior.covariance"


@dataclass
class Potential:
    """A potential in memory: what the file holds, nothing computed."""

    elements: tuple[str, ...]
    model: str
    descriptor: SNAPSettings
    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    model_class: str = ""
    reference: ReferencePotential = field(default_factory=ReferencePotential)
    noise: dict = field(default_factory=dict)
    training_set_hash: str = ""
    settings: dict = field(default_factory=dict)
    created: str = ""
    command: str = ""
    extra: dict = field(default_factory=dict)

    def __post_init__(self):
        self.elements = tuple(self.elements)
        if self.elements != tuple(self.descriptor.elements):
            raise PotentialError(f"potential elements {list(self.elements)} differ from its descriptor settings' "
                                 f"{list(self.descriptor.elements)}")
        if not isinstance(self.model, str) or not self.model:
            raise PotentialError(f"the model kind must be a non-empty name, got {self.model!r}")
        self.arrays = {str(k): np.asarray(v, dtype=float) for k, v in self.arrays.items()}
        for name, value in self.arrays.items():
            if not np.all(np.isfinite(value)):
                bad = int(np.size(value) - np.count_nonzero(np.isfinite(value)))
                raise PotentialError(f"array {name!r} holds {bad} NaN or infinite value(s) of {np.size(value)}: "
                                     f"the fit that wrote it failed; refit")

    # ---- the arrays most parts need ----

    @property
    def coefficients(self) -> np.ndarray:
        try:
            return self.arrays[COEFFICIENTS]
        except KeyError:
            raise PotentialError(f"model {self.model!r} stores no {COEFFICIENTS}") from None

    @property
    def covariance(self) -> np.ndarray | None:
        return self.arrays.get(COVARIANCE)

    def group(self, prefix: str) -> dict[str, np.ndarray]:
        """The arrays under ``prefix.`` (the prefix removed)."""
        p = prefix + "."
        return {k[len(p):]: v for k, v in self.arrays.items() if k.startswith(p)}

    def metadata(self) -> dict:
        return {"format": FORMAT, "format_version": FORMAT_VERSION, "elements": list(self.elements),
                "model": self.model, "model_class": self.model_class, "descriptor": self.descriptor.to_dict(),
                "reference": self.reference.to_dict(), "noise": self.noise,
                "training_set_hash": self.training_set_hash, "settings": self.settings,
                "created": self.created, "command": self.command, "extra": self.extra}

    def content_hash(self) -> str:
        """Identity of what the potential computes: metadata (not date or command) and the model's arrays."""
        meta = {k: v for k, v in self.metadata().items() if k not in ("created", "command", "format_version")}
        h = hashlib.sha256(json.dumps(meta, sort_keys=True, default=json_default).encode())
        for name in sorted(k for k in self.arrays if k.startswith("model.")):
            h.update(name.encode())
            h.update(np.ascontiguousarray(self.arrays[name]).tobytes())
        return h.hexdigest()[:16]


def now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()


def command_line() -> str:
    return " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]) if sys.argv else ""


def to_bytes(potential: Potential) -> bytes:
    buf = io.BytesIO()
    arrays = {name: np.array(value, order="C") for name, value in potential.arrays.items()}   # keeps 0-d arrays 0-d
    np.savez(buf, metadata=np.array(json.dumps(potential.metadata(), default=json_default)), **arrays)
    return buf.getvalue()


def save(potential: Potential, path: Path) -> None:
    """Write the potential file atomically (a temporary file, then a rename)."""
    atomic_write_bytes(Path(path), to_bytes(potential))


_V1_ARRAYS = {"coefficients": COEFFICIENTS, "covariance": COVARIANCE, "committee": "committee.samples"}


def load(path: str | Path) -> Potential:
    """Read a potential file (format 1 or 2); never unpickles anything. Every problem is a
    :class:`PotentialError` naming the file."""
    path = Path(path)
    if not path.is_file():
        raise PotentialError(f"potential file {path} does not exist (expected a .npz written by lammps-al fit)")
    try:
        with np.load(path, allow_pickle=False) as data:
            if "metadata" not in data.files:
                raise PotentialError(f"{path} has no metadata array: it is an .npz, but not a lammps_al potential "
                                     f"file (written by lammps-al fit)")
            meta = json.loads(str(data["metadata"]))
            raw = {name: np.array(data[name]) for name in data.files if name != "metadata"}
    except PotentialError:
        raise
    except (ValueError, OSError, KeyError, EOFError, zipfile.BadZipFile, json.JSONDecodeError,
            UnicodeDecodeError) as exc:
        raise PotentialError(f"{path} is not a readable lammps_al potential file ({type(exc).__name__}: {exc}); "
                             f"it may be damaged or truncated: write it again with lammps-al fit") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        got = meta.get("format") if isinstance(meta, dict) else type(meta).__name__
        raise PotentialError(f"{path}: metadata format is {got!r}, expected {FORMAT!r}")
    version = meta.get("format_version", 0)
    if isinstance(version, bool) or not isinstance(version, int):
        raise PotentialError(f"{path}: metadata format_version must be an integer, got {version!r}; the file is "
                             f"damaged: write it again with lammps-al fit")
    if version > FORMAT_VERSION:
        raise PotentialError(f"{path}: format version {version!r} is newer than this lammps_al reads "
                             f"({FORMAT_VERSION}); upgrade lammps_al")
    if version < 2:
        arrays = {}
        for name, value in raw.items():
            if name in _V1_ARRAYS:
                arrays[_V1_ARRAYS[name]] = value
            elif name.startswith("grade_"):
                arrays[f"grade.projector.{name[len('grade_'):]}"] = value
            else:
                arrays[name] = value
    else:
        arrays = raw
    for key, kind, what in (("noise", dict, "a table"), ("settings", dict, "a table"), ("extra", dict, "a table"),
                            ("model_class", str, "a string"), ("training_set_hash", str, "a string")):
        if key in meta and not isinstance(meta[key], kind):
            raise PotentialError(f"{path}: metadata {key} must be {what}, got {meta[key]!r:.60}; the file is damaged: "
                                 f"write it again with lammps-al fit")
    try:
        return Potential(elements=tuple(meta["elements"]), model=meta["model"],
                         descriptor=SNAPSettings.from_dict(meta["descriptor"]), arrays=arrays,
                         model_class=meta.get("model_class", ""),
                         reference=ReferencePotential.from_dict(meta.get("reference")),
                         noise=meta.get("noise", {}), training_set_hash=meta.get("training_set_hash", ""),
                         settings=meta.get("settings", {}), created=meta.get("created", ""),
                         command=meta.get("command", ""), extra=meta.get("extra", {}))
    except (PotentialError, ConfigError) as exc:
        raise PotentialError(f"{path}: {exc}") from None
    except LammpsAlError:
        raise
    except (KeyError, TypeError, ValueError) as exc:
        raise PotentialError(f"{path}: metadata lacks or mangles {exc}") from None
