"""``acme cancel RUN_DIR``: cancel every job of a detached run with one scheduler command."""

from __future__ import annotations

import argparse

from acme_core.cli._common import EXIT_OK, load_run
from acme_core.detached import RunHandle

__all__ = ["add_parser"]


def run(args: argparse.Namespace) -> int:
    run_dir, _ = load_run(args.run_dir)
    ids = RunHandle(run_dir).cancel()
    print(f"Cancelled job(s) {', '.join(ids) or '(none)'} of {run_dir}; finished results are "
          "kept (resume=True runs the rest)")
    return EXIT_OK


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``acme cancel`` to the command line."""
    parser = sub.add_parser(
        "cancel", help="cancel every job of a detached run",
        description="Cancel every job of a detached run with one scheduler command. A process "
                    "waiting for the run stops; finished results are kept. Exit code 0 when "
                    "cancelled, 2 when RUN_DIR holds no run.")
    parser.add_argument("run_dir", metavar="RUN_DIR", help="a run directory")
    parser.set_defaults(handler=run)
