"""The zarr-python seam of the zarr store: import, codecs, arrays, keys, a call's group.

Everything the store asks of zarr-python goes through here, by zarr's public
API, with three choices that say why:

* :func:`resize_axis` shrinks an array with ``delete_outside_chunks=False``:
  ``Array.resize`` would list every chunk coordinate of the old shape to delete
  the ones outside the new one, and the store's provisional ``np.inf`` axis is
  ``2**40`` long (:mod:`acme_storage.zarr.store`). Nothing lies outside anyway:
  the axis shrinks to the longest result written.
* :func:`chunk_keys` lists what an array holds through the store
  (``LocalStore.list_dir``), and :func:`slot_keys` names each call's first
  chunk through the array's own chunk key encoding (``encode_chunk_key``): the
  written mask never parses a file name. (zarr 3.1.6's ``decode_chunk_key`` of
  the ``default`` encoding fails on every key; zarr-python PR #4219 fixed it.)
* A call's group (no ``result_shape``) is written under a temporary name next to
  the container and renamed into place (:func:`write_group`): zarr writes a
  group key by key, so this is what makes it complete or absent.

zarr is imported on first use, not with this module.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any, TypeAlias

import numpy as np

from acme_core.errors import require
from acme_core.fileio import temporary_name
from acme_storage import _layout
from acme_storage._values import Named, decoded

__all__ = [
    "chunks_whole",
    "whole_chunk_size",
    "SEPARATOR",
    "ZArray",
    "ZGroup",
    "Storable",
    "chunk_keys",
    "compressors",
    "create_array",
    "create_stacked",
    "encode_shard",
    "open_array",
    "open_group",
    "read_call",
    "read_extras",
    "resize_axis",
    "slot_keys",
    "storables",
    "write_group",
    "zarr",
]

#: a ``zarr.Array`` and a ``zarr.Group`` (zarr is imported lazily: no static types here)
ZArray: TypeAlias = Any
ZGroup: TypeAlias = Any
#: ``(data, is_text)`` of one array of a call's group
Storable: TypeAlias = tuple[Any, bool]

#: chunk key separator of the stacked arrays: flat keys ``c.<i>.0`` (no directory per call)
SEPARATOR = "."


def zarr() -> ModuleType:
    """The zarr module.

    Raises
    ------
    acme_core.errors.MissingDependencyError
        zarr is not installed (the message names the pip command).
    """
    return require("zarr", "zarr", "The zarr store")


def compressors(compression: Any, level: int | None) -> Any:
    """The zarr ``compressors`` argument for the store's ``compression`` option."""
    if compression is None or compression is False or compression == "none":
        return None
    if compression == "default":
        return "auto"
    if not isinstance(compression, str):
        return compression  # codec object(s), passed through
    codecs = zarr().codecs
    if compression == "zstd":
        return codecs.ZstdCodec(level=3 if level is None else level)
    if compression == "gzip":
        return codecs.GzipCodec(level=5 if level is None else level)
    return codecs.BloscCodec(cname="zstd", clevel=5 if level is None else level,
                             shuffle="shuffle")


def open_array(path: str | os.PathLike[str], mode: str = "r") -> ZArray:
    """The array at ``path``; opened for writing, chunks are written even when all fill value.

    ``write_empty_chunks`` is runtime configuration, not stored in the array:
    without it zarr scans every chunk for the fill value and drops a written
    chunk of zeros, whose file is what says the call wrote its slot.
    """
    array = zarr().open_array(store=os.fspath(path), mode=mode)
    return array.with_config({"write_empty_chunks": True}) if mode != "r" else array


def open_group(path: str | os.PathLike[str], mode: str = "r") -> ZGroup:
    """The zarr v3 group at ``path`` (``mode="w"`` creates it afresh)."""
    return zarr().open_group(store=os.fspath(path), mode=mode, zarr_format=3)


