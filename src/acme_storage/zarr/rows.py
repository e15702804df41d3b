"""Per-task zip shards of the ``"zarr"`` store for runs without ``result_shape`` or with
an ``np.inf`` axis (``store_options={"shard_calls": "rows"}``, or True / ``"auto"``).

::

    <out>/<fn>.zarr                           the (empty) group: the run's container
    <out>/<fn>_payload/<fn>_<t>.zarr.zip      one zip shard per task (:mod:`.zips`):
        acme_ids                              int64, the ids of the calls in the block
        acme_block/result_<k>                 the calls' values stacked as rows (every
                                              call of one signature: names, dtypes, shapes)
        acme_block/acme_extent                with an np.inf axis: each row's own length
                                              along it (result_0 padded with 0)
        comp_<i>/result_<k>                   calls that do not fit the block (another
                                              signature, text, bytes, empty arrays)
    <out>/<fn>_<i>.pickle                     values zarr cannot hold, per call (as today)

Why: the per-call layout writes a group per call (three files and directories,
~245 calls/s at 10^5 calls, ``benchmarks/README.md``); a shard is one file per task,
written by that task alone, so no lock and no dispatcher rule is needed (unlike
the sharded ``result_0``, :mod:`.shards`, whose shard grid is fixed by the array).

A shard is named after the first call it holds (``t``): readers derive every
candidate name from a task id below ``n_calls`` (:class:`RowsIndex`) and take
nothing else from the directory. The worker buffers the task's values (copies,
at most :data:`SHARD_BYTES`; more start the next shard) and writes the shard at
the task's end under a temporary name, fsync'd, then renamed: complete or absent.
A worker killed mid-task leaves at most a ``.partial`` file and loses only that
task's calls, which run again. A shard that replaces one of the same name (a
rerun of its first call) first takes over the calls it does not hold itself.
``open_results`` reads each shard once (its block in one piece), and returns the
values per call, as the per-call layout does.

With an ``np.inf`` axis, a call's slot (checked and cast as for the per-call
layout) is its ``result_0``. No ``result_0`` array is made: a zarr array's
extent along that axis would be rewritten by every writer, which is what the
per-call layout's provisional ``2**40`` extent and ``acme_extent`` work around;
``open_results`` stacks the slots, the axis as long as the longest one.
The task's calls whose slots differ only in their length along that axis
(:func:`ragged_axis`: ragged results, e.g. spike trains) are *padded ragged
rows*: one block ``acme_block/result_0`` padded with 0 (what the per-call layout
reads back beyond a call's length) to the longest of them, and
``acme_block/acme_extent`` with each call's own length. A reader checks the
extent (integers, one per id, 0 <= length <= the padded length:
:func:`checked_extent`) before slicing; a shard whose extent does not check out
holds nothing, and its calls run again. Padding may at most double the block's
``result_0`` bytes (:data:`PAD_MAX`, :func:`_capped`): the longest calls beyond
that get a group each (one huge call among tiny ones would otherwise make the
shard hundreds of times its values). Groups (~80 us per call to read back)
remain for calls that do not fit: another dtype or other lengths along the
finite axes, text, or the outliers of padding.

A sharded ``result_0`` (:mod:`.shards`) puts its calls' extra return values
(``result_1``, ...) into the same kind of zip shard per task, written before the
task's slots (a slot on disk says its call is complete), so such a run makes no
file per call either; ``open_results`` takes them from the zips.
"""

from __future__ import annotations

import json
import os
import threading
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from acme_storage import _layout, _trust, stacking
from acme_storage._task_buffers import TaskBuffers
from acme_storage._values import named_results
from acme_storage.zarr._zarr import Storable, storables
from acme_storage.zarr.writer import ZarrWriter
from acme_storage.zarr.zips import ZipGroup, array_entries, group_entry, write_zip

__all__ = ["BLOCK", "BLOCK_EXTENT", "BLOCK_IDS", "PAD_MAX", "SHARD_BYTES", "SHARD_SUFFIX",
           "Call", "RowsIndex", "ZarrRowsWriter", "copied", "nbytes", "ragged_axis",
           "shard_entries", "shard_name", "write_shard"]

#: a shard's file name suffix: ``<fn>_<first task id>.zarr.zip``
SHARD_SUFFIX = ".zarr.zip"
#: bytes of values a worker buffers before it writes a shard (and starts the next one)
SHARD_BYTES = 64 * 2 ** 20
#: the block's call ids and its group of stacked results
BLOCK_IDS = "acme_ids"
BLOCK = "acme_block"
#: in the block group, with an ``np.inf`` axis: each row's own length along that axis
BLOCK_EXTENT = "acme_extent"
#: padding may make a ragged block at most this many times its calls' own bytes
PAD_MAX = 2
#: the slot result that an ``np.inf`` axis makes ragged
_SLOT = "result_0"

