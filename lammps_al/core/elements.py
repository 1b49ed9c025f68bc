"""What lammps_al needs to know of an element before any calculation: its mass and a rough atomic volume
(from ASE's tables of reference states), to build starting structures and exploration cells. Everything
finer (lattice constant, ground-state structure, melting point) the loop finds with the model it learns."""

from __future__ import annotations

from dataclasses import dataclass

from lammps_al.core.errors import ConfigError


@dataclass(frozen=True)
class ElementData:
    symbol: str
    mass: float                 # g/mol (LAMMPS metal units)
    structure: str              # ASE's reference state: fcc, bcc, hcp, diamond, ...
    volume: float               # A^3 per atom of that reference state (a rough guess for cells)

    @property
    def fcc_a(self) -> float:
        """The fcc lattice constant of the same volume per atom, A."""
        return (4.0 * self.volume) ** (1.0 / 3.0)


def element_data(symbol: str) -> ElementData:
    from ase.data import atomic_masses, atomic_numbers, reference_states

    if symbol not in atomic_numbers:
        raise ConfigError(f"{symbol!r} is not a chemical symbol")
    z = atomic_numbers[symbol]
    state = reference_states[z] or {}
    structure, a = state.get("symmetry"), state.get("a")
    volumes = {"fcc": lambda: a**3 / 4, "bcc": lambda: a**3 / 2, "sc": lambda: a**3,
               "diamond": lambda: a**3 / 8,
               "hcp": lambda: (3**0.5 / 2) * a**2 * (a * state.get("c/a", 1.633)) / 2}
    if structure not in volumes or a is None:
        raise ConfigError(f"element {symbol}: ASE knows no crystal reference state for it ({state or 'none'}); "
                          f"lammps_al's starting structures need a metal with an fcc, bcc, hcp, sc or diamond "
                          f"reference state")
    return ElementData(symbol, float(atomic_masses[z]), structure, float(volumes[structure]()))
