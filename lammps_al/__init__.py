"""lammps_al: active learning of machine-learned interatomic potentials inside running LAMMPS.

The folders follow the flow, imports pointing down this list and never back up:

- ``cli``: one module per ``lammps-al`` subcommand;
- ``loop``, ``validate``, ``bench``: orchestration (the active-learning loop in stage modules, validation
  against the reference, benchmarks that print ratios);
- ``inrun``: inside LAMMPS on every rank (the ML-IAP adapter, the uncertainty fix, environment cutting);
  ``train``: offline (store, oracles, labelling, descriptors, fitters, solvers, LAMMPS files, the ASE twin);
  ``executors``: where tasks run (local processes, mpi4py.futures, Parsl);
- ``models``: the model and scorer protocols and registries, SNAP models, scorers;
- ``core``: errors, config machinery, records, potential files, descriptor settings, units, paths.

``build`` obtains, patches and builds LAMMPS and stands apart.
"""

__version__ = "0.2.0"
