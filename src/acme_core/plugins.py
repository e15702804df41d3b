"""The plugin manager: discovery, validation and the typed name -> plugin registries.

The manager is built on first use, never at import time. Loading goes as tox
does it: the built-in plugins (:data:`BUILTIN_PLUGINS`, registered through the
same hooks as third-party ones), then the ``acme`` entry points minus the
blocked ones, then :meth:`pluggy.PluginManager.check_pending`. Problems warn
(:class:`~acme_core.errors.PluginWarning`) instead of raising, as xarray does, so
one broken install cannot take the library down:

* a plugin that fails to import, or whose registration hook raises, is skipped;
* a hook implementation whose name is no acme hook (``acme_register_executor``)
  is named, with the closest hook name;
* a second plugin registering a name that is taken is ignored: the first one
  keeps it (built-ins load first), and the warning names both distributions.

Environment variables
---------------------
``ACME_DISABLE_PLUGIN_AUTOLOAD=1``
    Do not load entry points (built-ins are still there).
``ACME_BLOCK_PLUGINS=a,b``
    Do not load the entry points named ``a`` and ``b``.
"""

from __future__ import annotations

import difflib
import importlib
import os
import threading
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.metadata import EntryPoint, entry_points
from typing import Any, Generic, TypeVar

import pluggy

from acme_core import hookspecs
from acme_core.errors import PluginError, PluginWarning, UnknownPluginError
from acme_core.hookspecs import Register

__all__ = [
    "AutoChoice",
    "BUILTIN_PLUGINS",
    "ENTRY_POINT_GROUP",
    "PROJECT",
    "Registered",
    "Registries",
    "Registry",
    "auto_backend",
    "autoload_disabled",
    "blocked_plugins",
    "did_you_mean",
    "failed_plugins",
    "get_plugin_manager",
    "hookimpl",
    "list_backends",
    "list_cluster_setups",
    "list_stores",
    "lookup",
    "registries",
    "reset_plugins",
]

PROJECT = "acme"
ENTRY_POINT_GROUP = "acme"
#: the distribution the built-in plugins belong to
BUILTIN_DISTRIBUTION = "acme-core"

#: The marker plugin authors decorate their hook implementations with.
hookimpl = pluggy.HookimplMarker(PROJECT)

#: Modules registered before any entry point (llm's DEFAULT_PLUGINS, tox's internal
#: plugins): the core knows its built-ins by module name only.
BUILTIN_PLUGINS = ("acme_backends.plugin", "acme_storage.plugin")

T = TypeVar("T")

_lock = threading.Lock()
_state: _Loaded | None = None


@dataclass(frozen=True)
class Registered(Generic[T]):
    """One registry entry: the object and who registered it."""

    obj: T
    #: the plugin's name in the manager (entry-point name, or module for built-ins)
    plugin: str
    #: the distribution that installed the plugin
    distribution: str


class Registry(Generic[T]):
    """Name -> plugin object for one kind (executors, stores, cluster setups)."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, Registered[T]] = {}

    def register_for(self, plugin: str, distribution: str) -> Register[T]:
        """The ``register`` callable handed to ``plugin``'s registration hook."""

        def register(obj: T, /, name: str | None = None) -> None:
            key = name or getattr(obj, "name", None) or getattr(obj, "__name__", None)
            if not isinstance(key, str) or not key:
                raise PluginError(f"cannot register {self.kind} {obj!r}: give it a `name` "
                                "attribute or pass name=")
            self._add(key, Registered(obj, plugin, distribution))

        return register

    def _add(self, key: str, entry: Registered[T]) -> None:
        first = self._entries.get(key)
        if first is None:
            self._entries[key] = entry
            return
        if first.obj is entry.obj:
            return  # the same object twice (a plugin listed under two entry points)
        warnings.warn(
            f"Two plugins register the {self.kind} {key!r}: {_describe(first)} and "
            f"{_describe(entry)}. The first one is used; uninstall or block "
            f"(ACME_BLOCK_PLUGINS={entry.plugin}) the other to silence this warning.",
            PluginWarning, stacklevel=4)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def get(self, name: str) -> T:
        """The object registered as ``name`` (KeyError when there is none)."""
        return self._entries[name].obj

    def entry(self, name: str) -> Registered[T]:
        """Who registered ``name``."""
        return self._entries[name]

    def as_dict(self) -> dict[str, T]:
        """Name -> object, sorted by name."""
        return {name: self._entries[name].obj for name in sorted(self._entries)}


