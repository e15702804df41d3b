"""``acme status RUN_DIR``: a detached run's calls done / failed / running / pending, and why.

Reads only: the manifest, the run's record and its elements' reports, and one
scheduler query for all of its jobs. Takes no lock, so it works while a driver
or ``acme wait`` is waiting.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from acme_core.cli._common import EXIT_OK, EXIT_PROBLEM, error_line, format_id_ranges, load_run
from acme_core.detached import RunHandle, RunStatus

__all__ = ["add_parser", "render"]


def render(status: RunStatus) -> str:
    """The status as lines of text."""
    state = "complete" if status.complete else ("CANCELLED" if status.cancelled else "INCOMPLETE")
    out = [f"Run directory  {status.run_dir}",
           f"Function       {status.func_name} ({status.n_calls} calls)",
           f"Calls          {status.done} done, {len(status.failed)} failed, {status.running} "
           f"running, {status.pending} pending, {status.lost} to run again  -> {state}",
           f"Jobs           {', '.join(status.jobs) or '(none)'}"]
    for reason, n in sorted(status.reasons.items(), key=lambda kv: -kv[1]):
        out.append(f"  {n} calls pending: {reason}")
    if status.failed:
        out.append(f"Failed calls   {format_id_ranges(sorted(status.failed))}")
        for i in sorted(status.failed)[:5]:
            out.append(f"  task {i}: {error_line(status.failed[i])}")
    return "\n".join(out)


def run(args: argparse.Namespace) -> int:
    run_dir, _ = load_run(args.run_dir)
    status = RunHandle(run_dir).status()
    if args.json:
        data: dict[str, Any] = status.as_dict()
        print(json.dumps(data, indent=1, default=str))
    else:
        print(render(status))
    return EXIT_OK if status.complete else EXIT_PROBLEM


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``acme status`` to the command line."""
    parser = sub.add_parser(
        "status", help="a detached run: calls done / failed / running / pending",
        description="Report on a detached run (slurm-array, sge-array): calls done, failed, "
                    "running and pending, with the scheduler's pending reasons in words. One "
                    "scheduler query; no lock taken. Exit code 0 when every call finished, 1 "
                    "otherwise, 2 when RUN_DIR holds no run.")
    parser.add_argument("run_dir", metavar="RUN_DIR", help="a run directory")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.set_defaults(handler=run)
