"""Run the active-learning loop: explore with LAMMPS + the uncertainty fix, select, label, refit, repeat.

State lives on disk per iteration under [loop] workdir (or --workdir); --resume continues after a kill
without losing or duplicating a label. Stops when the trajectory-averaged sigma of the exploration runs
stays below [loop] sigma_target for [loop] converged_iterations iterations and few runs flag anything.
CONFIG is a path, or the name of a config shipped with lammps_al (in_files/al_demo.toml).
"""

from __future__ import annotations

from pathlib import Path

from lammps_al.core.resources import find_file
from lammps_al.loop.config import load_loop_config
from lammps_al.loop.driver import run_loop


def add_arguments(parser) -> None:
    parser.add_argument("config", type=Path, help="loop TOML config ([loop], [[explore]], [oracle], [descriptor], [fit])")
    parser.add_argument("--workdir", type=Path, help="where the loop keeps its state (replaces [loop] workdir)")
    parser.add_argument("--resume", action="store_true", help="continue the loop in its workdir")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def run(args) -> int:
    config = find_file(args.config, "in_files", Path.cwd(), what="loop config")
    cfg = load_loop_config(config, workdir=args.workdir)
    history = run_loop(cfg, resume=args.resume, show_progress=not args.no_progress, report=print)
    print(f"loop state and potentials: {cfg.loop.workdir}")
    return 0 if history else 1
