"""acme-compat: ACME's import name ``acme`` on top of acme-core.

Code written for ACME (PyPI ``esi-acme``) runs unchanged:

>>> from acme import ParallelMap, cluster_cleanup, local_cluster_setup
>>> import importlib.metadata, acme
>>> acme.__version__ == importlib.metadata.version("acme-compat")
True

``esi_cluster_setup`` comes from ESI's plugin (``pip install acme-esi``).
Everything here is acme-core's public API; the differences from ACME are
acme-core's documented choices (see the migration guide). The package refuses
to be imported next to ``esi-acme``, which provides the same import name.

Unlike ACME, importing it changes no global state (no ``sys.excepthook``
replacement, no logging handlers).
"""

from __future__ import annotations

from acme._clash import refuse_next_to_esi_acme

# first of all: in an environment that also holds esi-acme, ACME's own modules may sit
# next to these files (same directory), and nothing else here can be trusted
refuse_next_to_esi_acme()

import importlib.metadata  # noqa: E402
from collections.abc import Callable  # noqa: E402
from typing import TYPE_CHECKING, Any  # noqa: E402

from acme import dask_helpers  # noqa: E402
from acme.dask_helpers import cluster_cleanup  # noqa: E402
from acme.parallel_map import ACMEdaemon, ParallelMap  # noqa: E402

if TYPE_CHECKING:  # resolved on first use by acme.dask_helpers (PEP 562)
    esi_cluster_setup: Callable[..., Any]
    local_cluster_setup: Callable[..., Any]
    slurm_cluster_setup: Callable[..., Any]

try:
    __version__ = importlib.metadata.version("acme-compat")
except importlib.metadata.PackageNotFoundError:  # imported from a source tree that is not installed
    __version__ = "unknown"

__all__ = ["ACMEdaemon", "ParallelMap", "cluster_cleanup", "local_cluster_setup",
           "slurm_cluster_setup"]
if dask_helpers.esi_installed():  # `from acme import *` must not fail without the plugin
    __all__ += ["esi_cluster_setup"]

#: ACME's setup names resolved by acme.dask_helpers
_SETUP_NAMES = ("esi_cluster_setup", "bic_cluster_setup", *dask_helpers.CORE_SETUPS)


def __getattr__(name: str) -> Callable[..., Any]:
    """ACME's cluster setups (``local_cluster_setup``, ``esi_cluster_setup``, ...)."""
    if name in _SETUP_NAMES:
        setup: Callable[..., Any] = getattr(dask_helpers, name)
        return setup
    raise AttributeError(f"module 'acme' has no attribute {name!r}")


def __dir__() -> list[str]:
    """The package's names with the setups resolved on first use."""
    return sorted(set(globals()) | set(__all__))
