"""SNAP descriptor settings and the reference pair potential subtracted before fitting (plain data).

Shared by both sides: inside LAMMPS (the snippets and the ML-IAP descriptor file are written from them,
the environment cutter takes its cutoff) and offline (``compute snap`` for the design matrix).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from lammps_al.core.errors import ConfigError, DatasetError


def n_bispectrum(twojmax: int) -> int:
    """Number of bispectrum components LAMMPS's SNA makes for ``twojmax`` (5, 14, 30, 55 for 2, 4, 6, 8)."""
    count = 0
    for j1 in range(twojmax + 1):
        for j2 in range(j1 + 1):
            for j in range(j1 - j2, min(twojmax, j1 + j2) + 1, 2):
                if j >= j1:
                    count += 1
    return count


@dataclass(frozen=True)
class SNAPSettings:
    """Bispectrum settings, as in a ``.snapparam`` / ML-IAP ``descriptor sna`` file.

    ``rcutfac`` and ``radelem`` (A, per element) give the pair cutoff rcutfac*(R_i + R_j); ``wj`` are the
    per-element neighbour weights; ``quadraticflag`` makes ``compute snap`` add the products B_i*B_j;
    ``chemflag`` makes the bispectrum chemistry-aware (LAMMPS's explicit multi-element SNAP, Cusentino et al.
    2020): one set of components per ordered triple of elements, nelements^3 times as many descriptors, with
    ``bnormflag`` set alike (as LAMMPS advises).
    """

    elements: tuple[str, ...]
    twojmax: int
    rcutfac: float
    radelem: tuple[float, ...]
    wj: tuple[float, ...]
    rfac0: float = 0.99363
    rmin0: float = 0.0
    bzeroflag: int = 0
    switchflag: int = 1
    quadraticflag: int = 0
    chemflag: int = 0

    def __post_init__(self):
        n = len(self.elements)
        if n == 0:
            raise ConfigError("descriptor settings name no elements")
        if len(set(self.elements)) != n:
            raise ConfigError(f"descriptor settings name an element twice: {list(self.elements)}")
        if len(self.radelem) != n or len(self.wj) != n:
            raise ConfigError(f"descriptor settings: {n} element(s) {list(self.elements)} need {n} radelem and "
                              f"{n} wj values, got {list(self.radelem)} and {list(self.wj)}")
        if isinstance(self.twojmax, bool) or not isinstance(self.twojmax, int) or self.twojmax < 0:
            raise ConfigError(f"descriptor settings: twojmax must be a non-negative integer, got {self.twojmax!r}")
        for name in ("rcutfac", "rfac0", "rmin0"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ConfigError(f"descriptor settings: {name} must be a number, got {value!r}")
        if not 0 < self.rcutfac < math.inf:
            raise ConfigError(f"descriptor settings: rcutfac must be > 0 A and finite, got {self.rcutfac}")
        if not 0 < self.rfac0 <= 1:
            raise ConfigError(f"descriptor settings: rfac0 must be in (0, 1], got {self.rfac0}")
        if not 0 <= self.rmin0 < math.inf:
            raise ConfigError(f"descriptor settings: rmin0 must be a finite distance >= 0 A, got {self.rmin0}")
        for name in ("radelem", "wj"):
            values = getattr(self, name)
            if any(isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 < v < math.inf for v in values):
                raise ConfigError(f"descriptor settings: {name} must be finite positive numbers, got {list(values)}")
        for name in ("bzeroflag", "switchflag", "quadraticflag", "chemflag"):
            if getattr(self, name) not in (0, 1) or isinstance(getattr(self, name), bool):
                raise ConfigError(f"descriptor settings: {name} must be 0 or 1, got {getattr(self, name)!r}")

    @property
    def n_triples(self) -> int:
        """Element triples the bispectrum is resolved by: nelements^3 with chemflag, else 1."""
        return len(self.elements) ** 3 if self.chemflag else 1

    @property
    def n_descriptors(self) -> int:
        """Linear bispectrum components per atom (triple-major with chemflag, as LAMMPS's SNA orders them)."""
        return n_bispectrum(self.twojmax) * self.n_triples

    def chem_keywords(self, type_elements: list[int] | None = None) -> str:
        """compute sna/snap/snad keywords of chemflag: ``chem N`` and the element index of each atom type
        (default: type i is element i), and bnormflag; "" without chemflag."""
        if not self.chemflag:
            return ""
        types = type_elements if type_elements is not None else list(range(len(self.elements)))
        return f"chem {len(self.elements)} {' '.join(str(t) for t in types)} bnormflag 1"

    @property
    def n_features(self) -> int:
        """Columns per element in compute snap's output: linear, plus quadratic products when enabled."""
        d = self.n_descriptors
        return d + d * (d + 1) // 2 if self.quadraticflag else d

    @property
    def cutoff(self) -> float:
        """The largest pair cutoff, A."""
        return 2.0 * self.rcutfac * max(self.radelem)

    def with_quadratic(self, flag: bool) -> "SNAPSettings":
        return SNAPSettings.from_dict({**self.to_dict(), "quadraticflag": int(flag)})

    def type_of(self, symbol: str) -> int:
        try:
            return self.elements.index(symbol) + 1
        except ValueError:
            raise DatasetError(f"element {symbol!r} is not in the descriptor settings' elements "
                               f"{list(self.elements)}") from None

    def compute_command(self, name: str = "snap", extra: str = "bikflag 1") -> str:
        radii = " ".join(f"{r:.10g}" for r in self.radelem)
        weights = " ".join(f"{w:.10g}" for w in self.wj)
        return (f"compute {name} all snap {self.rcutfac:.10g} {self.rfac0:.10g} {self.twojmax} {radii} {weights} "
                f"rmin0 {self.rmin0:.10g} bzeroflag {self.bzeroflag} quadraticflag {self.quadraticflag} "
                f"switchflag {self.switchflag} {self.chem_keywords()} {extra}").replace("  ", " ").strip()

    def to_dict(self) -> dict:
        d = asdict(self)
        d["elements"], d["radelem"], d["wj"] = list(self.elements), list(self.radelem), list(self.wj)
        if not self.chemflag:           # left out when off: files and hashes from before the setting are unchanged
            del d["chemflag"]
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "SNAPSettings":
        if not isinstance(d, dict):
            raise ConfigError(f"descriptor settings must be a table, got {d!r:.60}")
        allowed = set(cls.__dataclass_fields__)
        unknown = set(d) - allowed
        if unknown:
            raise ConfigError(f"unknown descriptor setting(s) {sorted(unknown)}; allowed: {sorted(allowed)}")
        missing = sorted({"elements", "twojmax", "rcutfac", "radelem", "wj"} - set(d))
        if missing:
            raise ConfigError(f"descriptor settings lack {', '.join(missing)}")
        d = dict(d)
        for key in ("elements", "radelem", "wj"):
            if isinstance(d[key], (str, int, float)):
                raise ConfigError(f"descriptor settings: {key} must be a list (one entry per element), got "
                                  f"{d[key]!r}")
            d[key] = tuple(d[key])
        from ase.data import chemical_symbols

        if any(not isinstance(e, str) or e not in chemical_symbols[1:] for e in d["elements"]):
            raise ConfigError(f"descriptor settings: elements must be chemical symbols (e.g. 'Al'), got "
                              f"{list(d['elements'])}")
        for key in ("rcutfac", "rfac0", "rmin0"):
            if isinstance(d.get(key), int) and not isinstance(d.get(key), bool):
                d[key] = float(d[key])
        return cls(**d)


@dataclass(frozen=True)
class ReferencePotential:
    """A pair potential whose energy, forces and stress are subtracted before fitting (e.g. ZBL)."""

    pair_style: str = ""
    pair_coeff: tuple[str, ...] = ()

    def commands(self, settings: SNAPSettings) -> list[str]:
        if not self.pair_style:
            return [f"pair_style zero {settings.cutoff + 0.5:.6g}", "pair_coeff * *"]
        return [f"pair_style {self.pair_style}"] + [f"pair_coeff {c}" for c in self.pair_coeff]

    @property
    def active(self) -> bool:
        return bool(self.pair_style) and not self.pair_style.startswith("zero")

    def to_dict(self) -> dict:
        return {"pair_style": self.pair_style, "pair_coeff": list(self.pair_coeff)}

    @classmethod
    def from_dict(cls, d: dict | None) -> "ReferencePotential":
        d = d or {}
        if not isinstance(d, dict) or not isinstance(d.get("pair_style", ""), str) or \
                not isinstance(d.get("pair_coeff", []), (list, tuple)) or \
                not all(isinstance(c, str) for c in d.get("pair_coeff", [])):
            raise ConfigError(f"reference potential must be a table of pair_style (a string) and pair_coeff (a list "
                              f"of strings), got {d!r:.80}")
        return cls(d.get("pair_style", ""), tuple(d.get("pair_coeff", ())))
