"""The new stores pass the conformance classes of ``acme_core.testing``, plain and stacked.

The stacked variants run the same inherited tests with ``result_shape=(None, 5)``
(and ``(None, np.inf)``): ``read`` then returns one array whose rows are the calls.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from acme_core.store import RunInfo
from acme_core.testing import StoreTests
from acme_storage.hdf5 import HDF5SingleStore, HDF5Store
from acme_storage.memory import MemoryStore
from acme_storage.zarr import ZarrStore

pytest.importorskip("zarr")


class TestHDF5SingleStore(StoreTests):
    store_cls = HDF5SingleStore


class TestHDF5SingleStoreCompressedUnlocked(StoreTests):
    store_cls = HDF5SingleStore
    store_options = {"compression": "gzip", "locking": False}


class TestZarrStore(StoreTests):
    store_cls = ZarrStore


class TestZarrStoreCompressedChunked(StoreTests):
    store_cls = ZarrStore
    store_options = {"compression": "blosc", "chunks": (2,)}


class TestZarrStoreStrings(StoreTests):
    store_cls = ZarrStore

    def value(self, i: int) -> Any:
        return f"call {i}"

    def assert_read_back(self, read: Any, i: int) -> None:
        assert list(np.asarray(read).ravel()) == [self.value(i)]


class TestZarrStoreRows(StoreTests):
    """A zip shard per task (no ``result_shape``)."""

    store_cls = ZarrStore
    store_options = {"shard_calls": "rows"}


class TestZarrStoreRowsCompressedChunked(StoreTests):
    store_cls = ZarrStore
    store_options = {"shard_calls": True, "compression": "blosc", "chunks": (2,)}


class TestZarrStoreRowsStrings(TestZarrStoreStrings):
    store_options = {"shard_calls": "rows"}


class Stacked(StoreTests):
    """Mixin: the inherited tests with a stacked result (rows = calls)."""

    result_shape: tuple[Any, ...] = (None, 5)

    def _prepared(self, tmp_path: Path) -> tuple[Any, RunInfo]:
        store = self.make_store()
        shape = tuple(self.n_calls if s is None else s for s in self.result_shape)
        out = tmp_path / "run" if store.writes_files else None
        if out is not None:
            out.mkdir(parents=True, exist_ok=True)
        run = RunInfo(func_name="func", n_calls=self.n_calls, output_dir=out, result_shape=shape,
                      result_dtype=np.dtype(float), stacking_dim=0)
        store.prepare(run)
        return store, run

    def _manifest(self, run: RunInfo, store: Any) -> dict[str, Any]:
        return {**super()._manifest(run, store), "result_shape": list(self.result_shape),
                "stacking_dim": 0, "result_dtype": "float64"}


class TestHDF5StoreStacked(Stacked):
    store_cls = HDF5Store


class TestHDF5StoreStackedSharded(Stacked):
    store_cls = HDF5Store
    store_options = {"shard_calls": True}


class TestHDF5SingleStoreStacked(Stacked):
    store_cls = HDF5SingleStore


class TestHDF5SingleStoreStackedInf(Stacked):
    store_cls = HDF5SingleStore
    result_shape = (None, np.inf)


class TestZarrStoreStacked(Stacked):
    store_cls = ZarrStore


class TestZarrStoreStackedCompressed(Stacked):
    store_cls = ZarrStore
    store_options = {"compression": "gzip"}


class TestZarrStoreStackedChunked(Stacked):
    store_cls = ZarrStore
    store_options = {"chunks": (2,)}


class TestZarrStoreStackedSharded(Stacked):
    store_cls = ZarrStore
    store_options = {"shard_calls": 5}


class TestZarrStoreStackedShardedCompressedChunked(Stacked):
    """Shards whose inner chunks are compressed and split (2 inner chunks per slot)."""

    store_cls = ZarrStore
    store_options = {"shard_calls": 4, "compression": "gzip", "chunks": (3,)}


class TestZarrStoreStackedInf(Stacked):
    store_cls = ZarrStore
    store_options = {"compression": "zstd"}
    result_shape = (None, np.inf)


class TestZarrStoreStackedInfRows(Stacked):
    """An np.inf axis in zip shards (a row per call, or a group when its length differs)."""

    store_cls = ZarrStore
    store_options = {"shard_calls": "rows"}
    result_shape = (None, np.inf)


class TestZarrStoreStackedInfRowsCompressed(Stacked):
    store_cls = ZarrStore
    store_options = {"shard_calls": True, "compression": "zstd"}
    result_shape = (None, np.inf)


class TestMemoryStoreStacked(Stacked):
    store_cls = MemoryStore
