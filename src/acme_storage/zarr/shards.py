"""Sharded ``result_0`` of the ``"zarr"`` store (``store_options={"shard_calls": ...}``).

With a finite ``result_shape`` and ``shard_calls``, ``result_0`` is created with
zarr v3 sharding: a shard holds ``B`` calls along the stacking axis and the whole
slot along the others, its inner chunks are one call's slot (the per-call
layout's chunks), so a run of ``N`` calls is ``ceil(N / B)`` shard files
(``result_0/c.<k>.0...``) instead of ``N`` chunk files. zarr-python reads it as
any sharded array.

Concurrency without locks
-------------------------
The store declares ``B`` as its block size (:class:`acme_core.store.WritesBlocks`),
so the dispatcher never runs two tasks holding calls of one shard at the same
time (:mod:`acme_core._blocks`). A task's writer (:class:`ZarrShardWriter`, a
:class:`~acme_core.store.WritesChunks` writer) buffers its slots and, at
``end_chunk``, writes each shard it touched once: it loads the shard's bytes
if the file exists (the slots earlier tasks wrote stay), lets zarr-python
encode the shard in memory (:func:`acme_storage.zarr._zarr.encode_shard`) and
writes the file under a temporary name, then renames it (fsync'd first): a
shard is complete or absent. A worker killed mid-task renamed nothing: its
calls, and only those, run again.

The written mask
----------------
Inner chunks are written even when all fill value (``write_empty_chunks``), so
a call's slot has an entry in its shard's index exactly when its call wrote it.
:func:`written_slots` reads the index of every shard file (its last
``16 * inner chunks + 4`` bytes: little-endian ``uint64`` offset and length per
inner chunk, ``2**64 - 1`` for an absent one, then a CRC-32C of those bytes; the
zarr v3 sharding spec fixes this, and the store creates ``result_0`` with
zarr's default index codecs). zarr-python has no public call for "which inner
chunks exist", hence by hand; ``tests/storage/test_zarr_shards.py`` checks it
against zarr's own reading. A shard whose index does not check out (a short
file, a wrong checksum, an entry pointing beyond the data) holds no written
slot: its calls run again on resume, and the writer starts that shard afresh.

Raw shards by hand
------------------
When a shard is the store's default uncompressed layout (:func:`raw_shards`:
the ``bytes`` codec alone inside, one inner chunk per slot, numbers, zarr's
default index), its bytes are fixed by the spec: the slots' values (C order,
little endian) one after the other, then the index. The writer then builds the
shard itself (:func:`raw_shard_bytes`) and the reader slices the values out of
it (:func:`read_raw`), because zarr-python handles inner chunks one by one: at
10,000 scalar calls, its encoding took about 25 ms per shard of 157 calls
(``end_chunk`` was 2 of the 2.5 s of writing; 5,000 calls/s) and reading the
array back 1.3-1.7 s (so about 150 s at 10^6, over issue 16's 30 s).
``tests/storage/test_zarr_shards.py`` checks that these bytes are exactly
zarr's and that zarr-python reads them. Everything else (compressed or split
slots) goes through zarr-python (:func:`acme_storage.zarr._zarr.encode_shard`).

The block size
--------------
``shard_calls=True`` takes :func:`calls_per_shard`: at most
:data:`SHARD_MAX_CALLS` calls (2,000: issue 16's goal is at most one file per
1,000 calls, and with 1,000 calls per shard the run's three metadata files made
10^6 calls 1,003 files), at most :data:`SHARD_MAX_BYTES` of data (the writer holds a shard in
memory), and at most ``1 / SHARD_MIN_COUNT`` of the run: the calls of one shard
run one task at a time, so the shards of a run bound how many tasks run at
once (64 keeps 2-32 workers busy; a larger cluster with long calls wants a
smaller ``shard_calls``). An
integer sets ``B`` itself; ``"auto"`` shards runs of at least
:data:`SHARD_AUTO_CALLS` calls. Runs without ``result_shape`` are sharded
differently, a zip file per task (:mod:`.rows`; ``"rows"``, True or ``"auto"``),
and so are runs with an ``np.inf`` axis (each call's slot a row of the zip's
block, or a group when its length differs).
"""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from acme_core.errors import ArgumentValueError
from acme_core.fileio import write_bytes_atomic
from acme_core.store import RunInfo
from acme_storage import _layout, stacking
from acme_storage._task_buffers import TaskBuffers
from acme_storage.zarr import _zarr, rows
from acme_storage.zarr.writer import ZarrWriter

