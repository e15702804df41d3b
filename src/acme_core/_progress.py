"""The progress bar: tqdm (a widget in notebooks) fed by completion events.

``progress="auto"`` shows it in interactive sessions only (stderr is a terminal,
or a Jupyter kernel), never in batch jobs and CI logs.
"""

from __future__ import annotations

import sys
from typing import Any

__all__ = ["ProgressBar", "interactive_session"]


def _stderr_is_terminal() -> bool:
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


def interactive_session() -> bool:
    """Whether a person is watching: stderr is a terminal, or this is a Jupyter kernel."""
    if _stderr_is_terminal():
        return True
    shell = sys.modules.get("IPython")
    get_ipython = getattr(shell, "get_ipython", None)
    try:
        ip = get_ipython() if callable(get_ipython) else None
    except Exception:  # pragma: no cover - IPython internals
        return False
    return ip is not None and type(ip).__name__ == "ZMQInteractiveShell"


class ProgressBar:
    """Calls done / failed / running and an ETA; every method is a no-op when hidden."""

    def __init__(self, total: int, label: str, show: bool | str) -> None:
        visible = show if isinstance(show, bool) else interactive_session()
        self._bar: Any = None
        if visible:
            from tqdm.auto import tqdm

            # tqdm adds the ETA from the rate; the postfix says done / failed / running
            # (running: calls handed to the workers and not back yet)
            self._bar = tqdm(total=total, desc=label, unit="call", file=sys.stderr,
                             dynamic_ncols=True, smoothing=0.1)
            self._bar.set_postfix(done=0, failed=0, running=0, refresh=False)

    @property
    def visible(self) -> bool:
        return self._bar is not None

    def update(self, finished: int, *, done: int, failed: int, running: int) -> None:
        """``finished`` more calls settled; the counts are the run's totals."""
        if self._bar is not None:
            self._bar.set_postfix(done=done, failed=failed, running=running, refresh=False)
            self._bar.update(finished)

    def note(self, text: str) -> None:
        """Show ``text`` next to the counts (the longest running calls)."""
        if self._bar is not None:
            self._bar.set_postfix_str(f"{self._bar.postfix}, longest={text}", refresh=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
