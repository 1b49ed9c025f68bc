"""Models and per-atom uncertainties: the protocols and registries (:mod:`lammps_al.models.registry`),
linear and quadratic SNAP (:mod:`lammps_al.models.snap`), the built-in scorers bayes, committee and grade
(:mod:`lammps_al.models.scorers`). Plain numpy: no LAMMPS, no MPI; both sides use them."""

from lammps_al.models.registry import (FitProducts, Model, Scorer, default_scorer, make_scorer, model_class, model_for,
                                        register_model, register_scorer, scorer_class)

__all__ = ["FitProducts", "Model", "Scorer", "default_scorer", "make_scorer", "model_class", "model_for",
           "register_model", "register_scorer", "scorer_class"]
