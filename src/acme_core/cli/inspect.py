"""``acme inspect RUN_DIR``: calls done / failed / missing, their errors, store, sizes on disk."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from acme_core.cli._common import (
    EXIT_OK,
    EXIT_PROBLEM,
    calls,
    error_line,
    format_bytes,
    format_id_ranges,
    load_run,
    table,
    tree_size,
)
from acme_core.manifest import Manifest

__all__ = ["add_parser", "run_state"]


def run_state(run_dir: Path, manifest: Manifest) -> dict[str, Any]:
    """What ``acme inspect`` reports, as a JSON-able dict."""
    n = int(manifest["n_calls"])
    done = sorted(i for i in manifest.finished if 0 <= i < n)
    failed = {i: text for i, text in sorted(manifest.failed.items()) if i not in manifest.finished}
    missing = [i for i in range(n) if i not in manifest.finished and i not in failed]
    files = []
    total = 0
    for entry in sorted(run_dir.iterdir(), key=lambda p: p.name):
        size, count = tree_size(entry)
        total += size
        files.append({"name": entry.name + ("/" if entry.is_dir() else ""), "bytes": size,
                      "files": count})
    return {
        "run_dir": str(run_dir),
        "func_name": manifest.get("func_name"),
        "n_calls": n,
        "store": manifest.get("store"),
        "acme_core": manifest.get("acme_core"),
        "created": manifest.get("created"),
        "updated": manifest.get("updated"),
        "complete": bool(manifest.get("complete")) and not failed and not missing,
        "result_shape": manifest.get("result_shape"),
        "result_dtype": manifest.get("result_dtype"),
        "done": len(done),
        "failed": {str(i): error_line(text) for i, text in failed.items()},
        "tracebacks": {str(i): text for i, text in failed.items()},
        "missing": missing,
        "files": files,
        "bytes": total,
    }


def _render_inspect(state: dict[str, Any], tracebacks: bool, max_errors: int) -> str:
    n = state["n_calls"]
    failed = {int(k): v for k, v in state["failed"].items()}
    missing = state["missing"]
    status = "complete" if state["complete"] else "INCOMPLETE"
    out = [
        f"Run directory  {state['run_dir']}",
        f"Function       {state['func_name']} ({calls(n)})",
        f"Store          {state['store']}",
    ]
    if state["result_shape"] is not None:
        shape = ", ".join("None" if s is None else str(s) for s in state["result_shape"])
        out.append(f"Stacked        result_shape=({shape}), result_dtype={state['result_dtype']}")
    out.append(f"Written by     acme-core {state['acme_core']}, created {state['created']}, "
               f"updated {state['updated']}")
    out.append(f"Calls          {state['done']} done, {len(failed)} failed, {len(missing)} missing"
               f"  -> {status}")
    if failed:
        out.append(f"Failed calls   {format_id_ranges(failed)}")
        for i in sorted(failed)[:max_errors]:
            out.append(f"  task {i}: {failed[i]}")
            if tracebacks:
                text = state["tracebacks"][str(i)].rstrip()
                out.extend("      " + line for line in text.splitlines())
        if len(failed) > max_errors:
            out.append(f"  ... and {len(failed) - max_errors} more (--max-errors N shows more)")
    if missing:
        out.append(f"Missing calls  {format_id_ranges(missing)} (never finished: interrupted, or "
                   "still running)")
    out.append("Files")
    rows = []
    for f in state["files"]:
        what = f"{f['files']} files" if f["name"].endswith("/") else ""
        rows.append([f["name"], what, format_bytes(f["bytes"])])
    rows.append(["total", "", format_bytes(state["bytes"])])
    out.append(table(rows))
    if failed or missing:
        out.append(f"To run the {calls(len(failed) + len(missing))} left: the same "
                   f"ParallelMap with output_dir={state['run_dir']!r}, resume=True")
    return "\n".join(out)


def run(args: argparse.Namespace) -> int:
    run_dir, manifest = load_run(args.run_dir)
    state = run_state(run_dir, manifest)
    if not args.json:
        print(_render_inspect(state, args.tracebacks, args.max_errors))
    else:
        if not args.tracebacks:
            state.pop("tracebacks")
        print(json.dumps(state, indent=1, default=str))
    return EXIT_OK if state["complete"] else EXIT_PROBLEM


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``acme inspect`` to the command line."""
    parser = sub.add_parser(
        "inspect", help="calls done / failed / missing, errors, store, sizes",
        description="Report on a run directory from its manifest: calls done, failed (with "
                    "their errors) and missing, the store and the sizes on disk. Exit code 1 "
                    "when calls failed or are missing.")
    parser.add_argument("run_dir", metavar="RUN_DIR", help="a run directory (or a file in it)")
    parser.add_argument("--tracebacks", action="store_true",
                        help="show the failed calls' tracebacks")
    parser.add_argument("--max-errors", type=int, default=10, metavar="N",
                        help="errors to show (default 10)")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.set_defaults(handler=run)