#: one buffered call: its id and ``{result_<k>: (data, is_text)}``
Call = tuple[int, dict[str, Storable]]


def shard_name(func_name: str, first: int) -> str:
    """``<fn>_<first>.zarr.zip``: the shard whose first call is ``first``."""
    return _layout.call_name(func_name, first, SHARD_SUFFIX)


def ragged_axis(result_shape: Any, stacking_dim: int | None) -> int | None:
    """The axis of a call's slot (``result_0`` without the stacking axis) along which
    its length is its own: the ``np.inf`` axis of ``result_shape`` (None without one)."""
    inf = stacking.unlimited_axis(result_shape or ())
    if inf is None or stacking_dim is None:
        return None
    return inf - (inf > stacking_dim)


def _signature(arrays: dict[str, Storable], ragged: int | None = None
               ) -> tuple[Any, ...] | None:
    """Names, dtypes and shapes of a call's arrays; None when a block cannot hold them.

    With ``ragged`` (an axis of ``result_0``), that axis's length is left out of the
    signature: the block pads it, and an empty ``result_0`` fits.
    """
    signature = []
    for name, (data, is_text) in arrays.items():
        axis = ragged if ragged is not None and name == _SLOT else -1  # -1: not padded
        if is_text or not isinstance(data, np.ndarray) or data.dtype.kind not in "biufc" \
                or data.dtype.fields is not None or (data.size == 0 and axis < 0) \
                or data.ndim <= axis:
            return None
        shape = tuple(-1 if k == axis else s for k, s in enumerate(data.shape))
        signature.append((name, data.dtype.str, shape))
    return tuple(signature)


def _split(calls: list[Call], ragged: int | None = None) -> tuple[list[Call], list[Call]]:
    """The calls that fit the block (the signature of the first call a block can hold;
    with ``ragged``, without the outliers :func:`_capped` leaves out) and the rest,
    which get a group each."""
    block: list[Call] = []
    groups: list[Call] = []
    first: tuple[Any, ...] | None = None
    for call in calls:
        signature = _signature(call[1], ragged)
        if first is None:
            first = signature
        (block if signature is not None and signature == first else groups).append(call)
    if ragged is not None and block:
        block, outliers = _capped(block, ragged)
        groups.extend(outliers)
    return block, groups


def _capped(block: list[Call], ragged: int) -> tuple[list[Call], list[Call]]:
    """The block's calls whose ``result_0``, padded to the longest of them along
    ``ragged``, take at most :data:`PAD_MAX` times their own bytes; and the rest (the
    longest calls: one huge call among tiny ones gets a group of its own)."""
    lengths = np.array([arrays[_SLOT][0].shape[ragged] for _, arrays in block], dtype=np.int64)
    order = np.argsort(lengths, kind="stable")
    ordered = lengths[order]
    own = np.cumsum(ordered)
    fits = np.arange(1, len(block) + 1) * ordered <= PAD_MAX * own
    keep = int(np.flatnonzero(fits)[-1]) + 1  # the k shortest calls (k = 1 always fits)
    kept = set(order[:keep].tolist())
    return ([call for j, call in enumerate(block) if j in kept],
            [call for j, call in enumerate(block) if j not in kept])


def _row(j: int, ragged: int, length: int) -> tuple[Any, ...]:
    """Index of row ``j``'s first ``length`` entries along ``ragged`` (of the row)."""
    return (j,) + (slice(None),) * ragged + (slice(0, length),)


def _padded(slots: list[np.ndarray[Any, Any]], ragged: int
            ) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    """``slots`` stacked as rows, padded with 0 along ``ragged`` to the longest; and each
    slot's own length."""
    lengths = np.array([slot.shape[ragged] for slot in slots], dtype=np.int64)
    shape = list(slots[0].shape)
    shape[ragged] = int(lengths.max())
    rows = np.zeros((len(slots), *shape), dtype=slots[0].dtype)
    for j, slot in enumerate(slots):
        rows[_row(j, ragged, slot.shape[ragged])] = slot
    return rows, lengths


