"""From what the user wrote (a name, a class or an instance) to a store and an executor plan.

Both are resolved at construction, so every option is checked before anything
starts or is written: the class's signature must take the options, the class's
own ``check_options`` must accept them, and its optional dependencies
(``requires``) must be installed. ``backend="auto"`` is decided here too, by the
``acme_auto_backend`` hook (see :func:`acme_core.plugins.auto_backend`).
"""

from __future__ import annotations

import concurrent.futures
import inspect
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from acme_core._acme_flags import TASK_ID_STORE_OPTIONS, Flags
from acme_core.errors import (
    ArgumentError,
    ArgumentTypeError,
    ArgumentValueError,
    check_requirements,
)
from acme_core.executor import (
    ChecksOptions,
    ChecksSendable,
    Executor,
    SupportsBroadcast,
    executor_info,
)
from acme_core.main_guard import check_main_guard
from acme_core.plugins import auto_backend, list_backends, list_stores, lookup

__all__ = ["BackendPlan", "accepted_options", "resolve_backend", "resolve_store"]

log = logging.getLogger("acme")


def accepted_options(cls: Any, candidates: dict[str, Any]) -> dict[str, Any]:
    """The subset of ``candidates`` that ``cls(...)`` names as parameters.

    A ``**kwargs`` catch-all does not count: it usually forwards to a library
    (LocalCluster, dask-jobqueue) that would reject ACME's names.
    """
    try:
        params = inspect.signature(cls).parameters
    except (TypeError, ValueError):
        return {}
    return {k: v for k, v in candidates.items()
            if k in params and params[k].kind is not params[k].VAR_KEYWORD}


def check_options(cls: Any, options: dict[str, Any], parameter: str,
                  top_level: Iterable[str] = ()) -> None:
    """Fail early (before anything starts) when ``cls`` cannot take ``options``.

    Also checks the optional dependencies the class declares (``requires``). An
    error naming one of ``top_level`` (options the user gave as ParallelMap's own
    keywords, e.g. ``resources``) is raised as it is: it names that keyword.
    """
    kind = "store" if parameter == "store_options" else "backend"
    check_requirements(cls, f"The {kind} {executor_info(cls).name!r}")
    try:
        signature: inspect.Signature | None = inspect.signature(cls)
    except (TypeError, ValueError):  # not inspectable (a C type): the class decides alone
        signature = None
    try:
        if signature is not None:
            signature.bind_partial(**options)
        if isinstance(cls, ChecksOptions):
            cls.check_options(options)
    except (TypeError, ValueError) as exc:  # the class's own ArgumentErrors included
        if isinstance(exc, ArgumentError) and exc.parameter in set(top_level):
            raise
        raise ArgumentValueError(f"`{parameter}` {options!r} do not fit {cls.__name__}: {exc}",
                                 parameter=parameter) from None


def resolve_store(store: Any, flags: Flags, store_options: dict[str, Any],
                  pass_task_id: bool) -> Any:
    """The store instance for ``store`` (a name, a class, an instance, or None: the flags)."""
    if store is None:
        name = flags.store()
        if pass_task_id:
            store_options = {**TASK_ID_STORE_OPTIONS.get(name, {}), **store_options}
        return _instantiate(lookup("store", name, list_stores(), "store"), store_options)
    if isinstance(store, str):
        flags.check_store(store)
        return _instantiate(lookup("store", store, list_stores(), "store"), store_options)
    if isinstance(store, type):
        flags.check_store(getattr(store, "name", None))
        return _instantiate(store, store_options)
    if not callable(getattr(store, "writer", None)):
        raise ArgumentTypeError(f"`store` has to be None, a store name, a store class or a "
                                f"store, not {store!r}", parameter="store")
    flags.check_store(getattr(store, "name", None))
    if store_options:
        raise ArgumentValueError("`store_options` cannot be applied to a store instance",
                                 parameter="store_options")
    return store


