"""The ``"zarr"`` store: every result in one zarr v3 group ``<out>/<fn>.zarr``.

::

    <out>/<fn>.zarr/comp_<i>/result_<k>   without result_shape (ACME's names and
                                          collapse rule, as on HDF5)
    <out>/<fn>.zarr/result_0              with result_shape: one array, chunked one
                                          call per chunk along the stacking axis
    <out>/<fn>.zarr/comp_<i>/result_<k>   ... plus extra return values (k >= 1)
    <out>/<fn>.zarr/acme_extent           ... plus, with an np.inf axis, one int per call
    <out>/<fn>_<i>.pickle                 values zarr cannot hold, per call

Concurrency without locks
-------------------------
A zarr array is a directory of chunk files, each replaced atomically when
written (temporary name, then rename). With one call per chunk along the
stacking axis, no two calls ever share a chunk, so workers on any host write
their slots of ``result_0`` in parallel without a lock. A worker killed mid-write
leaves only a file or group under a temporary ``.partial`` name, which no
reader takes for a result; ``finalize`` removes them. Nobody but the driver
touches array metadata (``zarr.json``), and only before the workers start
(``prepare``) or after they finish (``finalize``). Chunk keys use zarr v3's
``default`` encoding with the separator ``"."`` (``result_0/c.<i>.0``): one file
per call, no directory per call.

In the default layout (uncompressed numbers, one chunk per call's slot) the
worker writes the chunk file itself: the zarr v3 spec fixes its bytes (the slot
in C order, little endian) and zarr reads it back as any other chunk. That skips
zarr-python's event-loop round trips, which cost more than writing a 1 MB chunk.
Compressed or multi-chunk slots are written through zarr-python.

Without ``result_shape`` each call writes its group under a temporary name next
to the container and renames it into place as ``comp_<i>``: a call's group is
complete or absent.

The written mask
----------------
Chunks are always written, even when they equal the fill value
(``write_empty_chunks``), so a slot's chunk file exists exactly when its call
wrote it: a written zero has a file, a missing call has none. With an ``np.inf``
axis, ``acme_extent`` (int64, one chunk per call, so also written without a
lock) holds each call's length along that axis once its slot is complete, and
-1 (the fill value) before. :func:`acme_core.open_results` masks every slot
that the manifest does not record as finished or that has no data on disk, so
a missing call never reads back as a written zero.

``np.inf`` (unlimited axis)
---------------------------
Concurrent resizing of a zarr array is unsafe (every writer would rewrite
``zarr.json``). So ``prepare`` creates ``result_0`` with a provisional extent of
``2**40`` along the ``np.inf`` axis (chunks that are never written take no
space), each worker writes its result's actual length there and records it in
``acme_extent``, and ``finalize`` (one process) sets the extent to the longest
result by rewriting the ``shape`` in ``result_0/zarr.json``. Shorter results are
padded with the fill value 0, as ACME's virtual dataset does. Until
``finalize`` runs (e.g. after a crash), ``open_results`` cuts the axis to the
longest recorded result itself. The chunk length along that axis defaults to
about 256 KiB of data: uncompressed chunks are stored whole, so a much shorter
result still takes one chunk, and a much longer one takes many. Choose it with
the option ``chunks`` (or compress: padding then costs next to nothing).

Values zarr cannot hold
-----------------------
Without ``result_shape``, a return value that zarr cannot store (dicts, ``None``,
arbitrary objects) is pickled instead, per call, as ``<out>/<fn>_<i>.pickle``
holding ``[value]`` (the ``"hdf5"`` store's emergency pickling); the rest of the
run stays in ``<fn>.zarr`` and ``compute()`` returns the pickle's path for that
call. With ``result_shape`` every return value must be storable (the stacked
array cannot hold a pickle): such a call fails with a ``TypeError``.

zarr is imported only inside methods, so listing the stores does not need it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import numbers
import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from acme_core.errors import require
from acme_core.fileio import (
    atomic_path,
    final_name_of,
    remove_partials,
    temporary_name,
    write_bytes_atomic,
    write_segments_atomic,
)
from acme_core.store import BaseStore, RunInfo
from acme_storage import naming, stacking
from acme_storage.pickled import read_emergency, write_emergency

log = logging.getLogger("acme")

#: provisional length of an ``np.inf`` axis until ``finalize`` sets the real one
CAPACITY = 2 ** 40
#: name of the per-call extent array (``np.inf`` shapes only)
EXTENT = "acme_extent"
#: chunk key separator of the stacked arrays: flat keys ``c.<i>.0`` (no directory per call)
SEPARATOR = "."
#: compression names the ``compression`` option understands
COMPRESSIONS = ("zstd", "gzip", "blosc")
#: target size of one chunk along an ``np.inf`` axis when ``chunks`` is not given
INF_CHUNK_BYTES = 2 ** 18


def _zarr() -> Any:
    return require("zarr", "zarr", "The zarr store")


def container_path(out: Path, func_name: str) -> Path:
    return naming.container(out, func_name, ".zarr")


def slot_chunk(root: Path, ndim: int, stacking_dim: int, task_id: int) -> Path:
    """The file of the first chunk of call ``task_id``'s slot in ``result_0``.

    zarr v3's ``default`` chunk key encoding: ``c`` and the chunk coordinates,
    joined by the separator.
    """
    coords = ["0"] * ndim
    coords[stacking_dim] = str(task_id)
    return root / "result_0" / SEPARATOR.join(["c", *coords])


def written_slots(root: Path, ndim: int, stacking_dim: int) -> set[int]:
    """Calls whose slot has its (first) chunk file in ``result_0`` (finite shapes)."""
    found: set[int] = set()
    directory = root / "result_0"
    if not directory.is_dir():
        return found
    for entry in os.scandir(directory):
        parts = entry.name.split(SEPARATOR)
        if len(parts) != ndim + 1 or parts[0] != "c" or not all(p.isdigit() for p in parts[1:]):
            continue  # zarr.json, temporary files
        coords = [int(p) for p in parts[1:]]
        if all(c == 0 for k, c in enumerate(coords) if k != stacking_dim):
            found.add(coords[stacking_dim])
    return found


def compressors(compression: Any, level: int | None) -> Any:
    """The zarr ``compressors`` argument for the store's ``compression`` option."""
    if compression is None or compression is False or compression == "none":
        return None
    if compression == "default":
        return "auto"
    if not isinstance(compression, str):
        return compression  # codec object(s), passed through
    from zarr import codecs

    if compression == "zstd":
        return codecs.ZstdCodec(level=3 if level is None else level)
    if compression == "gzip":
        return codecs.GzipCodec(level=5 if level is None else level)
    return codecs.BloscCodec(cname="zstd", clevel=5 if level is None else level,
                             shuffle="shuffle")


