"""What the current model says the element is like, so that exploration inputs need nothing element-specific.

From iteration k's potential (LAMMPS, serial): fcc, bcc and hcp relaxed at zero pressure, the lowest of them
(the structure and lattice constant the exploration cells are built of), its bulk modulus and atomic volume.
The melting point the exploration temperatures are relative to comes from the model too: from the
coexistence exploration run of the previous iteration (``in_files/coexistence.in``: the temperature a
half-molten cell settles at, at constant enthalpy), else, before there is one, from the rule
Tm ~ 0.011 B V / k_B (B the bulk modulus, V the atomic volume; within about 15 % for Al, Cu, Ni, Fe, Ag, Mg, Ta
and W with experimental B and V). A coexistence run that melted completely says Tm is below its start
temperature, one that froze says above: the next coexistence run starts 10 % lower or higher
(``tm_guess``), and the exploration temperatures stay where they were.
"""

from __future__ import annotations

import logging

from lammps_al.core.elements import element_data
from lammps_al.core.errors import LammpsAlError
from lammps_al.core.records import ExploreRecord, MaterialRecord, read_marker
from lammps_al.loop.config import LoopConfig, iter_dir, potential_path
from lammps_al.train.lammps_calc import melting_rule

log = logging.getLogger(__name__)

STRUCTURES = ("fcc", "bcc", "hcp")


def material(cfg: LoopConfig, k: int) -> MaterialRecord:
    from lammps_al.train.lammps_calc import Calc, bulk_modulus, learned_pair, relaxed_crystal

    elements = list(cfg.fit.descriptor.elements)
    element = elements[0]                    # the host: its crystal is the exploration cells' matrix
    data = element_data(element)
    previous = read_marker(iter_dir(cfg.loop, k - 1), MaterialRecord) if k > 0 else None
    calc = Calc(learned_pair(potential_path(cfg.loop, k)))
    energies, crystals = {}, {}
    try:
        for structure in STRUCTURES:
            try:
                crystals[structure] = relaxed_crystal(calc, element, structure, data.volume)
                energies[structure] = crystals[structure]["energy_eV_atom"]
            except Exception as exc:  # noqa: BLE001 - an untrained model may blow a crystal up: skip it
                log.info("material: %s %s did not relax with iteration %d's potential (%s)", element, structure, k,
                         exc)
        plausible = {s: c for s, c in crystals.items()       # a crystal an untrained model collapsed is no ground state
                     if 0.5 * data.volume < c["volume_A3"] < 2 * data.volume and -15.0 < c["energy_eV_atom"] < 0.0}
        if plausible:
            best = min(plausible.values(), key=lambda c: c["energy_eV_atom"])
            structure, a0, volume = best["structure"], best["a"], best["volume_A3"]
            try:
                modulus = bulk_modulus(calc, element, structure, volume)
            except Exception:  # noqa: BLE001
                modulus = float("nan")
        else:
            structure, volume, modulus = data.structure, data.volume, float("nan")
            a0 = {"fcc": (4 * volume) ** (1 / 3), "bcc": (2 * volume) ** (1 / 3)}.get(structure, data.fcc_a)
        fcc_a = {element: plausible["fcc"]["a"] if "fcc" in plausible else data.fcc_a}
        for other in elements[1:]:           # the other elements' fcc lattice constants (Vegard's cells)
            guess = element_data(other)
            try:
                c = relaxed_crystal(calc, other, "fcc", guess.volume)
                fcc_a[other] = c["a"] if 0.5 * guess.volume < c["volume_A3"] < 2 * guess.volume else guess.fcc_a
            except Exception as exc:  # noqa: BLE001
                log.info("material: fcc %s did not relax with iteration %d's potential (%s)", other, k, exc)
                fcc_a[other] = guess.fcc_a
    finally:
        calc.close()
    if not 1.0 < modulus < 1000.0:
        modulus = previous.bulk_modulus_GPa if previous else 100.0
    tm, source, guess = melting_estimate(cfg, k, previous, modulus, volume)
    return MaterialRecord(element=element, mass=data.mass, structure=structure, a0=float(a0), volume_A3=float(volume),
                          bulk_modulus_GPa=float(modulus), energies=energies, tm_K=float(tm), tm_source=source,
                          tm_guess_K=float(guess), elements=elements,
                          masses=[element_data(e).mass for e in elements], fcc_a={e: float(a) for e, a in fcc_a.items()})


def melting_estimate(cfg: LoopConfig, k: int, previous: MaterialRecord | None, modulus: float,
                     volume: float) -> tuple[float, str, float]:
    """The melting point for iteration k's exploration, where it comes from, and the start of iteration k's
    coexistence run. A coexistence run of iteration k-1 that ended with both phases gives both. One that
    melted (froze) completely says only that its start was above (below) the model's melting point: the next
    run starts 10 % lower (higher), and the exploration keeps its melting point (a small cell may freeze or
    melt by a fluctuation; moving every exploration temperature for it would move the data)."""
    if previous is not None:
        guess = previous.tm_guess_K or previous.tm_K
        explored = read_marker(iter_dir(cfg.loop, k - 1), ExploreRecord)
        for run in (explored.runs.values() if explored else ()):
            m = run.melting
            if not m:
                continue
            if m.get("state") == "coexistence":
                t = m["temperature_K"]
                return t, f"coexistence run {run.name} of iteration {k - 1}", t
            if m.get("state") in ("melted", "frozen"):
                factor = 0.9 if m.get("state") == "melted" else 1.1
                return previous.tm_K, previous.tm_source, guess * factor
        return previous.tm_K, previous.tm_source, guess
    try:
        t = melting_rule(modulus, volume)
        return t, "rule 0.011 B V / k_B", t
    except (LammpsAlError, ValueError):
        return 1000.0, "default", 1000.0
