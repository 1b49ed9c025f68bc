"""lammps_al: active learning of machine-learned interatomic potentials inside running LAMMPS."""

__version__ = "0.1.0"