__all__ = ["SHARD_AUTO_CALLS", "SHARD_MAX_BYTES", "SHARD_MAX_CALLS", "SHARD_MIN_COUNT",
           "ZarrShardWriter",
           "calls_per_shard", "check_run_shards", "check_shard_calls", "index_mask",
           "raw_shard_bytes", "raw_shards", "read_raw", "rows_of", "shard_calls_of", "shard_shape",
           "written_slots"]

#: ``shard_calls=True`` puts at most this many calls in a shard
SHARD_MAX_CALLS = 2000
#: ... and at most about this many bytes of data (a writer holds a shard in memory)
SHARD_MAX_BYTES = 16 * 2 ** 20
#: ``shard_calls=True`` keeps at least this many shards in a run (when it has the calls)
SHARD_MIN_COUNT = 64
#: ``shard_calls="auto"`` shards runs of at least this many calls (as the HDF5 store)
SHARD_AUTO_CALLS = 10_000
#: an absent inner chunk's offset and length in a shard index
_ABSENT = 2 ** 64 - 1


def check_shard_calls(value: Any) -> None:
    """Refuse a ``shard_calls`` that is not True, False, ``"auto"``, ``"rows"`` or a positive
    integer."""
    ok = isinstance(value, bool) or value in ("auto", "rows") or (
        isinstance(value, (int, np.integer)) and value >= 1)
    if not ok:
        raise ArgumentValueError(f"`store_options['shard_calls']` has to be True, False, 'auto', "
                                 f"'rows' or a positive number of calls per shard, not "
                                 f"{value!r}", parameter="store_options")


def check_run_shards(value: Any, run: RunInfo) -> None:
    """Refuse an explicit ``shard_calls`` for a run the shards cannot hold (yet).

    Without ``result_shape`` or with an ``np.inf`` axis, True and ``"rows"`` write zip
    shards (:mod:`.rows`), but a number of calls per shard (the sharded ``result_0``'s)
    has no meaning.

    Raises
    ------
    acme_core.errors.ArgumentValueError
        ``parameter="store_options"``.
    """
    if value is False or value in ("auto", "rows") or value is True:
        return
    why = None
    if run.result_shape is None:
        why = ("without `result_shape` (a number of calls per shard is for `result_shape`'s "
               "sharded array; use True or 'rows' for a zip shard per task)")
    elif stacking.unlimited_axis(run.result_shape) is not None:
        why = ("with an `np.inf` axis in `result_shape` (a number of calls per shard is for "
               "a finite `result_shape`; use True or 'rows' for a zip shard per task)")
    if why is not None:
        raise ArgumentValueError(f"`store_options['shard_calls']={value!r}` is not available "
                                 f"{why}", parameter="store_options")


def rows_of(value: Any, run: RunInfo) -> bool:
    """Whether ``run`` writes zip shards (:mod:`.rows`): no ``result_shape`` or one with an
    ``np.inf`` axis, and True, ``"rows"``, or ``"auto"`` from :data:`SHARD_AUTO_CALLS` calls."""
    number = isinstance(value, (int, np.integer)) and not isinstance(value, bool)
    finite = run.result_shape is not None and stacking.unlimited_axis(run.result_shape) is None
    if finite or value is False or number:
        return False
    return value is True or value == "rows" or run.n_calls >= SHARD_AUTO_CALLS


def calls_per_shard(n_calls: int, slot_bytes: int) -> int:
    """``B`` for ``shard_calls=True`` (see the module docstring)."""
    by_bytes = SHARD_MAX_BYTES // max(1, slot_bytes)
    return max(1, min(SHARD_MAX_CALLS, by_bytes, math.ceil(n_calls / SHARD_MIN_COUNT)))


def shard_calls_of(value: Any, run: RunInfo) -> int | None:
    """Calls per shard of ``run`` with the option ``value``; None: not sharded."""
    shape = run.result_shape
    if value is False or shape is None or stacking.unlimited_axis(shape) is not None:
        return None
    if value == "auto" and run.n_calls < SHARD_AUTO_CALLS:
        return None
    if not isinstance(value, bool) and value not in ("auto", "rows"):
        return int(value)
    assert run.stacking_dim is not None
    slot = stacking.slot_shape(shape, run.stacking_dim)
    itemsize = np.dtype(run.result_dtype).itemsize
    return calls_per_shard(run.n_calls, math.prod(int(s) for s in slot) * itemsize)


def shard_shape(shape: Sequence[int], chunks: Sequence[int], dim: int,
                calls: int) -> tuple[int, ...]:
    """A shard: ``calls`` slots along ``dim``, whole inner chunks covering the slot elsewhere."""
    return tuple(calls if k == dim else max(1, math.ceil(s / c)) * c
                 for k, (s, c) in enumerate(zip(shape, chunks, strict=True)))