def _describe(entry: Registered[Any]) -> str:
    obj = entry.obj
    where = f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', repr(obj))}"
    return f"{where} (plugin {entry.plugin!r} of distribution {entry.distribution!r})"


@dataclass
class Registries:
    """Everything registered through the hooks, by kind."""

    executors: Registry[type[Any]] = field(default_factory=lambda: Registry("backend"))
    stores: Registry[type[Any]] = field(default_factory=lambda: Registry("store"))
    cluster_setups: Registry[Callable[..., Any]] = field(
        default_factory=lambda: Registry("cluster setup"))
    #: plugin name -> error text for plugins that failed to load or register
    failed: dict[str, str] = field(default_factory=dict)


@dataclass
class _Loaded:
    manager: pluggy.PluginManager
    registries: Registries


def autoload_disabled() -> bool:
    """Whether ``ACME_DISABLE_PLUGIN_AUTOLOAD`` says not to load entry points."""
    value = os.environ.get("ACME_DISABLE_PLUGIN_AUTOLOAD", "")
    return value.strip().lower() in {"1", "true", "yes", "on"}


def blocked_plugins() -> set[str]:
    """The entry-point names ``ACME_BLOCK_PLUGINS`` blocks."""
    return {n.strip() for n in os.environ.get("ACME_BLOCK_PLUGINS", "").split(",") if n.strip()}


def _warn_skipped(name: str, what: str, exc: BaseException, failed: dict[str, str]) -> None:
    failed[name] = f"{type(exc).__name__}: {exc}"
    warnings.warn(f"acme plugin {name!r} {what} and is skipped: {type(exc).__name__}: {exc}",
                  PluginWarning, stacklevel=4)


def _load_entry_points(pm: pluggy.PluginManager, failed: dict[str, str]) -> dict[str, str]:
    """Register every unblocked ``acme`` entry point; return plugin -> distribution."""
    distributions: dict[str, str] = {}
    blocked = blocked_plugins()
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.name in blocked:
            pm.set_blocked(ep.name)
            continue
        try:
            pm.register(ep.load(), name=ep.name)
        except Exception as exc:  # a broken plugin must not break everything else
            _warn_skipped(ep.name, f"({ep.value}) failed to load", exc, failed)
            continue
        distributions[ep.name] = _distribution_name(ep)
    return distributions


def _distribution_name(ep: EntryPoint) -> str:
    dist = ep.dist
    return dist.name if dist is not None else "unknown distribution"


def _check_hooks(pm: pluggy.PluginManager) -> None:
    """``check_pending()``, turned into one warning per misspelt hook implementation.

    pluggy raises for the first unknown hook only; every plugin with one is named
    here, with the closest hook name. The implementation is never called.
    """
    try:
        pm.check_pending()
        return
    except pluggy.PluginValidationError:
        pass
    known = sorted(name for name in dir(hookspecs) if name.startswith("acme_"))
    for hook_name, caller in sorted(vars(pm.hook).items()):
        if not isinstance(caller, pluggy.HookCaller) or caller.has_spec():
            continue
        for impl in caller.get_hookimpls():
            if impl.optionalhook:
                continue
            warnings.warn(
                f"acme plugin {impl.plugin_name!r} implements {hook_name!r}, which is not an "
                f"acme hook, so it is never called.{did_you_mean(hook_name, known)} "
                f"The hooks are {known}.", PluginWarning, stacklevel=3)


def _collect(pm: pluggy.PluginManager, distributions: dict[str, str],
             failed: dict[str, str]) -> Registries:
    """Call every registration hook, one implementation at a time.

    Calling ``pm.hook.<name>(register=...)`` would stop at the first plugin that
    raises; calling each implementation on its own lets a broken plugin be
    skipped (and named) while the others still register. Built-ins come first.
    """
    reg = Registries(failed=failed)
    hooks: tuple[tuple[pluggy.HookCaller, Registry[Any]], ...] = (
        (pm.hook.acme_register_executors, reg.executors),
        (pm.hook.acme_register_stores, reg.stores),
        (pm.hook.acme_register_cluster_setups, reg.cluster_setups),
    )
    order = {name: i for i, name in enumerate(distributions)}
    for hook, registry in hooks:
        impls = sorted(hook.get_hookimpls(), key=lambda impl: order.get(impl.plugin_name, 0))
        for impl in impls:
            distribution = distributions.get(impl.plugin_name, BUILTIN_DISTRIBUTION)
            try:
                impl.function(register=registry.register_for(impl.plugin_name, distribution))
            except Exception as exc:
                _warn_skipped(impl.plugin_name, f"failed to register its {registry.kind}s", exc,
                              failed)
    return reg


