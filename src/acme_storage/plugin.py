"""The hook implementation of the built-in stores (registered like any plugin).

Heavy imports (h5py, zarr) happen inside the store modules' methods, so listing
the stores costs nothing.
"""

from __future__ import annotations

from typing import Any

from acme_core.hookspecs import Register
from acme_core.plugins import hookimpl

__all__ = ["acme_register_stores"]


@hookimpl
def acme_register_stores(register: Register[type[Any]]) -> None:
    """Register ``"hdf5"``, ``"pickle"``, ``"memory"``, ``"hdf5-single"`` and ``"zarr"``."""
    from acme_storage import HDF5SingleStore, HDF5Store, MemoryStore, PickleStore, ZarrStore

    register(HDF5Store)
    register(PickleStore)
    register(MemoryStore)
    register(HDF5SingleStore)
    register(ZarrStore)
