"""Label configurations with a reference oracle (any ASE calculator) into the training set.

Reads [oracle], [label] and [training] from the TOML config. Configurations already labelled by the same
oracle with the same settings are skipped; failures are recorded in the manifest and listed.
"""

from __future__ import annotations

from pathlib import Path

from lammps_al.core.errors import ConfigError
from lammps_al.train.config import load_config
from lammps_al.train.label import label_with_oracle, read_inputs
from lammps_al.train.store import LabelledStore


def add_arguments(parser) -> None:
    parser.add_argument("config", type=Path, help="TOML config")
    parser.add_argument("inputs", type=Path, nargs="*", help="files/folders to label (default: [label] inputs)")
    parser.add_argument("--group", help="training group for the new labels (default: [label] group)")
    parser.add_argument("--workers", type=int, help="parallel oracle processes (default: [oracle] workers)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args) -> int:
    config = load_config(args.config)
    inputs = [p.resolve() for p in args.inputs] or list(config.label.inputs)
    if not inputs:
        raise ConfigError(f"nothing to label: give input files/folders or [label] inputs in {args.config}")
    configs = read_inputs(inputs)
    store = LabelledStore(config.training.dir)
    summary = label_with_oracle(configs, config.oracle, store, group=args.group or config.label.group,
                                show_progress=not args.no_progress, workers=args.workers,
                                executor=config.executor, workdir=config.training.dir)
    for line in summary.lines():
        print(line)
    print(f"training set: {store.manifest}")
    return 1 if summary.failed else 0
