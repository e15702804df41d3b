"""Every exception and warning acme-core raises, in one place.

The tree::

    AcmeError                               base of everything acme-core raises on purpose
    ├── ParallelMapError (RuntimeError)     calls failed; the finished results are kept
    ├── RemoteCallError                     a call's exception that could not travel back
    ├── CallTimeoutError (TimeoutError)     a call ran longer than ``timeout`` seconds
    ├── WorkerLostError (RuntimeError)      a call's worker died under it (run alone, so
    │                                       the call itself kills its worker)
    ├── ArgumentError                       a keyword or option is wrong (raised before
    │   │                                   anything starts or is written)
    │   ├── ArgumentValueError (ValueError)     ... its value is not allowed
    │   └── ArgumentTypeError (TypeError)       ... its type is not allowed
    ├── ResultMismatchError (ValueError)    a call's return value does not fit what the run
    │   │                                   declared (raised on the worker: that call fails)
    │   └── ResultTypeError (TypeError)         ... the store cannot hold its type
    ├── PluginError                         a plugin cannot be used
    │   ├── UnknownPluginError (ValueError)     no backend/store/setup of that name
    │   └── MissingDependencyError (ImportError)  its optional dependency is missing
    ├── MainGuardError (RuntimeError)       worker processes from a script without
    │                                       ``if __name__ == "__main__":``
    ├── UsageError (RuntimeError)           an object used in a state that does not allow it
    ├── NoWorkersError (RuntimeError)       a client the user brought has no workers
    ├── RunDirectoryError (OSError)         a run directory cannot be created, read or used
    │   ├── NoRunError (ValueError)             the path holds no acme-core run
    │   ├── ManifestError (ValueError)          a manifest cannot be read or is not one
    │   └── TamperedFileError (ValueError)      a run file failed authentication (changed
    │                                           by somebody without the run's key)
    └── SchedulerError (RuntimeError)       a batch scheduler's command failed or is missing

    AcmeWarning (UserWarning)
    └── PluginWarning                       a plugin was skipped, misspelt or shadowed

Each exception keeps the built-in base it always had (shown in brackets), so
``except ValueError`` in user code goes on working; ``except AcmeError`` catches
everything acme-core raises on purpose. Backends and stores raise these classes
too: a plugin author imports them from here.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any

__all__ = [
    "AcmeError",
    "AcmeWarning",
    "ArgumentError",
    "ArgumentTypeError",
    "ArgumentValueError",
    "CallTimeoutError",
    "MainGuardError",
    "ManifestError",
    "MissingDependencyError",
    "NoRunError",
    "NoWorkersError",
    "ParallelMapError",
    "PluginError",
    "PluginWarning",
    "RemoteCallError",
    "ResultMismatchError",
    "ResultTypeError",
    "RunDirectoryError",
    "SchedulerError",
    "StartupTimeoutError",
    "TamperedFileError",
    "UnknownPluginError",
    "UsageError",
    "WorkerLostError",
    "check_requirements",
    "require",
]


class AcmeError(Exception):
    """Base class of every exception acme-core raises on purpose."""


class ParallelMapError(AcmeError, RuntimeError):
    """Some calls failed. Finished results are kept (on disk and in :attr:`results`).

    Attributes
    ----------
    failed : dict[int, BaseException]
        Task id -> the exception the call raised (the original exception when it
        could be sent back, else a :class:`RemoteCallError`).
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


class RemoteCallError(AcmeError):
    """Stands in for a call's exception that could not be sent back (not picklable)."""

    def __init__(self, type_name: str, message: str) -> None:
        super().__init__(f"{type_name}: {message}")
        self.type_name = type_name
        self.message = message

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.type_name, self.message))


class CallTimeoutError(AcmeError, TimeoutError):
    """A call ran longer than its time limit (``ParallelMap(timeout=...)``) and was stopped.

    Attributes
    ----------
    task_id : int
    limit : float
        The limit in seconds.
    """

    def __init__(self, task_id: int, limit: float) -> None:
        super().__init__(f"call {task_id} ran longer than its time limit of {limit:g} s "
                         f"(timeout={limit:g}) and was stopped")
        self.task_id = task_id
        self.limit = limit

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.task_id, self.limit))


