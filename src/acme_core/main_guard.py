"""The ``if __name__ == "__main__":`` check for backends that start local processes.

Worker processes are started with ``spawn``, which re-imports the main script in
every worker; module-level code outside the guard would start a cluster there
too, and so on. Backends with ``starts_local_processes = True`` (and cluster
setups that start local workers) call :func:`check_main_guard` first, so the
user gets one clear message instead of a cascade of worker errors.
"""

from __future__ import annotations

import ast
import os
import sys
from types import FrameType

from acme_core.errors import MainGuardError

__all__ = ["MAIN_GUARD_MESSAGE", "called_outside_main_guard", "check_main_guard"]

MAIN_GUARD_MESSAGE = (
    "acme-core starts worker processes, and Python re-imports your script in each of them. "
    "Put the code that calls ParallelMap (or starts a cluster) under\n\n"
    "    if __name__ == \"__main__\":\n        ...\n\n"
    "so that it runs only in the main process. See 'Scripts' in the README.")


def _is_main_test(test: ast.expr) -> bool:
    """Whether ``test`` is ``__name__ == "__main__"`` (either way round)."""
    if not (isinstance(test, ast.Compare) and len(test.ops) == 1
            and isinstance(test.ops[0], ast.Eq)):
        return False
    sides = [test.left, test.comparators[0]]
    return (any(isinstance(s, ast.Name) and s.id == "__name__" for s in sides)
            and any(isinstance(s, ast.Constant) and s.value == "__main__" for s in sides))


def _module_frame(globals_: dict[str, object]) -> FrameType | None:
    """The frame running the module-level code of the module with ``globals_``, if any."""
    frame: FrameType | None = sys._getframe()
    while frame is not None:
        if frame.f_globals is globals_ and frame.f_code.co_name == "<module>":
            return frame
        frame = frame.f_back
    return None


def called_outside_main_guard() -> bool:
    """True when the main script calls us from module level without the guard.

    Interactive sessions, notebooks and ``python -c`` have no script file and are
    never affected; neither is a call from inside a function (the caller decides
    when it runs).
    """
    main = sys.modules.get("__main__")
    path = getattr(main, "__file__", None)
    if main is None or not isinstance(path, str) or not os.path.isfile(path):
        return False
    frame = _module_frame(main.__dict__)
    if frame is None:
        return False
    try:
        with open(path, encoding="utf-8") as fh:
            tree = ast.parse(fh.read())
    except (OSError, SyntaxError, ValueError):
        return False
    line = frame.f_lineno
    return not any(isinstance(node, ast.If) and _is_main_test(node.test)
                   and node.lineno <= line <= (node.end_lineno or node.lineno)
                   for node in tree.body)


def check_main_guard() -> None:
    """Stop at once, with a message saying what to add, if the guard is missing."""
    if called_outside_main_guard():
        raise MainGuardError(MAIN_GUARD_MESSAGE)
