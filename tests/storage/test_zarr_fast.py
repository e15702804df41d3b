"""The zarr store's chunk bytes: its fast path writes what zarr-python writes, byte for byte.

Each case is written by real writers with whole chunks made by
:mod:`acme_storage.zarr._fast` (slot chunks by hand as shipped, and through
``LocalStore.set_sync``) and with every chunk through zarr-python
(``ZarrStore.fast_chunks = False``); the containers must hold the same chunk
files with the same bytes, and read back with zarr as the values written.
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest

from acme_core.errors import ArgumentValueError, ResultMismatchError, ResultTypeError
from acme_core.store import RunInfo
from acme_storage.zarr import ZarrStore
from acme_storage.zarr import _zarr as zarr_seam
from acme_storage.zarr._fast import whole_slot_chunks
from acme_storage.zarr.store import CAPACITY

zarr = pytest.importorskip("zarr")


class ThroughZarr(ZarrStore):
    """Every chunk through zarr-python (the reference)."""

    fast_chunks: ClassVar[bool] = False


class SlotsThroughSetSync(ZarrStore):
    """Slot chunks through zarr's ``LocalStore.set_sync`` (the benchmark's ``zarr-set_sync``)."""

    slots_by_hand: ClassVar[bool] = False


def write_run(tmp_path: Path, store_cls: type[ZarrStore], shape: tuple[float, ...], dim: int,
              dtype: str, values: list[Any], **options: Any) -> Path:
    n = len(values)
    out = tmp_path / store_cls.__name__
    store = store_cls(**options)
    store.prepare(RunInfo("f", n, out, result_shape=shape, result_dtype=np.dtype(dtype),
                          stacking_dim=dim))
    writer = pickle.loads(pickle.dumps(store.writer()))  # as a worker gets it
    refs = [writer.write(i, v) for i, v in enumerate(values)]
    store.finalize(refs, set())
    return out / "f.zarr"


def files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file()}


CASES = {
    "float64": ((5, 3), 0, "float64", lambda i: np.arange(3.0) + i),
    "bool": ((4, 6), 0, "bool", lambda i: np.arange(6) % (i + 2) == 0),
    "int8": ((4, 5), 0, "int8", lambda i: np.arange(5, dtype=np.int8) - i),
    "uint16 2-d slot": ((3, 2, 4), 0, "uint16", lambda i: np.arange(8, dtype=np.uint16)
                        .reshape(2, 4) * (i + 1)),
    "complex": ((3, 4), 0, "complex128", lambda i: np.arange(4) * (1 + 2j) + i),
    "big-endian input": ((3, 4), 0, ">f4", lambda i: np.arange(4, dtype=">f4") + i),
    "stacked in the middle": ((2, 4, 3), 1, "float32", lambda i: np.ones((2, 3), "f4") * i),
    "non-contiguous input": ((3, 4), 0, "float64", lambda i: np.arange(8.0)[::2] + i),
    "zeros are written": ((3, 2), 0, "float64", lambda i: np.zeros(2)),
    "with extra returns": ((3, 2), 0, "float64", lambda i: (np.full(2, float(i)), i, "x")),
}


@pytest.mark.parametrize("store_cls", [ZarrStore, SlotsThroughSetSync], ids=["zarr", "set_sync"])
@pytest.mark.parametrize("case", list(CASES))
def test_fast_chunks_are_the_bytes_zarr_writes(tmp_path, case, store_cls):
    shape, dim, dtype, make = CASES[case]
    values = [make(i) for i in range(int(shape[dim]))]
    fast = write_run(tmp_path, store_cls, shape, dim, dtype, values)
    reference = write_run(tmp_path, ThroughZarr, shape, dim, dtype, values)
    assert files(fast) == files(reference)
    array = zarr.open_array(str(fast / "result_0"), mode="r")
    assert whole_slot_chunks(array, dim)
    for i, value in enumerate(values):
        first = value[0] if isinstance(value, tuple) else value
        index = [slice(None)] * array.ndim
        index[dim] = i
        np.testing.assert_array_equal(array[tuple(index)], np.asarray(first).astype(dtype))


@pytest.mark.parametrize("store_cls", [ZarrStore, ThroughZarr], ids=["fast", "through-zarr"])
def test_inf_axis_extent_entries_are_the_same_either_way(tmp_path, store_cls):
    values = [np.arange(float(i % 3 + 1)) for i in range(4)]
    root = write_run(tmp_path, store_cls, (4, np.inf), 0, "float64", values)
    extent = zarr.open_array(str(root / "acme_extent"), mode="r")
    np.testing.assert_array_equal(extent[...], [1, 2, 3, 1])
    assert zarr.open_array(str(root / "result_0"), mode="r").shape == (4, 3)
    # one 8-byte chunk per call: "c.<i>", little-endian int64
    assert (root / "acme_extent" / "c.2").read_bytes() == np.array([3], "<i8").tobytes()


@pytest.mark.parametrize("options, shape, fast", [
    ({}, (4, 3), True),
    ({"compression": "zstd"}, (4, 3), False),      # compressed: zarr's codecs make the bytes
    ({"chunks": (2,)}, (4, 4), False),             # two chunks per slot
    ({}, (4, np.inf), False),                      # the slot is not one chunk of the array
    ({}, (4, 0), False),                           # an empty slot has no chunk
], ids=["plain", "compressed", "chunked", "inf", "empty"])
def test_only_whole_uncompressed_slots_take_the_fast_path(tmp_path, options, shape, fast):
    store = ZarrStore(**options)
    store.prepare(RunInfo("f", 4, tmp_path, result_shape=shape, result_dtype=np.dtype("f8"),
                          stacking_dim=0))
    writer = store.writer()
    assert (writer.fast is not None and writer.fast.slot_encoding is not None) == fast
    array = zarr_seam.open_array(tmp_path / "f.zarr" / "result_0")
    assert whole_slot_chunks(array, 0) == fast


def test_a_rerun_replaces_its_chunk_and_leaves_no_temporary(tmp_path):
    store = ZarrStore()
    store.prepare(RunInfo("f", 2, tmp_path, result_shape=(2, 3), result_dtype=np.dtype("f8"),
                          stacking_dim=0))
    writer = store.writer()
    writer.write(0, np.ones(3))
    writer.write(0, np.full(3, 5.0))  # a retried call
    assert sorted(os.listdir(tmp_path / "f.zarr" / "result_0")) == ["c.0.0", "zarr.json"]
    assert set(store.existing()) == {0}
    np.testing.assert_array_equal(zarr.open_array(str(tmp_path / "f.zarr" / "result_0"))[0],
                                  [5, 5, 5])


def test_finalize_shrinks_the_provisional_axis_without_listing_its_chunks(tmp_path):
    """``Array.resize`` alone would enumerate 2**40 / chunk coordinates per call to delete."""
    store = ZarrStore()
    store.prepare(RunInfo("f", 3, tmp_path, result_shape=(3, np.inf),
                          result_dtype=np.dtype("f8"), stacking_dim=0))
    path = tmp_path / "f.zarr" / "result_0"
    assert zarr.open_array(str(path)).shape == (3, CAPACITY)
    store.writer().write(1, np.arange(4.0))
    store.finalize([None, str(path), None], failed={0, 2})
    assert zarr.open_array(str(path)).shape == (3, 4)


@pytest.mark.parametrize("options", [{"compression": "snappy"}, {"compression_level": "9"},
                                     {"chunks": (0,)}, {"chunks": "2"}])
def test_bad_options_are_argument_errors(options):
    with pytest.raises(ArgumentValueError) as info:
        ZarrStore(**options)
    assert info.value.parameter == "store_options"


def test_wrong_results_fail_with_result_mismatch_errors(tmp_path):
    store = ZarrStore()
    store.prepare(RunInfo("f", 2, tmp_path, result_shape=(2, 3), result_dtype=np.dtype("f8"),
                          stacking_dim=0))
    writer = store.writer()
    with pytest.raises(ResultMismatchError, match="does not fit `result_shape`") as info:
        writer.write(0, np.ones(4))
    assert info.value.parameter == "result_shape"
    with pytest.raises(ResultTypeError, match="zarr cannot hold"):
        writer.write(1, (np.ones(3), {"not": "storable"}))
    assert store.existing() == {}
