"""``acme results RUN_DIR``: what ``open_results(RUN_DIR)`` returns, summarized."""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from typing import Any

from acme_core.cli._common import (
    EXIT_OK,
    EXIT_PROBLEM,
    PROG,
    calls,
    emit,
    format_id_ranges,
    load_run,
)
from acme_core.manifest import Manifest

__all__ = ["add_parser", "describe_value", "summarize_results"]


def describe_value(value: Any) -> str:
    """A one-line description of one value: ``"ndarray float64 (3,)"``, ``"tuple of 2 (...)"``."""
    import numpy as np

    if value is None:
        return "None"
    if isinstance(value, np.ndarray):
        kind = "MaskedArray" if isinstance(value, np.ma.MaskedArray) else "ndarray"
        return f"{kind} {value.dtype} {value.shape}"
    if isinstance(value, tuple):
        return f"tuple of {len(value)} ({', '.join(describe_value(v) for v in value)})"
    if isinstance(value, (list, dict, set)):
        return f"{type(value).__name__} of {len(value)}"
    if isinstance(value, np.generic):
        return f"{type(value).__name__}"
    return type(value).__name__


def _preview(value: Any, width: int = 100) -> str:
    import numpy as np

    with np.printoptions(threshold=8, edgeitems=2, linewidth=width):
        text = " ".join(repr(value).split())
    return text if len(text) <= width else text[:width - 3] + "..."


def summarize_results(values: Any, manifest: Manifest, show: int) -> dict[str, Any]:
    """What ``acme results`` reports, as a JSON-able dict."""
    import numpy as np

    n = int(manifest["n_calls"])
    summary: dict[str, Any] = {"func_name": manifest.get("func_name"), "n_calls": n,
                               "store": manifest.get("store")}
    stacked = values
    extras: list[Any] = []
    if manifest.get("result_shape") is not None and isinstance(values, list) and values \
            and isinstance(values[0], np.ndarray):
        stacked, extras = values[0], list(values[1:])  # ACME's [array, *extras]
    if isinstance(stacked, np.ndarray):
        dim = manifest.get("stacking_dim")
        missing: list[int] = []
        if isinstance(stacked, np.ma.MaskedArray) and dim is not None:
            mask = np.ma.getmaskarray(stacked)
            other = tuple(k for k in range(mask.ndim) if k != int(dim))
            per_call = mask.any(axis=other) if other else mask
            missing = [int(i) for i in np.flatnonzero(per_call)]
        summary.update({
            "type": f"numpy.{'ma.MaskedArray' if isinstance(stacked, np.ma.MaskedArray) else 'ndarray'}",
            "shape": list(stacked.shape), "dtype": str(stacked.dtype),
            "stacking_dim": dim, "missing": missing, "extras": len(extras),
            "preview": [f"[{i}] {_preview(np.take(stacked, i, axis=int(dim or 0)))}"
                        for i in range(min(show, stacked.shape[int(dim or 0)]))]
            if stacked.ndim else [_preview(stacked)],
        })
        if extras:
            summary["extra_types"] = dict(Counter(describe_value(v) for v in extras))
        return summary
    if not isinstance(values, list):  # a plugin store may return anything
        summary.update({"type": type(values).__name__, "missing": [],
                        "preview": [_preview(values)] if show else []})
        return summary
    missing = [i for i, v in enumerate(values) if v is None]
    kinds = Counter(describe_value(v) for v in values if v is not None)
    summary.update({
        "type": "list", "length": len(values), "missing": missing,
        "entries": dict(kinds.most_common()),
        "preview": [f"[{i}] {_preview(v)}" for i, v in enumerate(values[:show])],
    })
    return summary


def _render_results(s: dict[str, Any]) -> str:
    out = [f"open_results: {s['type']}", f"  function  {s['func_name']} ({s['n_calls']} calls), "
           f"store {s['store']}"]
    if "shape" in s:
        shape = "(" + ", ".join(map(str, s["shape"])) + ("," if len(s["shape"]) == 1 else "") + ")"
        out.append(f"  shape     {shape}, dtype {s['dtype']}, calls stacked along axis "
                   f"{s['stacking_dim']}")
        if s["missing"]:
            out.append(f"  masked    {len(s['missing'])} of {s['n_calls']} call slots (task ids "
                       f"{format_id_ranges(s['missing'])}): those calls never finished")
        else:
            out.append("  masked    none: every call's slot holds data")
        if s.get("extras"):
            kinds = ", ".join(f"{k} x{c}" for k, c in s.get("extra_types", {}).items())
            out.append(f"  extras    {s['extras']} further return values (a flat list after "
                       f"the array): {kinds}")
    elif "length" in s:
        out.append(f"  length    {s['length']}")
        for kind, count in s["entries"].items():
            out.append(f"  entries   {count} x {kind}")
        if s["missing"]:
            out.append(f"  missing   {calls(len(s['missing']))} without a result, None in the "
                       f"list (task ids {format_id_ranges(s['missing'])}): never finished")
    for line in s["preview"]:
        out.append(f"  value     {line}")
    return "\n".join(out)


def run(args: argparse.Namespace) -> int:
    from acme_core.results import open_results

    run_dir, manifest = load_run(args.run_dir)
    try:
        values = open_results(run_dir)
    except Exception as exc:
        print(f"{PROG} results: cannot read the results in {run_dir}: "
              f"{type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_PROBLEM
    summary = summarize_results(values, manifest, args.show)
    emit(summary, args.json, _render_results)
    return EXIT_PROBLEM if summary["missing"] else EXIT_OK


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``acme results`` to the command line."""
    parser = sub.add_parser(
        "results", help="summary of what open_results returns",
        description="Read a run with acme_core.open_results and summarize it: type, length or "
                    "shape, dtype, calls without a result. Exit code 1 when some calls have no "
                    "result.")
    parser.add_argument("run_dir", metavar="RUN_DIR",
                        help="a run directory or its results container")
    parser.add_argument("--show", type=int, default=1, metavar="N",
                        help="preview the first N values (default 1)")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.set_defaults(handler=run)
