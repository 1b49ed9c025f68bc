"""The error hierarchy of lammps_al: every error a user can cause derives from :class:`LammpsAlError`.

The command line turns one into a one-paragraph message and a non-zero exit, without a traceback unless
``--traceback`` is given; inside LAMMPS the same message stops the run on every rank. Each message names
the value, the file it came from and what would be right.

::

    LammpsAlError
      ConfigError            a config file, option or LAMMPS variable has an unknown key or impossible value
        InputScriptError     inside LAMMPS: a snippet, fix variable or potential does not fit the input script
      BuildError             LAMMPS cannot be obtained, verified, patched, configured, built or installed
        SourceError          no LAMMPS source, or one that fails its checksum
      LammpsNotReadyError    the LAMMPS in use lacks a part lammps_al needs
      PotentialError         a potential or coefficient file is missing, malformed or inconsistent
        ScorerError          a potential cannot provide the per-atom uncertainty asked for
      DatasetError           a training-data file is malformed, or a configuration lacks its labels
        StoreError           a store on disk cannot be written or read (full disk, permissions, corruption)
      DescriptorError        LAMMPS cannot compute descriptors for a configuration
      FitError               a fit cannot be done (no rows, zero weights, rank deficiency)
      OracleError            a reference oracle cannot be set up or its workers died
      ExecutorError          an executor (local processes, mpi4py.futures, Parsl) cannot run tasks
      LoopError              the loop's state on disk does not allow what was asked (resume, workdir)
      LammpsRunError         a LAMMPS run that lammps_al started ended in an error
"""


class LammpsAlError(Exception):
    """Root of all lammps_al errors. The message names the value, the file and what would be right."""


class ConfigError(LammpsAlError):
    """Raised when a configuration file, command-line option or LAMMPS variable has an unknown key, a value
    of the wrong type or an impossible value."""


class InputScriptError(ConfigError):
    """Raised inside LAMMPS (at an ``include`` of a potential snippet or of the fix) when the input script,
    its variables and the potential files do not fit together."""


class BuildError(LammpsAlError):
    """Raised when LAMMPS cannot be obtained, verified, patched, configured, built or installed."""


class SourceError(BuildError):
    """Raised when no LAMMPS source can be found or the one found fails its checksum."""


class LammpsNotReadyError(LammpsAlError):
    """Raised when the LAMMPS in use lacks a part lammps_al needs (PYTHON package, ML-IAP python)."""


class PotentialError(LammpsAlError):
    """Raised when a potential file or coefficient file is missing, malformed, or inconsistent with its
    settings."""


class ScorerError(PotentialError):
    """Raised when a potential cannot provide the scorer asked for (e.g. no posterior covariance)."""


class DatasetError(LammpsAlError):
    """Raised when a training-data file is malformed or a configuration lacks what a fit needs."""


class StoreError(DatasetError):
    """Raised when a store on disk cannot be written or read (full disk, permissions, corruption)."""


class DescriptorError(LammpsAlError):
    """Raised when LAMMPS cannot compute descriptors for a configuration (named in the message)."""


class FitError(LammpsAlError):
    """Raised when a fit cannot be done: all-zero weights, a rank-deficient system, no rows."""


class OracleError(LammpsAlError):
    """Raised when an oracle cannot be set up (unknown name, bad settings, missing package or file) or its
    worker processes died."""


class ExecutorError(LammpsAlError):
    """Raised when an executor cannot be set up or cannot run its tasks."""


class LoopError(LammpsAlError):
    """Raised when the loop's state on disk does not allow what was asked (a workdir that already holds a
    loop without --resume, a stage marker that cannot be written, a benchmark folder of another config)."""


class LammpsRunError(LammpsAlError):
    """Raised when a LAMMPS run started by lammps_al (exploration, coexistence) ends in an error."""
