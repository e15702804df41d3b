"""The one place that makes zarr chunk bytes itself: whole chunks of the store's own layouts.

(Figures and the decision: filled in after the measurement.)
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
    C order, little endian (zarr v3 spec, ``bytes`` codec).
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
    raw = np.ascontiguousarray(data, dtype=data.dtype.newbyteorder("<"))
    return raw.reshape(-1).view(np.uint8).data


class FastChunks:
    """Writes whole chunks of ``result_0`` (one call's slot) and ``acme_extent`` (8 bytes).

    Parameters
    ----------
    root : str
        The container ``<out>/<fn>.zarr``.
    slot_encoding, extent_encoding : zarr ChunkKeyEncoding or None
        The arrays' chunk key encodings (from their metadata); None when chunks of
        that array go through zarr-python (:meth:`Array.__setitem__`).
    by_hand : bool
        Write the files with :mod:`acme_core.fileio` instead of ``LocalStore.set_sync``.
    """

    def __init__(self, root: str, slot_encoding: Any, extent_encoding: Any,
                 by_hand: bool = False) -> None:
        self.root = root
        self.slot_encoding = slot_encoding
        self.extent_encoding = extent_encoding
        self.by_hand = by_hand
        self._store: Any = None

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_store": None}  # opened again in each process

    def _local_store(self) -> Any:
        if self._store is None:
            from zarr.storage import LocalStore

            self._store = LocalStore(self.root)
        return self._store

    def _put(self, key: str, data: memoryview) -> None:
        if self.by_hand:
            write_segments_atomic(os.path.join(self.root, key), [data])
            return
        from zarr.core.buffer import default_buffer_prototype

        buffer = default_buffer_prototype().buffer.from_array_like(np.frombuffer(data, np.uint8))
        self._local_store().set_sync(key, buffer)

    def write_slot(self, task_id: int, ndim: int, stacking_dim: int,
                   data: np.ndarray[Any, Any]) -> None:
        """Write call ``task_id``'s slot of ``result_0`` as its chunk (atomically)."""
        coords = [0] * ndim
        coords[stacking_dim] = task_id
        key = f"result_0/{self.slot_encoding.encode_chunk_key(tuple(coords))}"
        self._put(key, _little_endian_bytes(data))

    def _extent_key(self, task_id: int) -> str:
        return f"acme_extent/{self.extent_encoding.encode_chunk_key((task_id,))}"

    def write_extent(self, task_id: int, length: int) -> None:
        """Write call ``task_id``'s entry of ``acme_extent`` (atomically)."""
        self._put(self._extent_key(task_id), _little_endian_bytes(np.array([length], "<i8")))

    def read_extent(self, task_id: int) -> int:
        """Call ``task_id``'s entry of ``acme_extent``; -1 (the fill value) if never written."""
        if self.by_hand:
            try:
                with open(os.path.join(self.root, self._extent_key(task_id)), "rb") as fh:
                    raw = fh.read()
            except FileNotFoundError:
                return -1
        else:
            buffer = self._local_store().get_sync(self._extent_key(task_id))
            if buffer is None:
                return -1
            raw = buffer.to_bytes()
        return int(np.frombuffer(raw, "<i8")[0])

