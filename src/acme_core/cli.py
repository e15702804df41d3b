"""The ``acme`` command line: look into runs, list plugins, remove old run directories.

::

    acme inspect RUN_DIR      calls done / failed / missing, their errors, store, sizes on disk
    acme results RUN_DIR      what open_results(RUN_DIR) returns: type, length or shape, dtype,
                              missing (masked) calls
    acme plugins              installed backends, stores and cluster setups, where they come
                              from, and plugins that failed to load
    acme clean [DIR]          remove ACME_* directories older than --older-than DAYS (default 7)

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
import json
import logging
import os
import sys
import warnings
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from acme_core.errors import NoRunError
from acme_core.manifest import MANIFEST_NAME, Manifest, to_ranges

EXIT_OK = 0
#: the run is incomplete, or something could not be read / loaded / removed
EXIT_PROBLEM = 1
#: usage error, or no run where one was expected
EXIT_USAGE = 2

PROG = "acme"


# ---------------------------------------------------------------- helpers
def format_bytes(n: float) -> str:
    """``1234567`` -> ``"1.2 MB"`` (decimal units)."""
    from acme_core.dryrun import format_bytes as fmt

    return fmt(n)


def format_ids(ids: Iterable[int], limit: int = 20) -> str:
    """``[0, 1, 2, 5]`` -> ``"0-2, 5"`` (at most ``limit`` ranges, then ``...``)."""
    ranges = to_ranges(ids)
    parts = [str(a) if a == b else f"{a}-{b}" for a, b in ranges[:limit]]
    return ", ".join(parts) + (", ..." if len(ranges) > limit else "")


def tree_size(path: Path) -> tuple[int, int]:
    """Total bytes and number of files under ``path`` (symbolic links not followed)."""
    try:
        if not path.is_dir() or path.is_symlink():
            return path.lstat().st_size, 1
    except OSError:
        return 0, 0
    total = files = 0
    stack = [path]
    while stack:
        try:
            entries = list(os.scandir(stack.pop()))
        except OSError:
            continue
        for entry in entries:
            try:
                if entry.is_dir(follow_symlinks=False):
                    stack.append(Path(entry.path))
                else:
                    total += entry.stat(follow_symlinks=False).st_size
                    files += 1
            except OSError:
                continue
    return total, files


def _table(rows: Sequence[Sequence[str]], indent: str = "  ") -> str:
    if not rows:
        return ""
    widths = [max(len(row[k]) for row in rows) for k in range(len(rows[0]) - 1)]
    lines = []
    for row in rows:
        cells = [cell.ljust(widths[k]) for k, cell in enumerate(row[:-1])] + [row[-1]]
        lines.append((indent + "  ".join(cells)).rstrip())
    return "\n".join(lines)


def _calls(n: int) -> str:
    return f"{n} call{'s' if n != 1 else ''}"


def _error_line(text: str) -> str:
    """The exception line of a traceback text (its last non-empty line)."""
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1].strip() if lines else "(no error text)"


def load_run(path: str) -> tuple[Path, Manifest]:
    """The run directory of ``path`` and its manifest; :class:`~acme_core.errors.NoRunError` if there is none."""
    from acme_core.results import find_run_dir

    p = Path(path).expanduser()
    if not p.exists():
        raise NoRunError(f"{path}: no such file or directory")
    try:
        run_dir = find_run_dir(p)
    except ValueError:
        hint = ""
        if p.is_dir() and p.name.startswith("ACME_") and any(p.glob("*.h5")):
            hint = (" It looks like a run of ACME (esi-acme), which writes no manifest: read its "
                    "files with h5py.")
        raise NoRunError(f"{path} holds no acme-core run: no {MANIFEST_NAME} in it or next to it."
                    f"{hint}") from None
    try:
        manifest = Manifest.load(run_dir)
    except (OSError, ValueError) as exc:  # json.JSONDecodeError is a ValueError
        raise NoRunError(f"{run_dir / MANIFEST_NAME} cannot be read: {exc}") from None
    return run_dir, manifest


def _emit(data: dict[str, Any], as_json: bool, render: Callable[[dict[str, Any]], str]) -> None:
    if as_json:
        print(json.dumps(data, indent=1, default=str))
    else:
        print(render(data))


# ---------------------------------------------------------------- inspect
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
        "failed": {str(i): _error_line(text) for i, text in failed.items()},
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
        f"Function       {state['func_name']} ({_calls(n)})",
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
        out.append(f"Failed calls   {format_ids(failed)}")
        for i in sorted(failed)[:max_errors]:
            out.append(f"  task {i}: {failed[i]}")
            if tracebacks:
                text = state["tracebacks"][str(i)].rstrip()
                out.extend("      " + line for line in text.splitlines())
        if len(failed) > max_errors:
            out.append(f"  ... and {len(failed) - max_errors} more (--max-errors N shows more)")
    if missing:
        out.append(f"Missing calls  {format_ids(missing)} (never finished: interrupted, or "
                   "still running)")
    out.append("Files")
    rows = []
    for f in state["files"]:
        what = f"{f['files']} files" if f["name"].endswith("/") else ""
        rows.append([f["name"], what, format_bytes(f["bytes"])])
    rows.append(["total", "", format_bytes(state["bytes"])])
    out.append(_table(rows))
    if failed or missing:
        out.append(f"To run the {_calls(len(failed) + len(missing))} left: the same "
                   f"ParallelMap with output_dir={state['run_dir']!r}, resume=True")
    return "\n".join(out)


def cmd_inspect(args: argparse.Namespace) -> int:
    run_dir, manifest = load_run(args.run_dir)
    state = run_state(run_dir, manifest)
    if not args.json:
        print(_render_inspect(state, args.tracebacks, args.max_errors))
    else:
        if not args.tracebacks:
            state.pop("tracebacks")
        print(json.dumps(state, indent=1, default=str))
    return EXIT_OK if state["complete"] else EXIT_PROBLEM


# ---------------------------------------------------------------- results
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
                       f"{format_ids(s['missing'])}): those calls never finished")
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
            out.append(f"  missing   {_calls(len(s['missing']))} without a result, None in the "
                       f"list (task ids {format_ids(s['missing'])}): never finished")
    for line in s["preview"]:
        out.append(f"  value     {line}")
    return "\n".join(out)


def cmd_results(args: argparse.Namespace) -> int:
    from acme_core.results import open_results

    run_dir, manifest = load_run(args.run_dir)
    try:
        values = open_results(run_dir)
    except Exception as exc:
        print(f"{PROG} results: cannot read the results in {run_dir}: "
              f"{type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_PROBLEM
    summary = summarize_results(values, manifest, args.show)
    _emit(summary, args.json, _render_results)
    return EXIT_PROBLEM if summary["missing"] else EXIT_OK


# ---------------------------------------------------------------- plugins
def _distribution_of(obj: Any) -> str:
    """``"acme-core 0.1.0"``: the installed distribution that provides ``obj``'s module."""
    from importlib.metadata import packages_distributions, version

    module = getattr(obj, "__module__", None) or ""
    top = module.split(".")[0]
    names = packages_distributions().get(top, [])
    if not names:
        return "(not from an installed distribution)"
    parts = []
    for name in sorted(set(names)):
        try:
            parts.append(f"{name} {version(name)}")
        except Exception:
            parts.append(name)
    return ", ".join(parts)


