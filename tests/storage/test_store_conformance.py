"""Every built-in store passes the conformance classes of ``acme_core.testing``.

Third-party plugins subclass the same classes; the toy plugin's test does so too.
"""

from __future__ import annotations

import numpy as np

from acme_core.testing import StoreTests
from acme_storage.hdf5 import HDF5Store
from acme_storage.memory import MemoryStore
from acme_storage.pickled import PickleStore


class TestHDF5Store(StoreTests):
    store_cls = HDF5Store


class TestHDF5StoreCompressedUnlocked(StoreTests):
    store_cls = HDF5Store
    store_options = {"compression": "gzip", "locking": False}


class TestPickleStore(StoreTests):
    store_cls = PickleStore

    def value(self, i):
        return {"call": i, "data": np.arange(3) * i}

    def assert_read_back(self, read, i):
        assert read["call"] == i
        np.testing.assert_array_equal(read["data"], np.arange(3) * i)


class TestMemoryStore(StoreTests):
    store_cls = MemoryStore