def shard_entries(calls: list[Call], codecs: Any, chunks: tuple[int, ...] | None,
                  ragged: int | None = None) -> dict[str, Any]:
    """The zip entries of a shard holding ``calls`` (see the module docstring); with
    ``ragged`` (:func:`ragged_axis`), ``result_0`` rows padded along that axis."""
    block, groups = _split(calls, ragged)
    entries: dict[str, Any] = {"zarr.json": group_entry()}
    for i, arrays in groups:
        prefix = _layout.comp_name(i)
        entries[f"{prefix}/zarr.json"] = group_entry()
        for name, (data, is_text) in arrays.items():
            entries.update(array_entries(f"{prefix}/{name}", data, is_text, codecs, chunks))
    if block:
        ids = np.array([i for i, _ in block], dtype=np.int64)
        entries.update(array_entries(BLOCK_IDS, ids, False, None))
        entries[f"{BLOCK}/zarr.json"] = group_entry()
        for name in block[0][1]:
            slots = [arrays[name][0] for _, arrays in block]
            if ragged is not None and name == _SLOT:
                rows, lengths = _padded(slots, ragged)
                entries.update(array_entries(f"{BLOCK}/{BLOCK_EXTENT}", lengths, False, None))
            else:
                rows = np.stack(slots)
            entries.update(array_entries(f"{BLOCK}/{name}", rows, False, codecs))
    return entries


def write_shard(path: str, calls: list[Call], codecs: Any, chunks: tuple[int, ...] | None,
                fsync: bool = True, ragged: int | None = None) -> None:
    """Write the shard ``path`` holding ``calls`` (and an earlier shard's other calls);
    ``ragged``: see :func:`shard_entries`."""
    mine = {i for i, _ in calls}
    rows, copied = _earlier(path, mine, ragged)
    entries = shard_entries(rows + calls, codecs, chunks, ragged)
    entries.update(copied)
    write_zip(path, entries, fsync)


def _earlier(path: str, mine: set[int], ragged: int | None
             ) -> tuple[list[Call], dict[str, bytes]]:
    """An existing complete shard ``path``'s calls that are not ``mine``: its block rows
    (as calls) and its groups' entries (copied as they are)."""
    if not os.path.exists(path):
        return [], {}
    try:
        with ZipGroup(path) as old:
            groups = {i for i in map(_comp_id, old.members()) if i is not None}
            ids, columns = block_columns(old, ragged)
            rows = [(i, {key: (column[j], False) for key, column in columns})
                    for j, i in enumerate(ids) if i not in mine and i not in groups]
            keep = tuple(f"{_layout.comp_name(i)}/" for i in groups - mine)
            copied = {name: old.zip.read(name) for name in old.names if name.startswith(keep)}
    except (OSError, ValueError, KeyError, zipfile.BadZipFile):  # not a complete zip
        return [], {}
    return rows, copied


def block_columns(z: ZipGroup, ragged: int | None = None
                  ) -> tuple[list[int], list[tuple[str, Any]]]:
    """A shard's block: its call ids and ``(result_<k>, rows)`` per result (empty if none,
    or if the block does not check out); with ``ragged``, ``result_0``'s rows are cut to
    their own lengths (:func:`checked_extent`), as a list."""
    if not (z.has(BLOCK_IDS) and z.has(BLOCK)):
        return [], []
    ids = z.array(BLOCK_IDS)
    columns: list[tuple[str, Any]] = [
        (key, z.array(f"{BLOCK}/{key}")) for key in _layout.result_keys(z.members(BLOCK))]
    if ids.ndim != 1 or not columns or any(len(c) != len(ids) for _, c in columns):
        return [], []
    try:
        lengths = checked_extent(z, len(ids), ragged)
    except ValueError:
        return [], []
    if lengths is not None and ragged is not None:
        slot = dict(columns)[_SLOT]
        cut = [slot[_row(j, ragged, n)] for j, n in enumerate(lengths)]
        columns = [(key, cut if key == _SLOT else column) for key, column in columns]
    return [int(i) for i in ids.tolist()], columns


def checked_extent(z: ZipGroup, n_ids: int, ragged: int | None) -> list[int] | None:
    """The block's ``acme_extent`` (each row's own length along ``ragged``), checked
    against the file's other entries; None when the block has none (rows of one length).

    Raises
    ------
    ValueError
        The extent does not check out: an extent without an ``np.inf`` axis, not one
        integer per id, or a length below 0 or beyond ``result_0``'s padded length.
    """
    prefix = f"{BLOCK}/{BLOCK_EXTENT}"
    if not z.has(prefix):
        return None
    if ragged is None or not z.has(f"{BLOCK}/{_SLOT}"):
        raise ValueError(f"{z.path}: {prefix} without a ragged {_SLOT}")
    shape = z.shape(f"{BLOCK}/{_SLOT}")
    extent = z.array(prefix)
    if extent.dtype.kind not in "iu" or extent.shape != (n_ids,) or len(shape) <= ragged + 1 \
            or (n_ids and (extent.min() < 0 or extent.max() > shape[ragged + 1])):
        raise ValueError(f"{z.path}: {prefix} does not fit the block")
    return [int(n) for n in extent.tolist()]


