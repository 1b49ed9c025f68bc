"""``python -m lammps_al.cli ...`` is ``lammps-al ...`` (for launchers that need a module, such as
``mpirun -np N python -m mpi4py.futures -m lammps_al.cli label CONFIG``)."""

import sys

from lammps_al.cli import main

if __name__ == "__main__":     # not when a worker (multiprocessing, mpi4py.futures) imports the main module
    sys.exit(main())