def _is_number(v: Any) -> bool:
    return isinstance(v, numbers.Number) and not isinstance(v, bool)


def _as_storable(item: Any) -> tuple[np.ndarray | str, bool]:
    """``(data, is_string)`` for one return element; raise TypeError if zarr cannot hold it."""
    if isinstance(item, str):
        return item, True
    data = item if isinstance(item, np.ndarray) else np.asarray(item)
    if data.dtype.kind == "U" or (data.dtype == object and data.size
                                  and all(isinstance(v, str) for v in data.ravel())):
        return data.astype(object), True
    if data.dtype == object:
        raise TypeError(f"{type(item).__name__} has no zarr data type")
    return data, False


def elements_to_arrays(value: Any, collapse: bool) -> dict[str, tuple[Any, bool]]:
    """ACME's names for a return value: ``{"result_<k>": (data, is_string)}``.

    ``collapse`` is ACME's rule without ``result_shape``: a value whose elements
    are all numbers is one array ``result_0``; all strings one string array.
    """
    items = stacking.elements(value)
    if collapse and items and all(_is_number(v) for v in items):
        return {"result_0": (np.asarray(items), False)}
    if collapse and items and all(isinstance(v, str) for v in items):
        return {"result_0": (np.array(items, dtype=object), True)}
    return {f"result_{k}": _as_storable(item) for k, item in enumerate(items)}


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


