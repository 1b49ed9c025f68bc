"""Offline: labelled data and stores, reference oracles and labelling, descriptors and the design matrix
(LAMMPS's ``compute snap``), solvers, one fitter per model kind, the refit pipeline, the LAMMPS files
written from a potential, starting structures and the ASE twin of a potential."""
