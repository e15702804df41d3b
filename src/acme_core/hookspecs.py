"""Hook specifications of the ``acme`` plugin project.

A plugin is a module (or object) with functions marked by :data:`acme_core.hookimpl`.
It is found through the ``acme`` entry-point group::

    # pyproject.toml of a plugin distribution
    [project.entry-points.acme]
    myplugin = "my_package.acme_plugin"

The registration hooks receive a typed ``register`` callable; call it once per
class (or function) you provide. The built-in backends (:mod:`acme_backends`) and
stores (:mod:`acme_storage`) register through these very hooks. A hook
implementation whose name is not one of the hooks below is reported with a
:class:`~acme_core.errors.PluginWarning` naming the closest hook.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, TypeVar

import pluggy

__all__ = [
    "Register",
    "acme_auto_backend",
    "acme_cluster_cleanup",
    "acme_register_cluster_setups",
    "acme_register_executors",
    "acme_register_stores",
    "hookspec",
]

hookspec = pluggy.HookspecMarker("acme")

T_contra = TypeVar("T_contra", contravariant=True)


class Register(Protocol[T_contra]):
    """``register(obj, name=None)``: add ``obj`` to a registry.

    The name defaults to ``obj.name`` (classes) or ``obj.__name__`` (functions).
    When two plugins register one name, the first keeps it and a
    :class:`~acme_core.errors.PluginWarning` names both distributions.
    """

    def __call__(self, obj: T_contra, /, name: str | None = None) -> None: ...


@hookspec
def acme_register_executors(register: Register[type[Any]]) -> None:
    """Register executor classes (backends).

    Parameters
    ----------
    register : Register
        ``register(cls, name=None)``. ``cls`` follows the contract in
        :mod:`acme_core.executor` and is created as ``cls(**backend_options)``.
        A :class:`concurrent.futures.Executor` subclass with a ``name`` qualifies.
    """


@hookspec
def acme_register_stores(register: Register[type[Any]]) -> None:
    """Register result-store classes.

    Parameters
    ----------
    register : Register
        ``register(cls, name=None)``. ``cls`` follows the contract in
        :mod:`acme_core.store` and is created as ``cls(**store_options)``.
    """


@hookspec
def acme_register_cluster_setups(register: Register[Callable[..., Any]]) -> None:
    """Register cluster-setup functions (``local``, ``slurm``, site presets such as ``esi``).

    Parameters
    ----------
    register : Register
        ``register(func, name=None)``. ``func`` starts a dask client (or cluster)
        and returns it; the name defaults to ``func.__name__``. The names
        ``local``, ``slurm``, ``pbs`` and ``sge`` are what
        ``acme_core.local_cluster_setup`` and friends resolve to.
    """


@hookspec(firstresult=True)
def acme_auto_backend() -> tuple[str, dict[str, Any]] | None:
    """Choose the backend for ``backend="auto"``.

    The first implementation that answers wins. acme-core's own answer is
    registered ``trylast`` (a running dask client: ``"dask"``, else
    ``"dask-local"``), so a site plugin answering ``("slurm", {...})`` on its own
    machines wins there; it should answer ``None`` where it has nothing to say.

    Returns
    -------
    tuple of (str, dict) or None
        A registered backend name and options for it (keywords the user gave
        explicitly take precedence), or None to leave the choice to others.
    """


@hookspec(firstresult=True)
def acme_cluster_cleanup(client: Any) -> bool | None:
    """Stop ``client`` and the cluster behind it (``acme_core.cluster_cleanup``).

    Parameters
    ----------
    client : object or None
        What a cluster setup returned, or None: the client running in this process.

    Returns
    -------
    bool or None
        True when this plugin knew the client and stopped it (or, for None, found
        none running and said so); None to leave it to others.
    """
