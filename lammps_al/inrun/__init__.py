"""What runs inside LAMMPS, on every MPI rank: the ML-IAP adapter that puts a lammps_al model and its
per-atom uncertainty into ``pair_style mliap model mliappy`` (or next to native ``pair_style snap``), the
uncertainty fix (``fix python/invoke``), cutting flagged environments, and the one way a callback fails
(:mod:`lammps_al.inrun.callbacks`)."""
