"""Obtaining, patching and building LAMMPS, and reporting what the LAMMPS in use can do."""
