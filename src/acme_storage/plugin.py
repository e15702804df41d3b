"""The hook implementation of the built-in stores (registered like any plugin).

Heavy imports (h5py, zarr) happen inside the store modules' methods, so listing
the stores costs nothing.
"""

from __future__ import annotations

from typing import Any

from acme_core.hookspecs import Register
from acme_core.plugins import hookimpl


@hookimpl
def acme_register_stores(register: Register[type[Any]]) -> None:
    from acme_storage.hdf5 import HDF5Store
    from acme_storage.hdf5_single import HDF5SingleStore
    from acme_storage.memory import MemoryStore
    from acme_storage.pickled import PickleStore
    from acme_storage.zarr_store import ZarrStore

    register(HDF5Store)
    register(PickleStore)
    register(MemoryStore)
    register(HDF5SingleStore)
    register(ZarrStore)