def _comp_id(name: str) -> int | None:
    head, _, number = name.partition("_")
    return int(number) if head == "comp" and number.isdigit() else None


def read_calls(z: ZipGroup, members: list[int], as_lists: bool = False,
               ragged: int | None = None) -> dict[int, Any]:
    """The values of the calls ``members`` that the shard ``z`` holds, as the per-call
    layout reads them (one value, or a tuple of the results in order; ``as_lists``: a
    list of the results, as a stacked run's extras are read; ``ragged``: the run's
    :func:`ragged_axis`)."""
    ids, columns = block_columns(z, ragged)
    where = {i: j for j, i in enumerate(ids)}
    values: dict[int, Any] = {}
    for i in members:
        prefix = _layout.comp_name(i)
        if z.has(prefix):  # a call both a group and a row (never written so) is a group
            found = [z.value(f"{prefix}/{k}") for k in _layout.result_keys(z.members(prefix))]
        elif i in where:
            found = [column[where[i]] for _, column in columns]
        else:
            continue
        values[i] = found if as_lists else found[0] if len(found) == 1 else tuple(found)
    return values


class RowsIndex:
    """Which call is in which complete shard of a run directory (for readers and resume).

    Every shard name is derived from a task id (:func:`shard_name`); the directory
    listing only tells which of them exist. A shard that does not open as a
    complete zip holds nothing.
    """

    def __init__(self, run_dir: Path, func_name: str, n_calls: int,
                 ragged: int | None = None) -> None:
        self.run_dir = run_dir
        self.func_name = func_name
        #: the run's :func:`ragged_axis` (None: no block may hold an ``acme_extent``)
        self.ragged = ragged
        #: task id -> shard file name (in the payload directory)
        self.where: dict[int, str] = {}
        payload = _layout.payload_dir(run_dir, func_name)
        if not payload.is_dir() or payload.is_symlink():
            return
        for first in sorted(self._firsts(payload, n_calls)):
            name = shard_name(func_name, first)
            path = _trust.inside(run_dir, payload.name, name)
            if path is not None and path.is_file():
                for i in _calls_in(path, n_calls, ragged):
                    self.where.setdefault(i, name)

    def _firsts(self, payload: Path, n_calls: int) -> list[int]:
        firsts = []
        for entry in os.scandir(payload):
            t = _layout.task_id_of(entry.name, self.func_name, SHARD_SUFFIX)
            if t is not None and t < n_calls and not entry.is_symlink():
                firsts.append(t)
        return firsts

    def path(self, i: int) -> Path | None:
        """The shard holding call ``i`` (None when no complete shard does)."""
        name = self.where.get(i)
        if name is None:
            return None
        return _trust.inside(self.run_dir, _layout.payload_dir(Path(), self.func_name).name,
                             name)

    def read(self, ids: list[int], as_lists: bool = False) -> dict[int, Any]:
        """The values of calls ``ids`` found in shards, each shard opened once
        (``as_lists``: see :func:`read_calls`)."""
        by_shard: dict[str, list[int]] = {}
        for i in ids:
            if i in self.where:
                by_shard.setdefault(self.where[i], []).append(i)
        values: dict[int, Any] = {}
        for members in by_shard.values():
            path = self.path(members[0])
            if path is not None:
                with ZipGroup(str(path)) as z:
                    values.update(read_calls(z, members, as_lists, self.ragged))
        return values


def _calls_in(path: Path, n_calls: int, ragged: int | None) -> list[int]:
    """The calls a shard holds (groups and block rows); none when it does not read, or
    its block's ``acme_extent`` does not check out (:func:`checked_extent`)."""
    try:
        with ZipGroup(str(path)) as z:
            groups = [i for i in map(_comp_id, z.members()) if i is not None]
            block = _block_ids(z)
            checked_extent(z, len(block), ragged)
    except (OSError, ValueError, KeyError, TypeError, zipfile.BadZipFile):
        return []
    return [i for i in groups + block if 0 <= i < n_calls]