def create_stacked(group: ZGroup, name: str, shape: Sequence[int], chunks: Sequence[int],
                   dtype: np.dtype[Any], fill_value: int, codecs: Any,
                   shards: Sequence[int] | None = None) -> ZArray:
    """A stacked array: flat chunk keys ``c.<i>.<j>``, little endian, chunks always written.

    With ``shards`` (:mod:`acme_storage.zarr.shards`), zarr v3 sharding: the keys
    name shards, ``chunks`` are the inner chunks, the index at each shard's end.
    """
    bytes_codec = zarr().codecs.BytesCodec
    return group.create_array(
        name, shape=tuple(shape), chunks=tuple(chunks), dtype=dtype, fill_value=fill_value,
        shards=tuple(shards) if shards is not None else None,
        compressors=codecs, filters=None,
        serializer=bytes_codec(endian="little") if dtype.itemsize > 1 else bytes_codec(endian=None),
        chunk_key_encoding={"name": "default", "separator": SEPARATOR},
        config={"write_empty_chunks": True})


def encode_shard(metadata: bytes, key: str, existing: bytes | None,
                 writes: list[tuple[tuple[Any, ...], np.ndarray[Any, Any]]]) -> bytes:
    """The bytes of the shard ``key`` after ``writes``, encoded by zarr-python in memory.

    ``metadata`` is the sharded array's ``zarr.json``; ``existing`` the shard's
    bytes on disk (None: a new shard). Each ``(region, data)`` is written as
    ``array[region] = data`` into a ``MemoryStore`` array of that metadata, which
    holds only this shard: zarr merges the writes into the inner chunks already
    there (untouched inner chunks stay as they were, or absent), writes every
    written inner chunk even when it is all fill value (``write_empty_chunks``),
    and builds the shard's index. Nothing touches the disk here.
    """
    from zarr.core.buffer import default_buffer_prototype

    buffer = default_buffer_prototype().buffer
    held = {"zarr.json": buffer.from_bytes(metadata)}
    if existing is not None:
        held[key] = buffer.from_bytes(existing)
    z = zarr()
    array = z.open_array(store=z.storage.MemoryStore(held), mode="r+")
    array = array.with_config({"write_empty_chunks": True})
    for region, data in writes:
        array[region] = data
    return bytes(held[key].to_bytes())


def resize_axis(path: str | os.PathLike[str], axis: int, length: int) -> None:
    """Set one axis of the array at ``path`` to ``length`` (driver only; see the module docstring)."""
    from zarr.core.sync import sync

    array = open_array(path, "r+")
    shape = list(array.shape)
    shape[axis] = int(length)
    sync(array.async_array.resize(tuple(shape), delete_outside_chunks=False))


async def _collect(keys: AsyncIterator[str]) -> set[str]:
    return {key async for key in keys}


def chunk_keys(path: str | os.PathLike[str]) -> set[str]:
    """Every key stored directly in the array directory ``path`` (empty if there is none)."""
    if not os.path.isdir(path):
        return set()
    from zarr.core.sync import sync
    from zarr.storage import LocalStore

    return sync(_collect(LocalStore(os.fspath(path), read_only=True).list_dir("")))


def whole_chunk_size(array: ZArray) -> int | None:
    """The size in bytes every chunk file of ``array`` has, when it is fixed; else None.

    Fixed for uncompressed, unfiltered numbers: a file of another size is one a
    crash cut short. Compressed chunks and text have no fixed size.
    """
    dtype = np.dtype(array.dtype) if isinstance(array.dtype, np.dtype) else None
    if array.compressors or array.filters or dtype is None or dtype.kind not in "biufc":
        return None
    return int(np.prod(array.chunks)) * dtype.itemsize


def chunks_whole(path: str | os.PathLike[str]) -> bool:
    """Whether every chunk file of the array at ``path`` is complete (as far as sizes tell).

    No file may be empty, and with :func:`whole_chunk_size` each has that size.
    """
    expected = whole_chunk_size(open_array(path))
    for directory, _dirs, files in os.walk(path):
        for name in files:
            if name == "zarr.json":
                continue
            size = os.stat(os.path.join(directory, name)).st_size
            if size == 0 or (expected is not None and size != expected):
                return False
    return True


