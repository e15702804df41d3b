"""The plugin manager: discovery and the name -> class registries.

The manager is built by :func:`get_plugin_manager` on first use, never at import
time. Built-in plugins are registered through the same hooks as third-party
ones; third-party plugins come from the ``acme`` entry-point group. A plugin that
fails to import warns and is skipped, so one broken install cannot take the
library down.

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
from importlib.metadata import entry_points
from typing import Any

import pluggy

from acme_core import hookspecs

PROJECT = "acme"
ENTRY_POINT_GROUP = "acme"

#: The marker plugin authors decorate their hook implementations with.
hookimpl = pluggy.HookimplMarker(PROJECT)

# Modules registered before any entry point; they use the same hooks.
BUILTIN_PLUGINS = ("acme_backends", "acme_storage", "acme_core.clusters")

_lock = threading.Lock()
_manager: pluggy.PluginManager | None = None
_registries: Registries | None = None


class PluginWarning(UserWarning):
    """A plugin could not be loaded or registered and was skipped."""


@dataclass
class Registries:
    """Everything registered through the hooks, by kind."""

    executors: dict[str, Any] = field(default_factory=dict)
    stores: dict[str, Any] = field(default_factory=dict)
    cluster_setups: dict[str, Callable[..., Any]] = field(default_factory=dict)
    #: entry-point name -> error text for plugins that failed to load
    failed: dict[str, str] = field(default_factory=dict)


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in {"1", "true", "yes", "on"}


def _blocked() -> set[str]:
    return {n.strip() for n in os.environ.get("ACME_BLOCK_PLUGINS", "").split(",") if n.strip()}


def _new_manager(failed: dict[str, str]) -> pluggy.PluginManager:
    pm = pluggy.PluginManager(PROJECT)
    pm.add_hookspecs(hookspecs)
    for modname in BUILTIN_PLUGINS:
        pm.register(importlib.import_module(modname), name=modname)
    if _truthy(os.environ.get("ACME_DISABLE_PLUGIN_AUTOLOAD")):
        return pm
    blocked = _blocked()
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.name in blocked:
            pm.set_blocked(ep.name)
            continue
        try:
            plugin = ep.load()
            pm.register(plugin, name=ep.name)
        except Exception as exc:  # a broken plugin must not break everything else
            failed[ep.name] = f"{type(exc).__name__}: {exc}"
            warnings.warn(
                f"acme plugin {ep.name!r} ({ep.value}) failed to load and is skipped: "
                f"{type(exc).__name__}: {exc}",
                PluginWarning,
                stacklevel=2,
            )
    return pm


def _collect(pm: pluggy.PluginManager, failed: dict[str, str]) -> Registries:
    reg = Registries(failed=failed)

    def make_register(target: dict[str, Any], kind: str) -> Callable[..., None]:
        def register(obj: Any, name: str | None = None) -> None:
            key = name or getattr(obj, "name", None) or getattr(obj, "__name__", None)
            if not isinstance(key, str) or not key:
                raise TypeError(f"cannot register {kind} {obj!r}: give it a `name` attribute or pass name=")
            target[key] = obj

        return register

    # Hooks run last-registered-first; reversing makes later plugins override built-ins.
    hooks = (
        (pm.hook.acme_register_executors, reg.executors, "executor"),
        (pm.hook.acme_register_stores, reg.stores, "store"),
        (pm.hook.acme_register_cluster_setups, reg.cluster_setups, "cluster setup"),
    )
    for hook, target, kind in hooks:
        for impl in reversed(hook.get_hookimpls()):
            try:
                impl.function(register=make_register(target, kind))
            except Exception as exc:
                failed[impl.plugin_name] = f"{type(exc).__name__}: {exc}"
                warnings.warn(
                    f"acme plugin {impl.plugin_name!r} failed to register its {kind}s and is "
                    f"skipped: {type(exc).__name__}: {exc}",
                    PluginWarning,
                    stacklevel=2,
                )
    return reg


def get_plugin_manager() -> pluggy.PluginManager:
    """Return the process-wide plugin manager, building it on first use."""
    _load()
    assert _manager is not None
    return _manager


def _load() -> Registries:
    global _manager, _registries
    with _lock:
        if _registries is None:
            failed: dict[str, str] = {}
            _manager = _new_manager(failed)
            _registries = _collect(_manager, failed)
        return _registries


def reset_plugins() -> None:
    """Forget the plugin manager so the next lookup rediscovers entry points.

    Useful after installing a plugin into a running interpreter, and in tests.
    """
    global _manager, _registries
    with _lock:
        _manager = None
        _registries = None


def list_backends() -> dict[str, Any]:
    """Return a name -> class mapping of every installed executor backend."""
    return dict(sorted(_load().executors.items()))


def list_stores() -> dict[str, Any]:
    """Return a name -> class mapping of every installed result store."""
    return dict(sorted(_load().stores.items()))


def list_cluster_setups() -> dict[str, Callable[..., Any]]:
    """Return a name -> function mapping of every installed cluster setup."""
    return dict(sorted(_load().cluster_setups.items()))


def auto_backend() -> tuple[str, dict[str, Any]] | None:
    """What the installed plugins choose for ``backend="auto"`` (None: a local cluster)."""
    choice = get_plugin_manager().hook.acme_auto_backend()
    if choice is None:
        return None
    name, options = choice
    return str(name), dict(options or {})


def failed_plugins() -> dict[str, str]:
    """Return entry-point name -> error for plugins that failed to load."""
    return dict(_load().failed)


def did_you_mean(word: str, possibilities: list[str]) -> str:
    """Return `` Did you mean 'x'?`` for the closest match, or an empty string."""
    close = difflib.get_close_matches(word, possibilities, n=1, cutoff=0.5)
    return f" Did you mean {close[0]!r}?" if close else ""


def lookup(kind: str, name: str, available: dict[str, Any], parameter: str) -> Any:
    """Return ``available[name]`` or raise a ValueError that lists what exists."""
    try:
        return available[name]
    except KeyError:
        names = sorted(available)
        raise ValueError(
            f"`{parameter}` has to be one of the installed {kind}s {names}, not {name!r}."
            f"{did_you_mean(name, names)}"
        ) from None
