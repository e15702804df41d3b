"""The ``acme`` command line: look into runs, list plugins, remove old run directories.

::

    acme inspect RUN_DIR      calls done / failed / missing, their errors, store, sizes on disk
    acme results RUN_DIR      what open_results(RUN_DIR) returns: type, length or shape, dtype,
                              missing (masked) calls
    acme plugins              installed backends, stores and cluster setups, where they come
                              from, and plugins that failed to load
    acme clean [DIR]          remove ACME_* directories older than --older-than DAYS (default 7)
    acme status RUN_DIR       a detached run (slurm-array, sge-array): calls done / failed /
                              running / pending, and the scheduler's pending reasons
    acme wait RUN_DIR         wait for a detached run (progress bar), rerun what was killed,
                              collect it as compute() would
    acme cancel RUN_DIR       cancel every job of a detached run with one scheduler command

Exit codes
----------
0
    Success (for ``inspect`` and ``results``: every call of the run finished).
1
    The command worked but found a problem: a run with failed or missing calls,
    results that cannot be read, a plugin that failed to load, a directory that
    could not be removed.
2
    Usage error, or the path holds no acme-core run (no ``acme_manifest.json``).

Also available as ``python -m acme_core.cli``.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from acme_core.cli import cancel, clean, inspect, plugins, results, status, wait
from acme_core.cli._common import EXIT_OK, EXIT_PROBLEM, EXIT_USAGE, PROG
from acme_core.errors import NoRunError

__all__ = ["EXIT_OK", "EXIT_PROBLEM", "EXIT_USAGE", "build_parser", "main"]

#: the command modules; each adds its subparser (``add_parser``)
COMMANDS = (inspect, results, plugins, clean, status, wait, cancel)


def build_parser() -> argparse.ArgumentParser:
    from acme_core._version import __version__

    parser = argparse.ArgumentParser(
        prog=PROG, description="Look into acme-core runs, list plugins, remove old runs.",
        epilog="Exit codes: 0 ok; 1 a run with failed or missing calls, or another problem "
               "found; 2 usage error or no run in the directory given.")
    parser.add_argument("--version", action="version", version=f"acme-core {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    for command in COMMANDS:
        command.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``acme`` command line; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    logger = logging.getLogger("acme")
    if not logger.handlers and not logging.getLogger().handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter(f"{PROG}: %(levelname)s: %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.WARNING)
    try:
        return int(args.handler(args))
    except NoRunError as exc:
        print(f"{PROG} {args.command}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `acme inspect ... | head`
        sys.stderr.close()
        return EXIT_OK