def slot_keys(array: ZArray, stacking_dim: int, n_calls: int) -> dict[int, str]:
    """Task id -> the key of the first chunk of its slot in ``array``, by the array's encoding."""
    coords = [0] * array.ndim
    keys = {}
    for i in range(n_calls):
        coords[stacking_dim] = i
        keys[i] = array.metadata.encode_chunk_key(tuple(coords))
    return keys


def _storable(item: Any) -> Storable | None:
    """``(data, is_text)`` for one return element; None if zarr has no data type for it."""
    if isinstance(item, str):
        return item, True
    data = item if isinstance(item, np.ndarray) else np.asarray(item)
    if data.dtype.kind == "U" or (data.dtype == object and data.size
                                  and all(isinstance(v, str) for v in data.ravel())):
        return data.astype(object), True
    if data.dtype == object:
        return None
    return data, False


def storables(planned: list[Named]) -> tuple[dict[str, Storable], str | None]:
    """``({name: (data, is_text)}, None)`` for a call's planned results, or ``({}, why)``
    when zarr cannot hold one of them (the store then pickles the value, or fails
    the call with ``result_shape``)."""
    arrays: dict[str, Storable] = {}
    for name, data, is_text in planned:
        found = (data, True) if is_text else _storable(data)
        if found is None:
            return {}, f"{type(data).__name__} has no zarr data type"
        arrays[name] = found
    return arrays, None


def _create(group: ZGroup, name: str, data: Any, is_text: bool, codecs: Any,
            chunks: tuple[int, ...] | None) -> None:
    if is_text:
        shape = () if isinstance(data, str) else data.shape
        arr = group.create_array(name, shape=shape, dtype=str,
                                 chunks=tuple(max(1, s) for s in shape))
    else:
        shape = data.shape
        arr = group.create_array(
            name, shape=shape, dtype=data.dtype,
            chunks=chunks if chunks is not None and len(chunks) == data.ndim
            else tuple(max(1, s) for s in shape),
            compressors=codecs if data.ndim else None, config={"write_empty_chunks": True})
    arr[...] = data


def create_array(group: ZGroup, name: str, data: Any, is_text: bool, codecs: Any,
                 chunks: tuple[int, ...] | None) -> None:
    """One array of a call's group, as :func:`write_group` makes it (in any zarr store)."""
    _create(group, name, data, is_text, codecs, chunks)


def write_group(final: Path, arrays: dict[str, Storable], codecs: Any,
                chunks: tuple[int, ...] | None) -> None:
    """Write ``arrays`` as the group ``final`` (``<root>/comp_<i>``): temporary name, then rename."""
    # next to the container, not in it: zarr would list it as a member of the group
    tmp = temporary_name(final.parent.parent / f"{final.parent.name}.{final.name}")
    try:
        group = open_group(tmp, "w")
        for name, (data, is_text) in arrays.items():
            _create(group, name, data, is_text, codecs, chunks)
        _replace_dir(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _replace_dir(tmp: Path, final: Path) -> None:
    """Move the directory ``tmp`` to ``final``, replacing an earlier one (a rerun call)."""
    for _ in range(5):
        try:
            os.rename(tmp, final)
            return
        except OSError:
            if not final.exists():
                raise
            # a directory rename cannot replace a non-empty directory: move the old
            # one aside first (the slot is briefly absent, never half-written)
            trash = temporary_name(final)
            with contextlib.suppress(FileNotFoundError):
                os.rename(final, trash)
                shutil.rmtree(trash, ignore_errors=True)
    os.rename(tmp, final)


def read_call(group: ZGroup) -> Any:
    """A call's arrays as one value (a single ``result_0``) or a tuple in result order."""
    values = [_read(group[k]) for k in _layout.result_keys(group.array_keys())]
    return values[0] if len(values) == 1 else tuple(values)


def read_extras(group: ZGroup) -> list[Any]:
    """A call's extra return values (``result_1``, ...) in result order."""
    return [_read(group[k]) for k in _layout.result_keys(group.array_keys(), extras_only=True)]


def _read(array: ZArray) -> Any:
    """An array's value; text as ``str``, bytes (zarr's fixed-length bytes) as bytes."""
    return decoded(array[...], text=np.dtype(array.dtype).kind not in "SV")
