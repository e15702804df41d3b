"""ACME's ``acme.dask_helpers``: starting and stopping dask clients.

``local_cluster_setup``, ``slurm_cluster_setup`` and ``cluster_cleanup`` are
acme-core's (:func:`acme_core.local_cluster_setup`, ...), with ACME's keywords.
``esi_cluster_setup`` is the ESI plugin's (``pip install acme-esi``); without
the plugin, importing it raises an ``ImportError`` that says so. CoBIC's
``bic_cluster_setup`` has no acme-core successor.

>>> from acme.dask_helpers import cluster_cleanup, local_cluster_setup
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import acme_core
from acme_core import cluster_cleanup

if TYPE_CHECKING:  # resolved on first use (PEP 562), as in acme_core
    esi_cluster_setup: Callable[..., Any]
    local_cluster_setup: Callable[..., Any]
    slurm_cluster_setup: Callable[..., Any]

#: ACME's name -> the acme-core cluster setup registered under that name
CORE_SETUPS = {"local_cluster_setup": "local", "slurm_cluster_setup": "slurm"}

#: the distribution and import name of the ESI plugin
ESI_PLUGIN = ("acme-esi", "acme_esi")


class MissingSetupError(acme_core.AcmeError, ImportError):
    """An ACME cluster setup whose acme-core plugin is not installed (or does not exist)."""


def esi_installed() -> bool:
    """Whether the ESI plugin (``acme_esi``) can be imported."""
    try:
        return importlib.util.find_spec(ESI_PLUGIN[1]) is not None
    except (ImportError, ValueError):  # a broken or blocked (sys.modules[name] = None) module
        return False


def _esi_cluster_setup() -> Callable[..., Any]:
    """``acme_esi.esi_cluster_setup``, or :class:`MissingSetupError` naming the install."""
    dist, module = ESI_PLUGIN
    try:
        plugin = importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name != module:
            raise  # the plugin is there but one of its own imports is missing
        raise MissingSetupError(
            f"`esi_cluster_setup` comes from ESI's plugin for acme-core, which is not "
            f"installed: `pip install {dist}`", name=module) from None
    setup: Callable[..., Any] = plugin.esi_cluster_setup
    return setup


def __getattr__(name: str) -> Callable[..., Any]:
    """ACME's cluster setups, looked up on first use (importing ``acme`` starts no dask)."""
    if name in CORE_SETUPS:
        return acme_core.cluster_setup(CORE_SETUPS[name])
    if name == "esi_cluster_setup":
        return _esi_cluster_setup()
    if name == "bic_cluster_setup":
        raise MissingSetupError("`bic_cluster_setup` (CoBIC's cluster) has no acme-core "
                                "successor yet; use `slurm_cluster_setup` with CoBIC's "
                                "partition", name="acme")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["cluster_cleanup", "local_cluster_setup", "slurm_cluster_setup"]
if esi_installed():  # `from acme.dask_helpers import *` must not fail without the plugin
    __all__ += ["esi_cluster_setup"]


def __dir__() -> list[str]:
    """The module's names with the setups resolved on first use."""
    return sorted(set(globals()) | set(__all__))
