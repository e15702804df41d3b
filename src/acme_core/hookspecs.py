"""Hook specifications of the ``acme`` plugin project.

A plugin is a module (or object) with functions marked by :data:`acme_core.hookimpl`.
It is found through the ``acme`` entry-point group::

    # pyproject.toml of a plugin distribution
    [project.entry-points.acme]
    myplugin = "my_package.acme_plugin"

Each hook receives a ``register`` callable; call it once per class you provide.
The built-in backends (:mod:`acme_backends`) and stores (:mod:`acme_storage`)
register through these very hooks.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pluggy

hookspec = pluggy.HookspecMarker("acme")

#: ``register(cls, name=None)``: the name defaults to ``cls.name``.
Register = Callable[..., None]


@hookspec
def acme_register_executors(register: Register) -> None:
    """Register executor classes (backends).

    Parameters
    ----------
    register : callable
        ``register(cls, name=None)``. ``cls`` follows the
        :class:`acme_core.executor.Executor` protocol and is created as
        ``cls(**backend_options)``; ACME's cluster keywords (``n_workers``,
        ``partition``, ``mem_per_worker``, ...) are passed too when its signature
        accepts them. A :class:`concurrent.futures.Executor` subclass with a
        ``name`` attribute qualifies.
    """


@hookspec
def acme_register_stores(register: Register) -> None:
    """Register result-store classes.

    Parameters
    ----------
    register : callable
        ``register(cls, name=None)``. ``cls`` follows the
        :class:`acme_core.store.ResultStore` protocol and is created as
        ``cls(**store_options)``.
    """


@hookspec
def acme_register_cluster_setups(register: Register) -> None:
    """Register cluster-setup functions (site presets such as ``esi_cluster_setup``).

    Parameters
    ----------
    register : callable
        ``register(func, name=None)``. ``func`` starts a dask client (or cluster)
        and returns it; the name defaults to ``func.name`` or ``func.__name__``.
    """


@hookspec(firstresult=True)
def acme_auto_backend() -> tuple[str, dict[str, Any]] | None:
    """Choose the backend for ``backend="auto"`` when no dask client is running.

    Site plugins implement this to send work to their scheduler on their own
    machines (the ESI plugin answers ``("slurm", {...})`` on ESI hosts); acme-core
    itself never does, so a machine where ``sbatch`` merely exists runs locally.
    The first plugin that answers wins.

    Returns
    -------
    tuple of (str, dict) or None
        A registered backend name and options for it (keywords the user gave
        explicitly take precedence), or None to leave the choice to others
        (in the end: a local cluster).
    """
