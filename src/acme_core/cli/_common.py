"""What the commands share: finding a run, printing tables and JSON, sizes on disk."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from acme_core._format import format_bytes, format_id_ranges
from acme_core.errors import NoRunError
from acme_core.manifest import MANIFEST_NAME, Manifest

__all__ = ["EXIT_OK", "EXIT_PROBLEM", "EXIT_USAGE", "PROG", "calls", "emit", "error_line",
           "format_bytes", "format_id_ranges", "load_run", "table", "tree_size"]

EXIT_OK = 0
#: the run is incomplete, or something could not be read / loaded / removed
EXIT_PROBLEM = 1
#: usage error, or no run where one was expected
EXIT_USAGE = 2

PROG = "acme"


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


def table(rows: Sequence[Sequence[str]], indent: str = "  ") -> str:
    if not rows:
        return ""
    widths = [max(len(row[k]) for row in rows) for k in range(len(rows[0]) - 1)]
    lines = []
    for row in rows:
        cells = [cell.ljust(widths[k]) for k, cell in enumerate(row[:-1])] + [row[-1]]
        lines.append((indent + "  ".join(cells)).rstrip())
    return "\n".join(lines)


def calls(n: int) -> str:
    return f"{n} call{'s' if n != 1 else ''}"


def error_line(text: str) -> str:
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


def emit(data: dict[str, Any], as_json: bool, render: Callable[[dict[str, Any]], str]) -> None:
    if as_json:
        print(json.dumps(data, indent=1, default=str))
    else:
        print(render(data))


