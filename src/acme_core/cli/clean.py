"""``acme clean [DIR]``: remove ``ACME_*`` run directories older than a number of days."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from acme_core.cli._common import (
    EXIT_OK,
    EXIT_PROBLEM,
    EXIT_USAGE,
    PROG,
    format_bytes,
    table,
    tree_size,
)
from acme_core.manifest import Manifest

__all__ = ["add_parser"]


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


def run(args: argparse.Namespace) -> int:
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
    print(table(rows))
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


def _non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"has to be a whole number of days, not {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"has to be 0 or more days, not {value}")
    return value


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``acme clean`` to the command line."""
    parser = sub.add_parser(
        "clean", help="remove old ACME_* run directories",
        description="Remove ACME_* directories (auto-named run directories) older than DAYS "
                    "days from DIR. Asks first when run in a terminal.")
    parser.add_argument("dir", metavar="DIR", nargs="?", default=".",
                        help="where to look (default: the current directory)")
    parser.add_argument("--older-than", type=_non_negative_int, default=7, metavar="DAYS",
                        help="age in whole days a directory must exceed (default 7; 0: all)")
    parser.add_argument("--dry-run", action="store_true", help="only list what would be removed")
    parser.add_argument("-y", "--yes", action="store_true", help="do not ask")
    parser.set_defaults(handler=run)