class WorkerLostError(AcmeError, RuntimeError):
    """The worker running a call died, also when the call ran alone: the call kills it.

    The message says why the worker died when the backend can tell (killed by a
    signal, over its memory limit, an exit code).
    """


class ArgumentError(AcmeError):
    """A keyword or option is wrong; raised before anything starts or is written.

    Attributes
    ----------
    parameter : str or None
        The keyword (or option) at fault, when one is.
    """

    def __init__(self, message: str, *, parameter: str | None = None) -> None:
        super().__init__(message)
        self.parameter = parameter

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild_argument_error, (type(self), str(self), self.parameter))


def _rebuild_argument_error(cls: type[ArgumentError], message: str,
                            parameter: str | None) -> ArgumentError:
    return cls(message, parameter=parameter)


class ArgumentValueError(ArgumentError, ValueError):
    """A keyword's value is not allowed (the message names the keyword and what is)."""


class ArgumentTypeError(ArgumentError, TypeError):
    """A keyword's type is not allowed (the message names the keyword and what is)."""


class ResultMismatchError(AcmeError, ValueError):
    """A call's return value does not fit what the run declared.

    Raised by a store's writer on the worker, before anything of the value is
    written, so the call fails alone (an entry of :class:`ParallelMapError`):
    a shape that is not its slot's (``result_shape``), values that change when
    cast to ``result_dtype``.

    Attributes
    ----------
    parameter : str or None
        The keyword whose declaration the value does not fit.
    """

    def __init__(self, message: str, *, parameter: str | None = None) -> None:
        super().__init__(message)
        self.parameter = parameter

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild_mismatch, (type(self), str(self), self.parameter))


def _rebuild_mismatch(cls: type[ResultMismatchError], message: str,
                      parameter: str | None) -> ResultMismatchError:
    return cls(message, parameter=parameter)


class ResultTypeError(ResultMismatchError, TypeError):
    """A call's return value is of a type the store cannot hold (and does not pickle)."""


class PluginError(AcmeError):
    """A plugin (backend, store or cluster setup) cannot be used."""


class UnknownPluginError(PluginError, ValueError):
    """No installed plugin has that name; the message lists the names there are."""


class MissingDependencyError(PluginError, ImportError):
    """An optional dependency of a plugin is not installed; the message says what to install."""


class MainGuardError(AcmeError, RuntimeError):
    """Worker processes were about to start while Python was importing the user's script."""


class UsageError(AcmeError, RuntimeError):
    """An object was used in a state that does not allow it (e.g. a ParallelMap running)."""


class NoWorkersError(AcmeError, RuntimeError):
    """The dask client (or executor) the user brought has no workers when a run starts."""


class RunDirectoryError(AcmeError, OSError):
    """A run directory cannot be created, read or used."""


class NoRunError(RunDirectoryError, ValueError):
    """The path holds no acme-core run (no manifest)."""


class ManifestError(RunDirectoryError, ValueError):
    """A run's manifest cannot be read, or is not an acme-core manifest."""


class TamperedFileError(RunDirectoryError, ValueError):
    """A file of a detached run failed authentication: somebody without the run's key
    wrote it (or it was damaged). Nothing of it is unpickled (:mod:`acme_core.detached`)."""


class SchedulerError(AcmeError, RuntimeError):
    """A batch scheduler's command failed, or the scheduler is not there."""


class StartupTimeoutError(AcmeError, TimeoutError):
    """Workers did not come up within ``setup_timeout`` (the message says why: the
    scheduler's reasons for the jobs that did not start)."""


class AcmeWarning(UserWarning):
    """Base class of acme-core's warnings."""


class PluginWarning(AcmeWarning):
    """A plugin could not be loaded or registered, uses an unknown hook, or is shadowed."""


def require(module: str, extra: str, what: str) -> ModuleType:
    """Import ``module`` or raise a :class:`MissingDependencyError` naming the pip command."""
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
