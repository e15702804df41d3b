"""Logging under the standard logger ``"acme"``; nothing is configured at import.

A ParallelMap run attaches its handlers for the duration of the run (a console
handler when the application has not configured ``"acme"`` itself, and the
run's log file) and removes them afterwards.
"""

from __future__ import annotations

import logging
import sys
from datetime import datetime
from pathlib import Path

LOGGER_NAME = "acme"

FILE_FORMAT = "%(asctime)s %(name)s %(levelname)s %(funcName)s: %(message)s"
CONSOLE_FORMAT = "ACME - %(levelname)s - %(message)s"


def level_for(verbose: bool | None) -> int:
    """ACME's verbose levels: None -> INFO, True -> DEBUG, False -> WARNING."""
    return {None: logging.INFO, True: logging.DEBUG, False: logging.WARNING}[verbose]


def log_file_name(out: Path, func_name: str, when: datetime | None = None) -> Path:
    """``ACME_<fn>_<YYYYMMDD-HHMMSS>.log`` in ``out``."""
    when = when or datetime.now()
    return out / f"ACME_{func_name}_{when:%Y%m%d-%H%M%S}.log"


class RunLogging:
    """Handlers of one run; use :meth:`attach` / :meth:`detach`."""

    def __init__(self, verbose: bool | None, logfile: Path | None) -> None:
        self.level = level_for(verbose)
        self.logfile = logfile
        self.logger = logging.getLogger(LOGGER_NAME)
        self._handlers: list[logging.Handler] = []
        self._old_level = self.logger.level

    def attach(self) -> None:
        if self._handlers:
            return
        self._old_level = self.logger.level
        self.logger.setLevel(self.level)
        # Respect an application that configured "acme" (or the root logger) itself.
        if not self.logger.handlers and not logging.getLogger().handlers:
            console = logging.StreamHandler(sys.stderr)
            console.setFormatter(logging.Formatter(CONSOLE_FORMAT))
            console.setLevel(self.level)
            self._add(console)
        if self.logfile is not None:
            if self.logfile.exists():
                self.logger.warning("ACME log-file %s already exists, appending to it", self.logfile)
            self.logfile.parent.mkdir(parents=True, exist_ok=True)
            handler = logging.FileHandler(self.logfile, mode="a", encoding="utf-8")
            handler.setFormatter(logging.Formatter(FILE_FORMAT))
            handler.setLevel(self.level)
            self._add(handler)

    def _add(self, handler: logging.Handler) -> None:
        self.logger.addHandler(handler)
        self._handlers.append(handler)

    def detach(self) -> None:
        for handler in self._handlers:
            self.logger.removeHandler(handler)
            handler.close()
        self._handlers.clear()
        self.logger.setLevel(self._old_level)