def _index_size(n_inner: int) -> int:
    return 16 * n_inner + 4


def index_mask(path: str | os.PathLike[str], inner: tuple[int, ...]) -> np.ndarray[Any, Any] | None:
    """Which inner chunks the shard file ``path`` holds (shape ``inner``); None if it is
    absent or its index does not check out (see the module docstring)."""
    import google_crc32c

    size = _index_size(math.prod(inner))
    try:
        with open(path, "rb") as fh:
            total = os.fstat(fh.fileno()).st_size
            if total < size:
                return None
            fh.seek(total - size)
            raw = fh.read(size)
    except FileNotFoundError:
        return None
    body = raw[:-4]
    if np.frombuffer(raw[-4:], "<u4")[0] != google_crc32c.value(body):
        return None
    pairs = np.frombuffer(body, "<u8").reshape(*inner, 2)
    present: np.ndarray[Any, Any] = pairs[..., 0] != _ABSENT
    ends = pairs[..., 0][present] + pairs[..., 1][present]
    if ends.size and int(ends.max()) > total - size:
        return None
    return present


def raw_shards(array: _zarr.ZArray, dim: int) -> bool:
    """Whether ``array``'s shards have the bytes the spec fixes for raw slots (see above)."""
    from zarr.codecs import BytesCodec, Crc32cCodec, Endian, ShardingCodec

    codecs = array.metadata.codecs
    if len(codecs) != 1 or not isinstance(codecs[0], ShardingCodec):
        return False
    sharding = codecs[0]
    inner, index = list(sharding.codecs), list(sharding.index_codecs)
    little = (None, Endian.little)
    plain_inner = len(inner) == 1 and isinstance(inner[0], BytesCodec) \
        and inner[0].endian in little
    plain_index = len(index) == 2 and isinstance(index[0], BytesCodec) \
        and index[0].endian in little and isinstance(index[1], Crc32cCodec)
    slot = [s for k, s in enumerate(array.shape) if k != dim]
    chunk = [c for k, c in enumerate(array.chunks) if k != dim]
    return (plain_inner and plain_index and sharding.index_location.value == "end"
            and np.dtype(array.dtype).kind in "biufc" and array.chunks[dim] == 1
            and chunk == slot and 0 not in slot)


def _raw_index(path: Path, calls: int) -> tuple[bytes, np.ndarray[Any, Any]] | None:
    """(the shard's bytes, its ``(calls, 2)`` index), or None: absent or not checking out."""
    mask = index_mask(path, (calls,))
    if mask is None:
        return None
    data = path.read_bytes()
    size = _index_size(calls)
    return data, np.frombuffer(data[-size:-4], "<u8").reshape(calls, 2)


def raw_shard_bytes(existing: tuple[bytes, np.ndarray[Any, Any]] | None, calls: int,
                    slots: dict[int, np.ndarray[Any, Any]]) -> bytes:
    """A raw shard of ``calls`` slots: ``existing`` ones (from :func:`_raw_index`) and
    ``slots`` (position in the shard -> value) over them, in slot order, then the index."""
    import google_crc32c

    chunks: dict[int, Any] = {}
    if existing is not None:
        data, index = existing
        for old in np.flatnonzero(index[:, 0] != _ABSENT).tolist():
            offset, length = (int(v) for v in index[old])
            chunks[old] = memoryview(data)[offset:offset + length]
    for new, value in slots.items():
        chunks[new] = np.ascontiguousarray(value, value.dtype.newbyteorder("<")).tobytes()
    table = np.full((calls, 2), _ABSENT, "<u8")
    parts, position = [], 0
    for pos in sorted(chunks):
        table[pos] = (position, len(chunks[pos]))
        position += len(chunks[pos])
        parts.append(chunks[pos])
    body = table.tobytes()
    crc = np.array([google_crc32c.value(body)], "<u4").tobytes()
    return b"".join([*parts, body, crc])


def read_raw(root: Path, array: _zarr.ZArray, dim: int, n_calls: int
             ) -> tuple[np.ndarray[Any, Any], set[int]]:
    """``result_0`` of raw shards read by hand, and the calls written (fill 0 elsewhere)."""
    calls, _ = _shard_layout(array, dim)
    dtype = np.dtype(array.dtype).newbyteorder("<")
    out = np.zeros(array.shape, dtype=np.dtype(array.dtype))
    moved = np.moveaxis(out, dim, 0)  # a view: slot i is moved[i]
    slot_bytes = dtype.itemsize * math.prod(moved.shape[1:])
    present = _zarr.chunk_keys(root / "result_0")
    written: set[int] = set()
    for k in range(math.ceil(n_calls / calls)):
        key = _shard_key(array, dim, k)
        found = _raw_index(root / "result_0" / key, calls) if key in present else None
        if found is None:
            continue
        written.update(_slice_shard(found, k * calls, n_calls, moved, dtype, slot_bytes))
    return out, written