def _qualname(obj: Any) -> str:
    return f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', repr(obj))}"


def plugin_report() -> dict[str, Any]:
    """What ``acme plugins`` reports, as a JSON-able dict."""
    from importlib.metadata import entry_points

    from acme_core import plugins

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        backends = plugins.list_backends()
        stores = plugins.list_stores()
        setups = plugins.list_cluster_setups()
        failed = plugins.failed_plugins()
        try:
            choice = plugins.auto_backend()
            auto_text = f"{choice.backend!r} here and now (chosen by {choice.plugin!r})"
        except Exception as exc:
            auto_text = f"unknown: a plugin's acme_auto_backend failed ({exc})"
    autoload = not plugins.autoload_disabled()
    blocked = plugins.blocked_plugins()
    loaded = []
    for ep in sorted(entry_points(group=plugins.ENTRY_POINT_GROUP), key=lambda e: e.name):
        dist = getattr(ep, "dist", None)
        state = ("failed" if ep.name in failed else "blocked" if ep.name in blocked
                 else "not loaded" if not autoload else "loaded")
        loaded.append({"name": ep.name, "value": ep.value, "state": state,
                       "distribution": f"{dist.name} {dist.version}" if dist else "?"})

    def rows(mapping: dict[str, Any]) -> list[dict[str, str]]:
        return [{"name": name, "object": _qualname(obj), "distribution": _distribution_of(obj)}
                for name, obj in mapping.items()]

    return {
        "backends": rows(backends), "stores": rows(stores), "cluster_setups": rows(setups),
        "auto_backend": auto_text, "entry_points": loaded, "autoload": autoload,
        "failed": failed, "warnings": [str(w.message) for w in caught],
    }


def _render_plugins(r: dict[str, Any]) -> str:
    out = []
    for key, title in (("backends", "Backends (ParallelMap(backend=NAME))"),
                       ("stores", "Stores (ParallelMap(store=NAME))"),
                       ("cluster_setups", "Cluster setups (acme_core.list_cluster_setups())")):
        out.append(title)
        out.append(_table([[e["name"], e["object"], e["distribution"]] for e in r[key]]))
    out.append(f'backend="auto" uses {r["auto_backend"]}')
    out.append("Plugins of the 'acme' entry-point group")
    if not r["autoload"]:
        out.append("  none loaded: ACME_DISABLE_PLUGIN_AUTOLOAD is set")
    if r["entry_points"]:
        out.append(_table([[e["name"], e["value"], e["distribution"], e["state"]]
                           for e in r["entry_points"]]))
    elif r["autoload"]:
        out.append("  (none installed)")
    if r["failed"]:
        out.append("Plugins that failed to load (skipped)")
        out.extend(f"  {name}: {error}" for name, error in sorted(r["failed"].items()))
    return "\n".join(out)


