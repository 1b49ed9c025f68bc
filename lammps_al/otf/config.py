"""The on-the-fly learning config: a fit config's ``[oracle]``, ``[fit]`` (Bayesian solver), ``[groups]`` and
``[reference]``, plus ``[otf]``::

    [otf]
    target = 0.05            # trajectory-averaged error (the scorer's units: eV/A for bayes_force) to stop at
    converge_ps = 2.0        # ... for this much simulated time
    start = "minimal"        # the starting set labelled when the store is empty ("none": the store must hold
                             #   labels already)
    reoptimise_every = 5     # labels between re-maximisations of the evidence
    cx = 0.2                 # flag threshold = max(3 target, (1 + cx) x mean max-sigma of the last `window`
    window = 20              #   scoring steps)
    max_labels = 400         # learning stops after this many labels
    halt_factor = 20         # the run stops cleanly at 20 x target when the oracle could not label it
    crystal_tolerance = 0.05 # label the strained / vacancy cells of the model's crystal when 2 posterior std of
                             #   C11/C12/C44 / the vacancy energy exceed this (relative); 0: no crystal check
    potential_name = "otf"   # LAL_OTF_DIR/potential/NAME.npz, written after every update
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from lammps_al.core.config import read_toml, section
from lammps_al.core.errors import ConfigError
from lammps_al.train.config import Config, config_from_dict


@dataclass(frozen=True)
class OTFSettings:
    target: float = 0.0
    converge_ps: float = 2.0
    start: Literal["minimal", "small", "none"] = "minimal"
    reoptimise_every: int = 5
    cx: float = 0.2
    window: int = 20
    max_labels: int = 400
    halt_factor: float = 20.0        # stop the run cleanly at halt_factor x target when nothing could be learnt
    potential_name: str = "otf"
    group: str = "otf"
    crystal_tolerance: float = 0.05  # relative; the crystal check (lammps_al.train.crystal), 0 off

    def __post_init__(self):
        if not self.target > 0:
            raise ConfigError(f"[otf] target must be > 0 (the trajectory-averaged error to learn down to, in the "
                              f"scorer's units: eV/A for bayes_force), got {self.target}")
        if not self.converge_ps > 0:
            raise ConfigError(f"[otf] converge_ps must be > 0 ps, got {self.converge_ps}")
        for name in ("reoptimise_every", "window", "max_labels"):
            if getattr(self, name) < 1:
                raise ConfigError(f"[otf] {name} must be >= 1, got {getattr(self, name)}")
        if not self.halt_factor > 3:
            raise ConfigError(f"[otf] halt_factor must be > 3 (the flag threshold is at least 3 x target), got "
                              f"{self.halt_factor}")
        if not 0 <= self.crystal_tolerance < 1:
            raise ConfigError(f"[otf] crystal_tolerance must be in [0, 1) (twice the relative posterior std of "
                              f"C11/C12/C44 and the vacancy energy above which their cells are labelled; 0: no "
                              f"check), got {self.crystal_tolerance}")
        if not self.cx >= 0:
            raise ConfigError(f"[otf] cx must be >= 0, got {self.cx}")
        if not self.potential_name or "/" in self.potential_name:
            raise ConfigError(f"[otf] potential_name must be a file stem, got {self.potential_name!r}")

    @property
    def flag_floor(self) -> float:
        return 3.0 * self.target


def load_otf_config(path: Path) -> tuple[Config, OTFSettings]:
    """The fit sections and [otf] of ``path``, checked (the oracle named and its settings, a Bayesian solver)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"on-the-fly config {path} does not exist (-var lal_otf_config FILE)")
    raw = read_toml(path)
    otf = section(OTFSettings, raw.pop("otf", {}) or {}, "otf", path)
    if "oracle" not in raw:
        raise ConfigError(f"{path} has no [oracle] section: on-the-fly learning labels with the oracle it names "
                          f"(e.g. [oracle] name = \"eam\")")
    config = config_from_dict(raw, path)
    if config.fit.solver != "bayes":
        raise ConfigError(f"{path}: [fit] solver = {config.fit.solver!r}: on-the-fly learning updates a Bayesian "
                          f"posterior; set solver = \"bayes\"")
    if config.fit.outlier_force_scale:
        raise ConfigError(f"{path}: [fit] outlier_force_scale = {config.fit.outlier_force_scale}: it weighs each "
                          f"label against the median of the whole training set, which changes as labels arrive, "
                          f"while on-the-fly learning adds each label's rows once; remove it (or set 0)")
    return config, otf