def _build() -> _Loaded:
    failed: dict[str, str] = {}
    pm = pluggy.PluginManager(PROJECT)
    pm.add_hookspecs(hookspecs)
    distributions = {name: BUILTIN_DISTRIBUTION for name in BUILTIN_PLUGINS}
    for modname in BUILTIN_PLUGINS:
        pm.register(importlib.import_module(modname), name=modname)
    if not autoload_disabled():
        distributions.update(_load_entry_points(pm, failed))
    _check_hooks(pm)
    return _Loaded(pm, _collect(pm, distributions, failed))


def _loaded() -> _Loaded:
    global _state
    with _lock:
        if _state is None:
            _state = _build()
        return _state


def get_plugin_manager() -> pluggy.PluginManager:
    """Return the process-wide plugin manager, building it on first use."""
    return _loaded().manager


def registries() -> Registries:
    """Everything the installed plugins registered (loading them on first use)."""
    return _loaded().registries


def reset_plugins() -> None:
    """Forget the plugin manager so the next lookup rediscovers entry points.

    Useful after installing a plugin into a running interpreter, and in tests.
    """
    global _state
    with _lock:
        _state = None


def list_backends() -> dict[str, type[Any]]:
    """Return a name -> class mapping of every installed executor backend."""
    return registries().executors.as_dict()


def list_stores() -> dict[str, type[Any]]:
    """Return a name -> class mapping of every installed result store."""
    return registries().stores.as_dict()


def list_cluster_setups() -> dict[str, Callable[..., Any]]:
    """Return a name -> function mapping of every installed cluster setup."""
    return registries().cluster_setups.as_dict()


@dataclass(frozen=True)
class AutoChoice:
    """What ``backend="auto"`` means here and now, and which plugin said so."""

    backend: str
    options: dict[str, Any]
    plugin: str

    @property
    def builtin(self) -> bool:
        """Whether acme-core's own fallback answered (no site plugin did)."""
        return self.plugin in BUILTIN_PLUGINS


def auto_backend() -> AutoChoice:
    """Ask the ``acme_auto_backend`` implementations, in pluggy's order, for the backend.

    Each implementation is called on its own (as the registration hooks are), so a
    site plugin whose hook raises is named in a warning and skipped.
    """
    hook = get_plugin_manager().hook.acme_auto_backend
    for impl in reversed(hook.get_hookimpls()):  # pluggy calls the last registered first
        try:
            answer: object = impl.function()
        except Exception as exc:
            warnings.warn(f"acme plugin {impl.plugin_name!r} failed to choose a backend for "
                          f"backend='auto' and is skipped: {type(exc).__name__}: {exc}",
                          PluginWarning, stacklevel=2)
            continue
        if answer is None:
            continue
        if not (isinstance(answer, tuple) and len(answer) == 2 and isinstance(answer[0], str)
                and isinstance(answer[1], (dict, type(None)))):
            warnings.warn(f"acme plugin {impl.plugin_name!r} answered {answer!r} for "
                          "backend='auto', not (name, options); it is skipped",
                          PluginWarning, stacklevel=2)
            continue
        return AutoChoice(answer[0], dict(answer[1] or {}), impl.plugin_name)
    raise UnknownPluginError("No installed plugin chooses a backend for backend='auto' "
                             "(the built-in acme_backends plugin is blocked or missing); "
                             "pass a backend name")


def failed_plugins() -> dict[str, str]:
    """Return plugin name -> error for plugins that failed to load or register."""
    return dict(registries().failed)


def did_you_mean(word: str, possibilities: list[str]) -> str:
    """Return `` Did you mean 'x'?`` for the closest match, or an empty string."""
    close = difflib.get_close_matches(word, possibilities, n=1, cutoff=0.5)
    return f" Did you mean {close[0]!r}?" if close else ""


def lookup(kind: str, name: str, available: dict[str, T], parameter: str) -> T:
    """Return ``available[name]`` or raise an UnknownPluginError that lists what exists."""
    try:
        return available[name]
    except KeyError:
        names = sorted(available)
        raise UnknownPluginError(
            f"`{parameter}` has to be one of the installed {kind}s {names}, not {name!r}."
            f"{did_you_mean(name, names)}"
        ) from None
