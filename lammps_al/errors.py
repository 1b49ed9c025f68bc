"""The error hierarchy of lammps_al.

Every error a user can cause derives from :class:`LammpsAlError`; the command line turns it into a
one-paragraph message and a non-zero exit, without a traceback unless ``--traceback`` is given.
"""


class LammpsAlError(Exception):
    """Root of all lammps_al errors. The message names the value, the file and what would be right."""


class ConfigError(LammpsAlError):
    """Raised when a configuration file or option has an unknown key or an impossible value."""


class BuildError(LammpsAlError):
    """Raised when LAMMPS cannot be obtained, verified, patched, configured, built or installed."""


class SourceError(BuildError):
    """Raised when no LAMMPS source can be found or the one found fails its checksum."""


class LammpsNotReadyError(LammpsAlError):
    """Raised when the LAMMPS in use lacks a part lammps_al needs (PYTHON package, ML-IAP python)."""
