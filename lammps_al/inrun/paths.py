"""Where an input script finds lammps_al's shipped files, from any working folder.

The shipped inputs start with::

    python lal_paths input 2 SELF Al_quadratic.mliappy.lammps format ps here "from lammps_al.inrun.paths import define_paths as lal_paths"
    python lal_paths invoke

(``none`` for no default potential) which defines, as ``index`` variables (so ``-var NAME VALUE`` on the command line wins):

- ``lal_in_files``: the shipped ``in_files`` folder (the fix snippet is ``${lal_in_files}/lammps_al_fix.lammps``);
- ``lal_potentials``: the shipped ``potentials`` folder;
- ``potential``: the potential snippet to include, by default the named one in the shipped potentials;
- ``lal_potdir``: the folder of ``${potential}`` (where its ``.npz`` and companions are).
"""

from __future__ import annotations

from pathlib import Path

from lammps_al.core.errors import LammpsAlError
from lammps_al.core.resources import shipped_dir
from lammps_al.inrun.callbacks import fail_setup, has_variable, lammps_handle, string_variable


def define_paths(ptr, default_potential: str = "") -> None:
    lmp = lammps_handle(ptr)
    try:
        in_files, potentials = shipped_dir("in_files"), shipped_dir("potentials")
    except LammpsAlError as exc:
        fail_setup(str(exc), lmp)
    lmp.command(f"variable lal_in_files index {in_files}")
    lmp.command(f"variable lal_potentials index {potentials}")
    if default_potential and default_potential != "none":
        lmp.command(f"variable potential index {potentials / default_potential}")
    if has_variable(lmp, "potential"):
        chosen = Path(string_variable(lmp, "potential")).expanduser()
        if not chosen.is_file():
            fail_setup(f"potential snippet {chosen} does not exist (relative to {Path.cwd()}): pass an existing "
                       f"NAME.mliappy.lammps or NAME.snap.lammps with -var potential FILE", lmp)
        lmp.command(f"variable lal_potdir index {chosen.resolve().parent}")