def cmd_plugins(args: argparse.Namespace) -> int:
    report = plugin_report()
    _emit(report, args.json, _render_plugins)
    return EXIT_PROBLEM if report["failed"] else EXIT_OK


# ---------------------------------------------------------------- clean
def _describe_dir(path: Path) -> str:
    if not Manifest.exists(path):
        return "no manifest (an ACME run, or not a run)"
    try:
        m = Manifest.load(path)
    except (OSError, ValueError):
        return "unreadable manifest"
    done = len(m.finished)
    return (f"{m.get('func_name')}: {done}/{m.get('n_calls')} calls done, store "
            f"{m.get('store')}")


def cmd_clean(args: argparse.Namespace) -> int:
    from acme_core.housekeeping import acme_dirs, age_days, old_runs, remove_runs
    from acme_core.prompts import can_ask, yes_no

    base = Path(args.dir).expanduser()
    if not base.is_dir():
        print(f"{PROG} clean: {args.dir} is not a directory", file=sys.stderr)
        return EXIT_USAGE
    days = args.older_than
    dirs = acme_dirs(base)
    old = old_runs(base, days, dirs)
    what = "any age" if days == 0 else f"older than {days} day{'s' if days != 1 else ''}"
    if not old:
        print(f"No ACME_* directories {what} in {base.resolve()} ({len(dirs)} younger ones "
              "kept)." if dirs else f"No ACME_* directories in {base.resolve()}.")
        return EXIT_OK
    rows, sizes = [], {}
    for d in old:
        sizes[d], _ = tree_size(d)
        rows.append([d.name, f"{age_days(d)} d", format_bytes(sizes[d]), _describe_dir(d)])
    total = sum(sizes.values())
    print(f"ACME_* directories {what} in {base.resolve()}:")
    print(_table(rows))
    if args.dry_run:
        print(f"Would remove {len(old)} directories ({format_bytes(total)}); --dry-run: "
              "nothing removed.")
        return EXIT_OK
    if not args.yes and can_ask() and not yes_no(
            f"Remove these {len(old)} directories ({format_bytes(total)})?", default=False):
        print("Nothing removed.")
        return EXIT_OK
    deleted = remove_runs(old)  # exactly the directories listed above
    print(f"Removed {len(deleted)} directories "
          f"({format_bytes(sum(sizes[d] for d in deleted))}).")
    left = [d for d in old if d not in deleted and d.exists()]
    if left:
        print(f"{PROG} clean: could not remove {len(left)}: "
              f"{', '.join(d.name for d in left)}", file=sys.stderr)
        return EXIT_PROBLEM
    return EXIT_OK


# ---------------------------------------------------------------- main
def _non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"has to be a whole number of days, not {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"has to be 0 or more days, not {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    from acme_core import __version__

    parser = argparse.ArgumentParser(
        prog=PROG, description="Look into acme-core runs, list plugins, remove old runs.",
        epilog="Exit codes: 0 ok; 1 a run with failed or missing calls, or another problem "
               "found; 2 usage error or no run in the directory given.")
    parser.add_argument("--version", action="version", version=f"acme-core {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("inspect", help="calls done / failed / missing, errors, store, sizes",
                       description="Report on a run directory from its manifest: calls done, "
                                   "failed (with their errors) and missing, the store and the "
                                   "sizes on disk. Exit code 1 when calls failed or are missing.")
    p.add_argument("run_dir", metavar="RUN_DIR", help="a run directory (or a file in it)")
    p.add_argument("--tracebacks", action="store_true", help="show the failed calls' tracebacks")
    p.add_argument("--max-errors", type=int, default=10, metavar="N",
                   help="errors to show (default 10)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(handler=cmd_inspect)

    p = sub.add_parser("results", help="summary of what open_results returns",
                       description="Read a run with acme_core.open_results and summarize it: "
                                   "type, length or shape, dtype, calls without a result. "
                                   "Exit code 1 when some calls have no result.")
    p.add_argument("run_dir", metavar="RUN_DIR", help="a run directory or its results container")
    p.add_argument("--show", type=int, default=1, metavar="N",
                   help="preview the first N values (default 1)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(handler=cmd_results)

    p = sub.add_parser("plugins", help="installed backends, stores, cluster setups",
                       description="List the installed backends, stores and cluster setups "
                                   "with the distribution each comes from, and the plugins "
                                   "that failed to load (exit code 1 if any).")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(handler=cmd_plugins)

    p = sub.add_parser("clean", help="remove old ACME_* run directories",
                       description="Remove ACME_* directories (auto-named run directories) "
                                   "older than DAYS days from DIR. Asks first when run in a "
                                   "terminal.")
    p.add_argument("dir", metavar="DIR", nargs="?", default=".",
                   help="where to look (default: the current directory)")
    p.add_argument("--older-than", type=_non_negative_int, default=7, metavar="DAYS",
                   help="age in whole days a directory must exceed (default 7; 0: all)")
    p.add_argument("--dry-run", action="store_true", help="only list what would be removed")
    p.add_argument("-y", "--yes", action="store_true", help="do not ask")
    p.set_defaults(handler=cmd_clean)
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


if __name__ == "__main__":
    sys.exit(main())