def _slice_shard(found: tuple[bytes, np.ndarray[Any, Any]], first: int, n_calls: int,
                 moved: np.ndarray[Any, Any], dtype: np.dtype[Any], slot_bytes: int) -> list[int]:
    """Copy a raw shard's slots into ``moved`` (slot ``i`` is ``moved[i]``); the calls copied.

    Slots of another length than ``slot_bytes`` are not ours and stay unwritten. The
    writer puts slots one after the other in order: those are one ``np.frombuffer``.
    """
    data, index = found
    js = np.flatnonzero((index[:, 0] != _ABSENT) & (index[:, 1] == slot_bytes)
                        & (first + np.arange(len(index)) < n_calls))
    if not js.size:
        return []
    starts = index[js, 0].astype(np.int64)
    slot = moved.shape[1:]
    if np.array_equal(starts, starts[0] + slot_bytes * np.arange(js.size)):
        values = np.frombuffer(data, dtype, js.size * math.prod(slot), int(starts[0]))
        moved[first + js] = values.reshape(js.size, *slot)
    else:  # slots in another order (the spec allows any)
        for j, start in zip(js.tolist(), starts.tolist(), strict=True):
            moved[first + j] = np.frombuffer(data, dtype, math.prod(slot), start).reshape(slot)
    return [first + j for j in js.tolist()]