def _instantiate(cls: Any, options: dict[str, Any]) -> Any:
    check_options(cls, options, "store_options")
    try:
        return cls(**options)
    except ArgumentError as exc:  # the store's own check of an option's value
        raise type(exc)(f"`store_options` {options!r} do not fit {cls.__name__}: {exc}",
                        parameter=exc.parameter or "store_options") from None


@dataclass
class BackendPlan:
    """What runs the calls: an executor class to create at the first ``compute()``, or
    the executor instance the user brought."""

    cls: type[Any] | None
    instance: Any = None
    #: a site plugin's preset for ``backend="auto"`` (fills only what the user left unset)
    preset: dict[str, Any] = field(default_factory=dict)
    backend_options: dict[str, Any] = field(default_factory=dict)

    def options(self, hints: dict[str, Any]) -> dict[str, Any]:
        """What the class is created with: the hints it names, the preset, the user's options."""
        assert self.cls is not None
        options = accepted_options(self.cls, hints)
        for key, value in self.preset.items():
            if options.get(key) in (None, "auto"):
                options[key] = value
        return {**options, **self.backend_options}

    @property
    def starts_local_processes(self) -> bool:
        return self.cls is not None and executor_info(self.cls).starts_local_processes

    def sendable_check(self) -> Callable[[Any], None] | None:
        """The executor's own check of shared arguments, when it broadcasts them itself."""
        kind = self.cls if self.cls is not None else type(self.instance)
        if issubclass(kind, SupportsBroadcast) and isinstance(kind, ChecksSendable):
            return kind.check_sendable
        return None

    @property
    def runs_in_this_process(self) -> bool:
        """Threads of this process: the calls' arguments are never pickled."""
        kind = self.cls if self.cls is not None else type(self.instance)
        return issubclass(kind, concurrent.futures.ThreadPoolExecutor)


def resolve_backend(backend: Any, backend_options: dict[str, Any],
                    cluster_keywords: dict[str, Any],
                    requests: dict[str, Any] | None = None) -> BackendPlan:
    """The plan for ``backend``; its options are checked, nothing starts.

    ``requests`` (``resources``, ``retry_memory_factor``) must be honoured: a backend
    whose signature does not name them is refused. A backend that starts worker
    processes on this machine is refused here when the user's script lacks the
    ``if __name__ == "__main__":`` guard.
    """
    requests = requests or {}
    if isinstance(backend, Executor) and not isinstance(backend, type):
        if backend_options:
            raise ArgumentValueError("`backend_options` cannot be applied to an executor "
                                     "instance", parameter="backend_options")
        _refuse_requests(requests, f"an executor instance ({type(backend).__name__})")
        return BackendPlan(None, instance=backend)
    preset: dict[str, Any] = {}
    if isinstance(backend, str):
        if backend == "auto":
            choice = auto_backend()
            backend, preset = choice.backend, choice.options
            if choice.builtin:
                log.debug("backend='auto' chose %r", backend)
            else:
                log.info("backend='auto': a site plugin chose %r (plugin %r)", backend,
                         choice.plugin)
        cls = lookup("backend", backend, list_backends(), "backend")
    elif isinstance(backend, type):
        cls = backend
    else:
        raise ArgumentTypeError(f"`backend` has to be 'auto', a backend name, an executor class "
                                f"or an executor, not {backend!r}", parameter="backend")
    honoured = accepted_options(cls, requests)
    _refuse_requests({k: v for k, v in requests.items() if k not in honoured},
                     f"the backend {executor_info(cls).name!r}")
    plan = BackendPlan(cls, preset=preset, backend_options={**honoured, **backend_options})
    check_options(cls, plan.options(cluster_keywords), "backend_options",
                  top_level=(set(honoured) | set(cluster_keywords)) - set(backend_options))
    if plan.starts_local_processes:
        check_main_guard()
    return plan


def _refuse_requests(requests: dict[str, Any], what: str) -> None:
    """Keywords a backend cannot honour are an error, never silently dropped."""
    for name in requests:
        raise ArgumentValueError(f"`{name}` cannot be honoured by {what}: it does not take "
                                 f"`{name}`. Use a backend that does (the job-queue backends, "
                                 "'dask-local'), or leave it out", parameter=name)
