"""The one place that makes zarr chunk bytes itself, and why it still does.

The ``"zarr"`` store's workers write whole chunks of two arrays the store
created itself, whose bytes the zarr v3 spec fixes (the ``bytes`` codec alone:
the values in C order, little endian):

* a call's slot of ``result_0`` when it is exactly one uncompressed chunk (the
  default layout, :func:`whole_slot_chunks`), as a file written by hand
  (:func:`acme_core.fileio.write_segments_atomic`: temporary name, ``writev``,
  rename);
* a call's entry of ``acme_extent`` (8 bytes; ``np.inf`` shapes only), through
  zarr's own store layer, ``LocalStore.set_sync`` (the same atomic
  temporary-file-and-rename).

Keys come from each array's own chunk key encoding (``encode_chunk_key``), and
``tests/storage/test_zarr_fast.py`` checks that these chunks are byte for byte
what zarr-python writes. Everything else (compressed or multi-chunk slots, the
slots of an ``np.inf`` axis, every group without ``result_shape``) goes through
zarr-python's ``Array`` API.

Why not zarr-python for these chunks: ``Array.__setitem__`` runs every write
through zarr's event loop in another thread, which costs more than writing a
1 MB chunk. ``LocalStore.set_sync`` needs no event loop but adds, per chunk,
zarr's pathlib handling, a ``mkdir`` of the parent, a ``uuid4`` and a buffered
``open`` (about 0.15-0.25 ms here): within 10% only where a call costs much more
than that anyway. ``benchmarks/bench_stores.py`` (9 reps each; MB/s of the
variant over the by-hand path, median of the run; the VM was shared with other
engineers' test suites, load 1-8 on 2 cores; every row in ``benchmarks/README.md``):

=============================  ==========  ==========  ===========  ===========
slot chunks (finite shape)     0.1 MB      1 MB        8 MB         64 MB
=============================  ==========  ==========  ===========  ===========
set_sync, end to end (A)       71%, 69%    87%, 82%    61%, 93%     118%, 97%
set_sync, write path (B)       62%, 44%    78%, 83%    102%, 89%    89%, 98%
``Array`` API, A               20%, 25%    38%, 34%    75%, 132%    101%, 134%
``Array`` API, B               28%, 18%    32%, 28%    70%, 56%     102%, 81%
=============================  ==========  ==========  ===========  ===========

(each cell: run 1, run 2; ``Array`` API: every chunk through ``Array.__setitem__``).
``acme_extent`` entries (``np.inf`` shape, slots through zarr-python in every
variant), three runs at 0.1 and 1 MB: set_sync 83-103% end to end (medians of
the runs 94%, 92%), 91-106% on the write path (100%, 102%); the ``Array`` API
56-96% (medians 61-80%). So the extent entries went to ``set_sync`` and the
slot chunks stayed written by hand.

To re-measure after upgrading zarr::

    python benchmarks/bench_stores.py --stores zarr zarr-set_sync zarr-api [--inf]

When ``zarr-set_sync`` is within 10% of ``zarr`` at every size, write slots
with ``set_sync`` too (``ZarrStore.slots_by_hand = False``); when ``zarr-api``
is, this module can go (``ZarrStore.fast_chunks = False``).
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from acme_core.fileio import write_segments_atomic
from acme_storage.zarr._zarr import ZArray

__all__ = ["FastChunks", "whole_slot_chunks"]

#: dtype kinds whose chunk bytes are the values' own bytes (bool, ints, floats, complex)
_RAW_KINDS = frozenset("biufc")


def whole_slot_chunks(array: ZArray, stacking_dim: int) -> bool:
    """Whether each call's slot of ``array`` is one chunk whose bytes zarr's spec fixes.

    True when the array's only codec is ``bytes`` (no filters, no compressors,
    no sharding; little endian or single-byte), its dtype is plain numeric, and
    its chunk is exactly one call's slot: the chunk is then the slot's values in
    C order, little endian.
    """
    from zarr.codecs import BytesCodec, Endian

    codecs = array.metadata.codecs
    if len(codecs) != 1 or not isinstance(codecs[0], BytesCodec):
        return False
    if codecs[0].endian not in (None, Endian.little) or array.dtype.kind not in _RAW_KINDS:
        return False
    slot = [s for k, s in enumerate(array.shape) if k != stacking_dim]
    chunk = [c for k, c in enumerate(array.chunks) if k != stacking_dim]
    return 0 not in slot and chunk == slot and array.chunks[stacking_dim] == 1


def _little_endian_bytes(data: np.ndarray[Any, Any]) -> memoryview:
    """The ``bytes`` codec's output: the values in C order, little endian."""
    raw = np.ascontiguousarray(data, dtype=data.dtype.newbyteorder("<"))
    return raw.reshape(-1).view(np.uint8).data


class FastChunks:
    """Writes whole chunks of ``result_0`` (one call's slot) and ``acme_extent`` (8 bytes).

    Parameters
    ----------
    root : str
        The container ``<out>/<fn>.zarr``.
    slot_encoding, extent_encoding : zarr ChunkKeyEncoding or None
        The arrays' chunk key encodings (from their metadata); None when that
        array's chunks go through zarr-python.
    slots_by_hand : bool
        Write slot chunks with :mod:`acme_core.fileio` (the default, see the
        module docstring), else with ``LocalStore.set_sync``.
    """

    def __init__(self, root: str, slot_encoding: Any, extent_encoding: Any,
                 slots_by_hand: bool = True) -> None:
        self.root = root
        self.slot_encoding = slot_encoding
        self.extent_encoding = extent_encoding
        self.slots_by_hand = slots_by_hand
        self._store: Any = None

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_store": None}  # opened again in each process

    def _local_store(self) -> Any:
        if self._store is None:
            from zarr.storage import LocalStore

            self._store = LocalStore(self.root)
        return self._store

    def _set(self, key: str, data: memoryview) -> None:
        """``LocalStore.set_sync``: zarr's atomic write of one key, without an event loop."""
        from zarr.core.buffer import default_buffer_prototype

        buffer = default_buffer_prototype().buffer.from_array_like(np.frombuffer(data, np.uint8))
        self._local_store().set_sync(key, buffer)

    def write_slot(self, task_id: int, ndim: int, stacking_dim: int,
                   data: np.ndarray[Any, Any]) -> None:
        """Write call ``task_id``'s slot of ``result_0`` as its chunk (atomically)."""
        coords = [0] * ndim
        coords[stacking_dim] = task_id
        key = f"result_0/{self.slot_encoding.encode_chunk_key(tuple(coords))}"
        if self.slots_by_hand:
            write_segments_atomic(os.path.join(self.root, key), [_little_endian_bytes(data)])
        else:
            self._set(key, _little_endian_bytes(data))

    def _extent_key(self, task_id: int) -> str:
        return f"acme_extent/{self.extent_encoding.encode_chunk_key((task_id,))}"

    def write_extent(self, task_id: int, length: int) -> None:
        """Write call ``task_id``'s entry of ``acme_extent`` (atomically)."""
        self._set(self._extent_key(task_id), _little_endian_bytes(np.array([length], "<i8")))

    def read_extent(self, task_id: int) -> int:
        """Call ``task_id``'s entry of ``acme_extent``; -1 (the fill value) if never written."""
        buffer = self._local_store().get_sync(self._extent_key(task_id))
        if buffer is None:
            return -1
        return int(np.frombuffer(buffer.to_bytes(), "<i8")[0])
