"""Exceptions raised by acme-core."""

from __future__ import annotations

from typing import Any


class ParallelMapError(RuntimeError):
    """Some calls failed. Finished results are kept (on disk and in :attr:`results`).

    Attributes
    ----------
    failed : dict[int, BaseException]
        Task id -> the exception the call raised (the original exception when it
        could be sent back, else a :class:`~acme_core.task.RemoteCallError`).
    results : list
        Length N, task order: what ``compute()`` would have returned per call
        (a path or a value), ``None`` where the call failed.
    tracebacks : dict[int, str]
        Task id -> the remote traceback as text.
    """

    def __init__(self, message: str, failed: dict[int, BaseException], results: list[Any],
                 tracebacks: dict[int, str] | None = None) -> None:
        super().__init__(message)
        self.failed = failed
        self.results = results
        self.tracebacks = tracebacks or {}

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (str(self), self.failed, self.results, self.tracebacks))


class MissingDependencyError(ImportError):
    """An optional dependency of a plugin is not installed; the message says what to install."""


def require(module: str, extra: str, what: str) -> Any:
    """Import ``module`` or raise a MissingDependencyError naming the pip command."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingDependencyError(
            f"{what} needs the package {module!r}, which is not installed. "
            f"Install it with: pip install 'acme-core[{extra}]'") from exc


def check_requirements(cls: Any, what: str) -> None:
    """Import every module a plugin class declares in ``requires`` (module -> pip extra).

    Called before anything starts or is written, so a missing optional dependency
    fails early with the pip command instead of half-way through a run.
    """
    for module, extra in dict(getattr(cls, "requires", None) or {}).items():
        require(module, extra, what)
