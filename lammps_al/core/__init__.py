"""What both sides share: errors, the config machinery, plain-data records and potential files, descriptor
settings, units, where LAMMPS and the shipped files are. Imports nothing else of lammps_al."""