def _shard_layout(array: _zarr.ZArray, dim: int) -> tuple[int, tuple[int, ...]]:
    """(calls per shard, inner chunks per shard) of a sharded array, from its metadata."""
    shards = tuple(int(s) for s in array.shards)
    inner = tuple(s // int(c) for s, c in zip(shards, array.chunks, strict=True))
    if min(inner) < 1 or shards[dim] < 1:
        raise ValueError(f"a shard shape {shards} that does not hold its chunks {array.chunks}")
    return shards[dim], inner


def _shard_key(array: _zarr.ZArray, dim: int, k: int) -> str:
    coords = [0] * array.ndim
    coords[dim] = k
    return str(array.metadata.encode_chunk_key(tuple(coords)))


def written_slots(root: Path, array: _zarr.ZArray, dim: int, n_calls: int) -> set[int]:
    """Calls whose slot (its first inner chunk) a shard of ``root/result_0`` holds."""
    calls, inner = _shard_layout(array, dim)
    present = _zarr.chunk_keys(root / "result_0")
    found: set[int] = set()
    for k in range(math.ceil(n_calls / calls)):
        key = _shard_key(array, dim, k)
        if key not in present:
            continue
        mask = index_mask(root / "result_0" / key, inner)
        if mask is None:
            continue
        first = np.moveaxis(mask, dim, 0).reshape(inner[dim], -1)[:, 0]
        found.update(k * calls + int(j) for j in np.flatnonzero(first) if k * calls + j < n_calls)
    return found


class _Buffer:
    """The slots (and extra values) one task wrote and not yet flushed (guarded by ``lock``)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.slots: dict[int, np.ndarray[Any, Any]] = {}
        #: the calls' extra return values, for the task's zip shard (:mod:`.rows`)
        self.extras: list[rows.Call] = []
        self.nbytes = 0

    def take(self) -> tuple[dict[int, np.ndarray[Any, Any]], list[rows.Call]]:
        slots, extras = self.slots, self.extras
        self.slots, self.extras, self.nbytes = {}, [], 0
        return slots, extras


class ZarrShardWriter(ZarrWriter):
    """Worker side of a sharded ``result_0``: a task's slots, one write per shard.

    A :class:`~acme_core.store.WritesChunks` writer: between ``begin_chunk`` and
    ``end_chunk`` a slot is only buffered (its value checked and cast first, its
    extra values written as ``comp_<i>`` at once); ``end_chunk`` writes every
    shard the task touched (see the module docstring), and so does a buffer
    that outgrew :data:`SHARD_MAX_BYTES` (bounded memory; its task still holds
    those shards, so a later write of the task merges into them). Outside a
    task (``debug=True``) each call rewrites its shard at once.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._metadata: bytes | None = None
        # the buffers of the tasks running in this process (see acme_storage._task_buffers)
        self._tasks: TaskBuffers[_Buffer] = TaskBuffers()

    def __getstate__(self) -> dict[str, Any]:
        # result_0's metadata is read again where the writer runs
        return {**super().__getstate__(), "_metadata": None}

    def begin_chunk(self, task_ids: list[int]) -> None:
        """Start buffering the slots of the task's calls ``task_ids``."""
        self._tasks.begin(task_ids, _Buffer())

    def end_chunk(self) -> None:
        """Write every shard the task's calls touched (complete or absent), or raise."""
        buffer = self._tasks.end()
        if buffer is not None:
            with buffer.lock:
                self._flush(*buffer.take())

    def _flush(self, slots: dict[int, np.ndarray[Any, Any]], extras: list[rows.Call]) -> None:
        """The extra values' zip shards first, then the slots: a slot on disk says its call
        is complete.

        A task's extras within one block go to the *block's* zip (named after its first
        call), merged like the block's ``result_0`` shard: tasks are cut at block
        boundaries, so a block of many calls is written by several tasks one after the
        other, and a zip per task made 1,475 files for 10^6 calls where the block's zip
        makes one per shard. Extras spanning several (small) blocks stay one zip named
        after the task's first call. Either file is written only by a task that holds
        the block of the call it is named after, and the block rule runs no two of them
        at once: no lock needed.
        """
        if extras:
            assert self.stacking_dim is not None
            calls, _ = _shard_layout(self._array("result_0"), self.stacking_dim)
            first = min(i for i, _ in extras)
            if max(i for i, _ in extras) // calls == first // calls:
                first = first // calls * calls
            payload = _layout.payload_dir(Path(self.root).parent, self.func_name)
            rows.write_shard(str(payload / rows.shard_name(self.func_name, first)), extras,
                             self.compressors, self.chunks)
        self._write_shards(slots)

    def _write_extras(self, task_id: int, extras: dict[str, Any]) -> None:
        """Buffer the extra values for the task's zip shard (outside a task: one now)."""
        call = (task_id, rows.copied(extras))
        buffer = self._tasks.of(task_id)
        if buffer is None:
            self._flush({}, [call])
            return
        with buffer.lock:
            buffer.extras.append(call)
            buffer.nbytes += rows.nbytes(call[1])

    def _write_slot(self, task_id: int, data: np.ndarray[Any, Any]) -> None:
        buffer = self._tasks.of(task_id)
        if buffer is None:  # outside a task: this call's shard, now
            self._write_shards({task_id: data})
            return
        with buffer.lock:
            buffer.slots[task_id] = data
            buffer.nbytes += data.nbytes
            if buffer.nbytes >= SHARD_MAX_BYTES:
                self._flush(*buffer.take())

    def _write_shards(self, slots: dict[int, np.ndarray[Any, Any]]) -> None:
        """Merge ``slots`` into their shards on disk, one atomic write per shard."""
        if not slots:
            return
        dim = self.stacking_dim
        assert dim is not None
        array = self._array("result_0")
        if self._metadata is None:  # read once per process; only the driver writes it
            self._metadata = (Path(self.root) / "result_0" / "zarr.json").read_bytes()
        calls, inner = _shard_layout(array, dim)
        by_shard: dict[int, list[int]] = {}
        for i in sorted(slots):
            by_shard.setdefault(i // calls, []).append(i)
        raw = raw_shards(array, dim)
        for k, ids in by_shard.items():
            key = _shard_key(array, dim, k)
            path = Path(self.root) / "result_0" / key
            if raw:  # the spec fixes these bytes (see the module docstring)
                mine = {i - k * calls: slots[i] for i in ids}
                write_bytes_atomic(path, raw_shard_bytes(_raw_index(path, calls), calls, mine))
                continue
            # an unreadable shard is started afresh: its index listed none of its slots
            existing = path.read_bytes() if index_mask(path, inner) is not None else None
            writes = [(_run_region(array.ndim, dim, run), np.stack([slots[i] for i in run], dim))
                      for run in _runs(ids)]
            write_bytes_atomic(path, _zarr.encode_shard(self._metadata, key, existing, writes))


def _runs(ids: list[int]) -> list[list[int]]:
    """``ids`` (sorted) cut into runs of consecutive ids: one zarr write per run."""
    runs: list[list[int]] = []
    for i in ids:
        if runs and runs[-1][-1] == i - 1:
            runs[-1].append(i)
        else:
            runs.append([i])
    return runs


def _run_region(ndim: int, dim: int, run: list[int]) -> tuple[Any, ...]:
    return tuple(slice(run[0], run[-1] + 1) if k == dim else slice(None) for k in range(ndim))