def _block_ids(z: ZipGroup) -> list[int]:
    """The block's ids when every column has a row per id (from metadata, no data read)."""
    if not (z.has(BLOCK_IDS) and z.has(BLOCK)):
        return []
    ids = z.array(BLOCK_IDS)
    keys = _layout.result_keys(z.members(BLOCK))
    shapes = [json.loads(z.zip.read(f"{BLOCK}/{k}/zarr.json")).get("shape") for k in keys]
    if ids.ndim != 1 or not keys or any(not s or s[0] != len(ids) for s in shapes):
        return []
    return [int(i) for i in ids.tolist()]


class _Buffer:
    """A worker's values of the current task, until the task's end writes them as a shard."""

    def __init__(self) -> None:
        self.calls: list[Call] = []
        self.nbytes = 0
        #: the path of the shard being filled (one ``str`` object: references share it)
        self.path: str | None = None
        self.lock = threading.Lock()

    def take(self) -> tuple[str | None, list[Call]]:
        path, calls = self.path, self.calls
        self.path, self.calls, self.nbytes = None, [], 0
        return path, calls


def copied(arrays: dict[str, Storable]) -> dict[str, Storable]:
    """The arrays copied: the task keeps running, and a function that returns one array
    object, changed, on every call must not change earlier results."""
    return {name: (data if is_text else np.array(data, copy=True), is_text)
            for name, (data, is_text) in arrays.items()}


def nbytes(arrays: dict[str, Storable]) -> int:
    return sum(data.nbytes if isinstance(data, np.ndarray) else len(data)
               for data, _ in arrays.values()) + 64


class ZarrRowsWriter(ZarrWriter):
    """Worker side of a run in zip shards: a task's calls go into one shard (module docstring).

    A :class:`~acme_core.store.WritesChunks` writer. Values zarr cannot hold take
    the per-call path (an emergency pickle). Outside a task (``debug=True``) each
    call is written at once as a shard of its own.
    """

    def __init__(self, *args: Any, payload: str, fsync: bool = True,
                 shard_bytes: int = SHARD_BYTES, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.payload = payload
        self.fsync = fsync
        self.shard_bytes = shard_bytes
        # the buffers of the tasks running in this process (see acme_storage._task_buffers)
        self._tasks: TaskBuffers[_Buffer] = TaskBuffers()

    def _shard_path(self, first: int) -> str:
        return os.path.join(self.payload, shard_name(self.func_name, first))

    def begin_chunk(self, task_ids: list[int]) -> None:
        """Start buffering the calls ``task_ids`` of one task."""
        self._tasks.begin(task_ids, _Buffer())

    def end_chunk(self) -> None:
        """Write the task's shard (complete or absent), or raise."""
        buffer = self._tasks.end()
        if buffer is not None:
            with buffer.lock:
                self._flush(buffer)

    def _flush(self, buffer: _Buffer) -> None:
        path, calls = buffer.take()
        if path is not None and calls:
            self._write(path, calls)

    def _write(self, path: str, calls: list[Call]) -> None:
        write_shard(path, calls, self.compressors, self.chunks, self.fsync,
                    ragged_axis(self.result_shape, self.stacking_dim))
        # an earlier attempt of one of these calls was pickled: the shard holds it now.
        # One listing per shard, not a stat per call (a third of the writing time)
        out = os.path.dirname(self.root)
        pickles = {_layout.call_name(self.func_name, i, ".pickle") for i, _ in calls}
        for name in pickles.intersection(os.listdir(out)):
            os.unlink(os.path.join(out, name))

    def write(self, task_id: int, value: Any) -> str:
        """Buffer call ``task_id``'s value for its task's shard; return the shard's path."""
        if self.result_shape is not None:  # an np.inf axis: the slot is result_0's row
            data, extras = self.checked_stacked(task_id, value)
            arrays = copied({"result_0": (data, False), **extras})
        else:
            arrays, why = storables(named_results(value, collapse=True))
            if why is not None:  # the per-call path: an emergency pickle
                return self._write_group(task_id, value)
            arrays = copied(arrays)
        buffer = self._tasks.of(task_id)
        if buffer is None:  # outside a task: a shard of its own, now
            path = self._shard_path(task_id)
            self._write(path, [(task_id, arrays)])
            return path
        with buffer.lock:
            if buffer.path is None:
                buffer.path = self._shard_path(task_id)
            reference = buffer.path
            buffer.calls.append((task_id, arrays))
            buffer.nbytes += nbytes(arrays)
            if buffer.nbytes >= self.shard_bytes:  # bounded memory: the next shard begins
                self._flush(buffer)
        return reference
