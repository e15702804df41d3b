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


class EarlyRecords(logging.Handler):
    """Holds the records a ParallelMap logs before its log file exists.

    Validation warnings (a large argument, a flag without effect) are emitted
    before the run directory is made; they are replayed into the run's handlers
    once attached, so the log file tells the whole story. While collecting, the
    ``acme`` logger passes every level; :meth:`stop` restores it.
    """

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []
        self.logger = logging.getLogger(LOGGER_NAME)
        self._old_level = self.logger.level

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def start(self) -> EarlyRecords:
        self._old_level = self.logger.level
        self.logger.setLevel(logging.DEBUG)
        self.logger.addHandler(self)
        return self

    def stop(self, failed: bool = False) -> None:
        self.logger.removeHandler(self)
        self.logger.setLevel(self._old_level)
        if failed:  # nothing will be attached: let the records take their normal way
            for record in self.records:
                if self.logger.isEnabledFor(record.levelno):
                    self.logger.handle(record)
            self.records.clear()


class RunLogging:
    """Handlers of one run; use :meth:`attach` / :meth:`detach`."""

    def __init__(self, verbose: bool | None, logfile: Path | None) -> None:
        self.level = level_for(verbose)
        self.logfile = logfile
        self.logger = logging.getLogger(LOGGER_NAME)
        self._handlers: list[logging.Handler] = []
        self._old_level = self.logger.level
        self._opened = False  # re-attaching (enter, compute) appends to our own file silently

    def attach(self, replay: list[logging.LogRecord] | None = None) -> None:
        """Add the run's handlers; ``replay`` records logged before (see :class:`EarlyRecords`)."""
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
        existed = False
        if self.logfile is not None:
            existed = self.logfile.exists() and not self._opened
            self._opened = True
            self.logfile.parent.mkdir(parents=True, exist_ok=True)
            handler = logging.FileHandler(self.logfile, mode="a", encoding="utf-8")
            handler.setFormatter(logging.Formatter(FILE_FORMAT))
            handler.setLevel(self.level)
            self._add(handler)
        for record in replay or ():
            if record.levelno >= self.level:
                self.logger.handle(record)
        if self.logfile is not None and existed:  # said after attaching: the file records it
            self.logger.warning("ACME log-file %s already exists, appending to it", self.logfile)

    def _add(self, handler: logging.Handler) -> None:
        self.logger.addHandler(handler)
        self._handlers.append(handler)

    def detach(self) -> None:
        for handler in self._handlers:
            self.logger.removeHandler(handler)
            handler.close()
        self._handlers.clear()
        self.logger.setLevel(self._old_level)
