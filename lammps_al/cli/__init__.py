"""The ``lammps-al`` command: one entry point, a module per subcommand (``add_arguments`` + ``run``)."""

from __future__ import annotations

import argparse
import importlib
import logging
import signal
import sys

from lammps_al.core.errors import LammpsAlError
from lammps_al.core.logs import setup_logging

# subcommand name -> module under lammps_al.cli; each has add_arguments(parser) and run(args) -> int
SUBCOMMANDS = {
    "build": "build",
    "info": "info",
    "files": "files",
    "regression": "regression",
    "label": "label",
    "fit": "fit",
    "export": "export",
    "structures": "structures",
    "bench": "bench",
    "flagged": "flagged",
    "loop": "loop",
    "validate": "validate",
}

log = logging.getLogger("lammps_al.cli")


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lammps-al", description=__doc__.splitlines()[0])
    parser.add_argument("--traceback", action="store_true", help="show the full traceback of an error")
    parser.add_argument("-v", "--verbose", action="store_true", help="log at DEBUG level")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, module_name in SUBCOMMANDS.items():
        module = importlib.import_module(f"lammps_al.cli.{module_name}")
        doc = (module.__doc__ or "").strip().splitlines()
        sp = sub.add_parser(name, help=doc[0] if doc else None, description=module.__doc__,
                            formatter_class=argparse.RawDescriptionHelpFormatter)
        module.add_arguments(sp)
        sp.set_defaults(_module=module)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = make_parser()
    args = parser.parse_args(argv)
    setup_logging(verbose=args.verbose)
    previous = _stop_on_sigterm()
    try:
        return int(args._module.run(args) or 0)
    except LammpsAlError as exc:
        if args.traceback:
            raise
        print(f"lammps-al {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:
        print(f"lammps-al {args.command}: interrupted{' (SIGTERM)' if isinstance(exc, Terminated) else ''}; "
              f"what was finished is kept", file=sys.stderr)
        return 143 if isinstance(exc, Terminated) else 130
    except Exception as exc:  # noqa: BLE001 - a bug or an unforeseen failure: one line, the traceback on request
        if args.traceback:
            raise
        print(f"lammps-al {args.command}: internal error: {type(exc).__name__}: {exc} (run again with "
              f"'lammps-al --traceback {args.command} ...' for the traceback, and please report it)", file=sys.stderr)
        return 3
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


class Terminated(KeyboardInterrupt):
    """SIGTERM (a batch system's time limit, ``kill``): unwinds like Ctrl-C, so that running work is stopped
    and what finished is kept."""


def _raise_terminated(signum, frame):
    raise Terminated()


def _stop_on_sigterm():
    """SIGTERM raises :class:`Terminated` in the main thread; returns the handler it replaced (None off the
    main thread, where Python cannot install one)."""
    try:
        return signal.signal(signal.SIGTERM, _raise_terminated)
    except ValueError:
        return None


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