def _to_python(value: Any) -> Any:
    """zarr's read-back values as the HDF5 stores return them (strings as str / object)."""
    if isinstance(value, np.ndarray) and value.dtype.kind in "TUO":
        if value.ndim == 0:
            return str(value[()])
        return value.astype(object)
    return value


def read_group(group: Any) -> Any:
    """A call's arrays as one value (a single ``result_0``) or a tuple in result order."""
    names = sorted((k for k in group.array_keys() if k.startswith("result_")),
                   key=naming.natural_key)
    values = [_to_python(group[k][...]) for k in names]
    return values[0] if len(values) == 1 else tuple(values)


def read_extras(group: Any) -> list[Any]:
    names = sorted((k for k in group.array_keys() if k.startswith("result_") and k != "result_0"),
                   key=naming.natural_key)
    return [_to_python(group[k][...]) for k in names]


def _set_extent(array_dir: Path, axis: int, length: int) -> None:
    """Set one axis of a zarr v3 array's shape by rewriting ``zarr.json`` (driver only)."""
    meta_path = array_dir / "zarr.json"
    meta = json.loads(meta_path.read_text())
    meta["shape"][axis] = int(length)
    write_bytes_atomic(meta_path, json.dumps(meta, indent=2).encode())


class ZarrWriter:
    """Worker side: writes one call into ``<fn>.zarr`` (its slot, or its ``comp_<i>``)."""

    def __init__(self, root: str, func_name: str, result_shape: tuple[float, ...] | None,
                 stacking_dim: int | None, result_dtype: str | None, compressors: Any,
                 chunks: tuple[int, ...] | None, raw_chunks: bool = False) -> None:
        self.root = root
        #: write each slot's chunk file directly (see _write_raw_chunk)
        self.raw_chunks = raw_chunks
        self.func_name = func_name
        self.result_shape = result_shape
        self.stacking_dim = stacking_dim
        self.result_dtype = result_dtype
        self.compressors = compressors
        self.chunks = chunks
        self._arrays: dict[str, Any] = {}

    def __getstate__(self) -> dict[str, Any]:
        # open arrays stay in the process that opened them
        return {**self.__dict__, "_arrays": {}}

    def _array(self, name: str) -> Any:
        """Open (once per process) an array of the container for writing."""
        if name not in self._arrays:
            array = _zarr().open_array(store=os.path.join(self.root, name), mode="r+")
            # runtime config, not stored in the array: without it zarr scans every
            # chunk for the fill value (and would drop a written chunk of zeros)
            self._arrays[name] = array.with_config({"write_empty_chunks": True})
        return self._arrays[name]

    def write(self, task_id: int, value: Any) -> str:
        if self.result_shape is not None:
            return self._write_stacked(task_id, value)
        return self._write_group(task_id, value)

    # -- without result_shape -------------------------------------------------
    def _write_group(self, task_id: int, value: Any) -> str:
        root = Path(self.root)
        final = root / f"comp_{task_id}"
        emergency = naming.call_file(root.parent, self.func_name, task_id, ".pickle")
        try:
            arrays = elements_to_arrays(value, collapse=True)
        except TypeError as exc:
            log.warning("Could not write %s results have been pickled instead. Return values are "
                        "most likely not suitable for storage in zarr containers. Original error "
                        "message: %s", final, exc)
            write_emergency(emergency, value)
            shutil.rmtree(final, ignore_errors=True)
            return str(emergency)
        self._write_arrays(final, arrays)
        if emergency.exists():  # an earlier attempt of this call was pickled
            emergency.unlink()
        return str(final)

    def _write_arrays(self, final: Path, arrays: dict[str, tuple[Any, bool]]) -> None:
        """Write ``arrays`` as the group ``final``: under a temporary name, then renamed."""
        zarr = _zarr()
        # next to the container, not in it: zarr would list it as a member of the group
        tmp = temporary_name(final.parent.parent / f"{final.parent.name}.{final.name}")
        try:
            group = zarr.open_group(store=str(tmp), mode="w", zarr_format=3)
            for name, (data, is_string) in arrays.items():
                self._create(group, name, data, is_string)
            _replace_dir(tmp, final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise

    def _create(self, group: Any, name: str, data: Any, is_string: bool) -> None:
        if is_string:
            shape = () if isinstance(data, str) else data.shape
            arr = group.create_array(name, shape=shape, dtype=str,
                                     chunks=tuple(max(1, s) for s in shape))
            arr[...] = data
            return
        shape = data.shape
        chunks = (self.chunks if self.chunks is not None and len(self.chunks) == data.ndim
                  else tuple(max(1, s) for s in shape))
        arr = group.create_array(name, shape=shape, dtype=data.dtype, chunks=chunks,
                                 compressors=self.compressors if data.ndim else None,
                                 config={"write_empty_chunks": True})
        arr[...] = data

    # -- with result_shape ------------------------------------------------------
    def _write_stacked(self, task_id: int, value: Any) -> str:
        shape, dim = self.result_shape, self.stacking_dim
        assert shape is not None and dim is not None
        items = stacking.elements(value)
        dtype = np.dtype(self.result_dtype) if self.result_dtype else None
        data = stacking.check_slot_value(items[0], shape, dim, dtype)
        try:
            extras = {f"result_{k}": _as_storable(item) for k, item in enumerate(items) if k}
        except TypeError as exc:
            raise TypeError(f"call {task_id} returned a value zarr cannot hold ({exc}); with "
                            f"`result_shape` every return value must be an array, number or "
                            f"string (no pickling into a stacked result)") from exc
        inf = stacking.unlimited_axis(shape)
        length = 0
        if inf is not None:
            length = int(data.shape[inf - (inf > dim)])
            previous = self._read_extent(task_id)
            if previous > length:
                # a rerun with a shorter result: clear what the earlier attempt left
                stale = list(stacking.slot_region(shape, dim, task_id, data.shape))
                stale[inf] = slice(length, previous)
                self._array("result_0")[tuple(stale)] = 0
        # one call per chunk along the stacking axis: no other writer shares these chunks.
        if self.raw_chunks:
            self._write_raw_chunk(task_id, data)
        else:
            # a 1-long slice (not the integer) gives zarr whole chunks, which it
            # writes as they are instead of merging them into a fill-value copy
            region = list(stacking.slot_region(shape, dim, task_id, data.shape))
            region[dim] = slice(task_id, task_id + 1)
            self._array("result_0")[tuple(region)] = np.expand_dims(data, dim)
        root = Path(self.root)
        if extras:
            self._write_arrays(root / f"comp_{task_id}", extras)
        if inf is not None:
            # last: the slot counts as written only once its data is complete
            self._write_extent(task_id, length)
        return str(root / "result_0")

    def _write_raw_chunk(self, task_id: int, data: np.ndarray) -> None:
        """Write call ``task_id``'s slot as its chunk file, atomically, without zarr-python.

        Only for the layout ``ZarrStore.prepare`` marks as raw: no filters or
        compressors, the ``bytes`` codec (little endian), chunk key encoding
        ``default`` with ".", and one chunk holding exactly one call's slot. The
        zarr v3 spec then fixes the chunk's bytes: the slot in C order,
        little endian; its key is ``c.0...<i>...0``. This skips zarr-python's
        event-loop round trips, which cost more than the write of a 1 MB chunk.
        """
        assert self.stacking_dim is not None and self.result_shape is not None
        final = slot_chunk(Path(self.root), len(self.result_shape), self.stacking_dim, task_id)
        raw = np.ascontiguousarray(data, dtype=data.dtype.newbyteorder("<"))
        write_segments_atomic(os.fspath(final), [raw.reshape(-1).view(np.uint8).data])

    def _extent_chunk(self, task_id: int) -> Path:
        return Path(self.root) / EXTENT / f"c{SEPARATOR}{task_id}"

    def _read_extent(self, task_id: int) -> int:
        try:
            return int(np.frombuffer(self._extent_chunk(task_id).read_bytes(), "<i8")[0])
        except FileNotFoundError:
            return -1

    def _write_extent(self, task_id: int, length: int) -> None:
        """Write call ``task_id``'s ``acme_extent`` chunk (8 bytes) atomically.

        Going through zarr costs about a millisecond per call (its event loop
        round trip) for 8 bytes; the chunk's key and bytes are fixed by the zarr v3
        spec for the layout ``prepare`` creates, and zarr reads it back as usual.
        """
        with atomic_path(self._extent_chunk(task_id)) as tmp:
            tmp.write_bytes(np.array([length], dtype="<i8").tobytes())


class ZarrStore(BaseStore):
    """All results in one zarr v3 group ``<out>/<fn>.zarr`` (see the module docstring).

    Parameters
    ----------
    compression : str or codec, optional
        ``None`` (default: no compression, the fastest writes, like the HDF5
        stores), ``"zstd"``, ``"gzip"``, ``"blosc"``, ``"default"`` (zarr's
        default), or zarr codec object(s) passed as ``compressors``.
    compression_level : int, optional
        Level for the named compressors.
    chunks : tuple of int, optional
        Chunk shape of *one call's* result. With ``result_shape`` it excludes
        the stacking axis, which is always one call per chunk (that is what makes
        writes lock-free). Default: one chunk per call's result; about 256 KiB
        along an ``np.inf`` axis.
    """

    name: ClassVar[str] = "zarr"
    #: optional dependency -> the pip extra that installs it
    requires: ClassVar[dict[str, str]] = {"zarr": "zarr"}

    def __init__(self, compression: Any = None, compression_level: int | None = None,
                 chunks: Sequence[int] | None = None) -> None:
        super().__init__()
        if isinstance(compression, str) and compression not in (*COMPRESSIONS, "default", "none"):
            raise ValueError(f"`compression` has to be one of {', '.join(COMPRESSIONS)}, "
                             f"'default' or None (or zarr codecs), not {compression!r}")
        if compression_level is not None and (isinstance(compression_level, bool) or
                                              not isinstance(compression_level, int)):
            raise ValueError(f"`compression_level` has to be an integer, not "
                             f"{compression_level!r}")
        if chunks is not None:
            if (not isinstance(chunks, (list, tuple)) or not all(
                    isinstance(c, (int, np.integer)) and not isinstance(c, bool) and c >= 1
                    for c in chunks)):
                raise ValueError(f"`chunks` has to be a tuple of positive integers, not "
                                 f"{chunks!r}")
            chunks = tuple(int(c) for c in chunks)
        self.compression = compression
        self.compression_level = compression_level
        self.chunks: tuple[int, ...] | None = chunks

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(compression={self.compression!r}, "
                f"chunks={self.chunks!r})")

    @property
    def root(self) -> Path:
        assert self.run is not None and self.run.output_dir is not None
        return container_path(self.run.output_dir, self.run.func_name)

    def _compressors(self) -> Any:
        return compressors(self.compression, self.compression_level)

    # -- protocol ------------------------------------------------------------
    def prepare(self, run: RunInfo) -> None:
        super().prepare(run)
        zarr = _zarr()
        self.results_container = str(self.root)
        if run.resume and (self.root / "zarr.json").exists():
            inf = stacking.unlimited_axis(run.result_shape or ())
            if inf is not None:
                # new results may be longer than the extent an earlier finalize set
                _set_extent(self.root / "result_0", inf, CAPACITY)
            return
        if self.root.exists():
            shutil.rmtree(self.root)
        group = zarr.open_group(store=str(self.root), mode="w", zarr_format=3)
        if run.result_shape is None:
            return
        assert run.stacking_dim is not None
        dtype = np.dtype(run.result_dtype)
        shape, chunks = self._stacked_layout(run.result_shape, run.stacking_dim, dtype)
        from zarr.codecs import BytesCodec

        codecs = self._compressors()
        group.create_array("result_0", shape=shape, chunks=chunks, dtype=dtype, fill_value=0,
                           compressors=codecs, filters=None,
                           serializer=BytesCodec(endian="little") if dtype.itemsize > 1
                           else BytesCodec(endian=None),
                           chunk_key_encoding={"name": "default", "separator": SEPARATOR},
                           config={"write_empty_chunks": True})
        if stacking.unlimited_axis(run.result_shape) is None:
            return  # the slots' chunk files record what is written
        # The layout ZarrWriter writes directly (see _write_extent): no compression,
        # little-endian int64, chunk key "c.<i>" (zarr v3's default encoding with ".").
        from zarr.codecs import BytesCodec

        group.create_array(EXTENT, shape=(run.n_calls,), chunks=(1,), dtype="<i8",
                           fill_value=-1, compressors=None, filters=None,
                           serializer=BytesCodec(endian="little"),
                           chunk_key_encoding={"name": "default", "separator": SEPARATOR},
                           config={"write_empty_chunks": True})

    def _stacked_layout(self, result_shape: tuple[float, ...], dim: int,
                        dtype: np.dtype) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """(array shape, chunk shape): one call per chunk along ``dim``."""
        inf = stacking.unlimited_axis(result_shape)
        shape = tuple(CAPACITY if k == inf else int(s) for k, s in enumerate(result_shape))
        per_call = [s for k, s in enumerate(shape) if k != dim]
        if self.chunks is not None:
            if len(self.chunks) != len(per_call):
                raise ValueError(f"`chunks` {self.chunks} has to have one entry per axis of one "
                                 f"call's result ({len(per_call)}: `result_shape` without the "
                                 f"stacking axis)")
            per_call = list(self.chunks)
        elif inf is not None:
            axis = inf - (inf > dim)
            other = math.prod(max(1, s) for k, s in enumerate(per_call) if k != axis)
            per_call[axis] = max(1, INF_CHUNK_BYTES // (other * dtype.itemsize))
        chunks = [max(1, int(c)) for c in per_call]
        chunks.insert(dim, 1)
        return shape, tuple(chunks)

    def _raw_chunks(self) -> bool:
        """Whether workers may write result_0's chunk files directly (ZarrWriter._write_raw_chunk).

        True for the default layout: uncompressed numbers, one chunk per call's slot.
        """
        run = self.run
        if run is None or run.result_shape is None or run.stacking_dim is None:
            return False
        if self._compressors() is not None or stacking.unlimited_axis(run.result_shape) is not None:
            return False
        if np.dtype(run.result_dtype).kind not in "biufc":
            return False
        _, chunks = self._stacked_layout(run.result_shape, run.stacking_dim,
                                         np.dtype(run.result_dtype))
        slot = [int(s) for k, s in enumerate(run.result_shape) if k != run.stacking_dim]
        return [c for k, c in enumerate(chunks) if k != run.stacking_dim] == [max(1, s)
                                                                              for s in slot] \
            and 0 not in slot

    def writer(self) -> ZarrWriter:
        assert self.run is not None
        run = self.run
        return ZarrWriter(str(self.root), run.func_name, run.result_shape, run.stacking_dim,
                          str(run.result_dtype) if run.result_dtype is not None else None,
                          self._compressors(), self.chunks, raw_chunks=self._raw_chunks())

    def existing(self) -> dict[int, Any]:
        assert self.run is not None and self.run.output_dir is not None
        run = self.run
        found: dict[int, Any] = {}
        if run.result_shape is not None:
            assert run.stacking_dim is not None
            ref = str(self.root / "result_0")
            if stacking.unlimited_axis(run.result_shape) is None:
                ids = written_slots(self.root, len(run.result_shape), run.stacking_dim)
                return {i: ref for i in sorted(ids) if i < run.n_calls}
            if (self.root / EXTENT).exists():
                extent = _zarr().open_array(store=str(self.root / EXTENT), mode="r")[...]
                found = {int(i): ref for i in np.flatnonzero(extent >= 0)}
            return found
        if self.root.is_dir():
            for i in range(run.n_calls):
                group = self.root / f"comp_{i}"
                if (group / "zarr.json").exists():
                    found[i] = str(group)
        for entry in os.scandir(run.output_dir):
            pickled = naming.task_id_of(entry.name, run.func_name, ".pickle")
            if pickled is not None and pickled < run.n_calls:
                found[pickled] = entry.path
        return found

    def finalize(self, references: list[Any], failed: set[int]) -> list[Any]:
        assert self.run is not None
        run = self.run
        self.results_container = str(self.root)
        # temporary chunk files, groups and pickles of calls whose worker died mid-write:
        # ours (".<name>.<hex>.partial") next to the container, and inside it also
        # zarr-python's own ("<stem>.<uuid>.partial"); no key of the container ends so
        assert run.output_dir is not None
        remove_partials(run.output_dir, match=self._is_own_temporary)
        for directory in (self.root, self.root / "result_0", self.root / EXTENT):
            remove_partials(directory, match=lambda name: name.endswith(".partial"))
        inf = stacking.unlimited_axis(run.result_shape or ())
        if inf is not None:
            extent = _zarr().open_array(store=str(self.root / EXTENT), mode="r")[...]
            written = extent[extent >= 0]
            # ACME's initial extent of an unlimited axis is 1 (before any data)
            _set_extent(self.root / "result_0", inf, int(written.max()) if written.size else 1)
        return [ref if i not in failed else None for i, ref in enumerate(references)]

    def _is_own_temporary(self, name: str) -> bool:
        """A temporary group or emergency pickle of this run (in a directory others may share)."""
        assert self.run is not None
        fn, final = self.run.func_name, final_name_of(name)
        return ((final is not None and final.startswith(f"{fn}.zarr.comp_"))
                or naming.is_call_temporary(name, fn, ".pickle"))

    # -- reading ---------------------------------------------------------------
    @classmethod
    def read(cls, run_dir: Path, manifest: dict[str, Any]) -> Any:
        zarr = _zarr()
        fn = manifest["func_name"]
        n = int(manifest["n_calls"])
        root = container_path(run_dir, fn)
        if not (root / "zarr.json").exists():
            raise ValueError(f"{run_dir} has no zarr container {root.name}")
        finished = stacking.finished_ids(manifest)
        group = zarr.open_group(store=str(root), mode="r")
        if manifest.get("result_shape") is None:
            return [cls._read_call(group, run_dir, fn, i) if i in finished else None
                    for i in range(n)]
        shape = stacking.manifest_shape(manifest)
        dim = int(manifest["stacking_dim"])
        array = group["result_0"]
        inf = stacking.unlimited_axis(shape)
        if inf is None:
            written = finished & written_slots(root, len(shape), dim)
        else:
            extent = group[EXTENT][...]
            written = {i for i in finished if extent[i] >= 0}
        if inf is not None and array.shape[inf] == CAPACITY:
            # the run never reached finalize: cut the axis to the longest result
            longest = int(extent[extent >= 0].max()) if (extent >= 0).any() else 1
            data = array[tuple(slice(0, longest) if k == inf else slice(None)
                               for k in range(array.ndim))]
        else:
            data = array[...]
        extras = [read_extras(group[f"comp_{i}"]) if f"comp_{i}" in group else []
                  for i in sorted(written)]
        return stacking.with_extras(stacking.apply_mask(data, dim, n, written), extras)

    @staticmethod
    def _read_call(group: Any, run_dir: Path, fn: str, i: int) -> Any:
        pkl = naming.call_file(run_dir, fn, i, ".pickle")
        if pkl.exists():
            return read_emergency(pkl)
        name = f"comp_{i}"
        return read_group(group[name]) if name in group else None
