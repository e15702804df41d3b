"""``acme wait RUN_DIR``: wait for a detached run with the progress bar, then collect it.

Takes the run directory's lock (one writer), reruns the calls of elements that
were killed and finalizes the store, as the driver would have.
"""

from __future__ import annotations

import argparse
import sys

from acme_core.cli._common import EXIT_OK, EXIT_PROBLEM, PROG, load_run
from acme_core.cli.status import render
from acme_core.detached import RunHandle
from acme_core.errors import ParallelMapError

__all__ = ["add_parser"]


def run(args: argparse.Namespace) -> int:
    run_dir, _ = load_run(args.run_dir)
    handle = RunHandle(run_dir)
    problem = None
    if not handle.wait(progress="auto" if not args.quiet else False, timeout=args.timeout):
        problem = f"not finished after {args.timeout} s"
    else:
        try:
            handle.results()
        except ParallelMapError as exc:
            problem = str(exc).splitlines()[0]
    if problem is not None:
        print(f"{PROG} wait: {problem}", file=sys.stderr)
    print(render(handle.status()))
    return EXIT_OK if problem is None else EXIT_PROBLEM


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``acme wait`` to the command line."""
    parser = sub.add_parser(
        "wait", help="wait for a detached run and collect it",
        description="Wait until every call of a detached run settled (progress bar in a "
                    "terminal), rerunning the calls of jobs that were killed, then collect the "
                    "results as compute() would. Exit code 0 when every call finished, 1 when "
                    "calls failed (or --timeout passed), 2 when RUN_DIR holds no run.")
    parser.add_argument("run_dir", metavar="RUN_DIR", help="a run directory")
    parser.add_argument("--timeout", type=float, default=None, metavar="SECONDS",
                        help="give up waiting after this long (the run goes on)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(handler=run)
