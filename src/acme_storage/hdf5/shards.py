"""Per-task shard files for the ``"hdf5"`` store: a file per task, not per call.

::

    "groups"  <out>/<fn>.h5                          comp_<i> = ExternalLink -> <shard>:/comp_<i>
              <out>/<fn>_payload/<fn>_<t>.shard.h5   groups comp_<i>/result_0, ... of one
                                                     task's calls (and their rows, below)
    "rows"    <out>/<fn>.h5                          result_<k>: virtual dataset over the rows
                                                     (:mod:`acme_storage.hdf5.rows`)
              <out>/<fn>_payload/<fn>_<t>.shard.h5   acme_ids, acme_block/result_<k>: one row
                                                     per call; comp_<i> for calls that do
                                                     not fit a row; attribute acme_layout
                                                     (with result_shape: result_0 stacked
                                                     along its axis, attribute
                                                     acme_stacking_dim, :mod:`.stacked`)

A shard holds the calls of one executor task (a *chunk*), written by that task
alone, so no two writers touch one file and no lock is needed. It is named after
the first call it holds (``t``), so a reader derives every candidate name from a
task id in ``range(n_calls)`` (:func:`shard_name`) and takes nothing from a file.

The worker buffers the task's values (copies, bounded by :data:`SHARD_BYTES`; more
start the next shard) and writes the shard at the end of the task, through a
temporary name and a rename: it is complete or absent. A worker killed mid-task
leaves at most a ``.partial`` file and loses only that task's calls, which run
again. A shard that replaces one of the same name (a call rerun, e.g. a retry of
the task's first call) first takes over the groups of the calls it does not hold
itself, so no finished call is lost by the replacement.

Values that HDF5 may not hold (objects, ``None``, numpy unicode, dates, ...) take
the per-call path of :class:`~acme_storage.hdf5.links.HDF5Writer` (a file, or an
emergency pickle): a call's own file wins over a copy in a shard, for readers and
for resume.

In a ``"groups"`` shard every call is an h5py group as in a per-call file, so
``h5py.File(container)["comp_7"]["result_0"]`` reads the same value either way; the
shard also keeps the calls stacked (when they share one signature) so readers read
a few datasets, not a group per call. A group per call is what bounds writing
(~0.1 ms of libhdf5 per call, ``benchmarks/README.md``): a ``"rows"`` shard has only
the stacked block, and a group only for a call whose values differ from the
block's first row (shape, dtype, text, bytes, empty arrays).
"""

from __future__ import annotations

import operator
import os
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from acme_core.fileio import atomic_path, fsync_path
from acme_storage import _layout, _trust
from acme_storage._values import decoded, named_results
from acme_storage.hdf5._h5 import H5Group, h5py, open_file, opens, read_call

__all__ = ["BLOCK", "BLOCK_IDS", "LAYOUT_ATTR", "SHARD_BYTES", "SHARD_SUFFIX", "STACKING_ATTR",
           "ShardBuffer",
           "ShardIndex", "block_columns", "buffered", "link_calls", "shard_name", "write_container",
           "write_shard"]

#: a shard file's suffix: ``<fn>_<first task id>.shard.h5``
SHARD_SUFFIX = ".shard.h5"

#: bytes of values a worker buffers before it writes a shard (and starts the next one)
SHARD_BYTES = 64 * 2**20

#: numpy kinds a shard holds (text goes as h5py strings); the rest goes per call
_SHARD_KINDS = frozenset("biufcS")


def shard_name(func_name: str, first: int) -> str:
    """``<fn>_<first>.shard.h5``: the shard whose first call is ``first``."""
    return _layout.call_name(func_name, first, SHARD_SUFFIX)


def buffered(value: Any, collapse: bool) -> list[tuple[str, Any, bool]] | None:
    """The datasets a shard holds for ``value`` (arrays copied), or None to write it per call.

    A copy, because the task keeps running: a function that returns the same
    array object, changed, on every call must not change earlier results.
    """
    out: list[tuple[str, Any, bool]] = []
    for name, data, is_text in named_results(value, collapse):
        if is_text:
            texts = [data] if isinstance(data, str) else list(np.asarray(data).ravel())
            if not all(isinstance(t, str) and "\x00" not in t for t in texts):
                return None
            out.append((name, data if isinstance(data, str) else np.array(data, copy=True),
                        True))
            continue
        array = np.array(data, copy=True)
        if array.dtype.kind not in _SHARD_KINDS or array.dtype.fields is not None:
            return None
        out.append((name, array, False))
    return out


def write_shard(path: str, calls: list[tuple[int, list[tuple[str, Any, bool]]]],
                compression: str | None, locking: bool | None, fsync: bool,
                rows: bool = False, stacking_dim: int | None = None) -> None:
    """Write the shard ``path`` holding ``calls`` atomically (see the module docstring).

    ``rows``: the ``"rows"`` layout (calls that fit the block are rows of it only);
    else ``"groups"`` (a group per call, plus the block as a copy for readers).
    ``stacking_dim`` (a stacked run, with ``rows``): the block's ``result_0`` is
    stacked along that axis, as the run's ``result_shape`` stacks it.
    """
    mine = {i for i, _ in calls}
    earlier = _earlier(path, mine)
    with atomic_path(path) as tmp:
        with open_file(tmp, "w", locking) as h5f:
            fast = _FastDatasets(h5f)
            if rows:
                in_block, as_groups = _split_rows(earlier[1] + calls)
                h5f.attrs[LAYOUT_ATTR] = "rows"
                if stacking_dim is not None:
                    h5f.attrs[STACKING_ATTR] = stacking_dim
            else:
                in_block, as_groups = (calls if _uniform(calls) else []), earlier[1] + calls
            for i, datasets in as_groups:
                _write_group(fast.group(_layout.comp_name(i)), datasets, compression, fast)
            _write_block(h5f, in_block, stacking_dim, compression)
            if earlier[0]:
                _take_over(path, h5f, mine | {i for i, _ in earlier[1]})
        if fsync:
            fsync_path(tmp)


#: raw data up to this size goes into the dataset's object header (HDF5's compact
#: layout: no separate allocation; the limit is HDF5's 64 KiB header message)
_COMPACT_BYTES = 32 * 2**10


class _FastDatasets:
    """Numeric datasets through h5py's low-level API, the dtype and shape objects made
    once per shard: a third less time per call than ``create_dataset`` (``benchmarks/README.md``)."""

    def __init__(self, h5f: H5Group) -> None:
        self.h5 = h5py()
        self.h5f = h5f
        self.types: dict[str, Any] = {}
        self.spaces: dict[tuple[int, ...], Any] = {}
        self.compact = self.h5.h5p.create(self.h5.h5p.DATASET_CREATE)
        self.compact.set_layout(self.h5.h5d.COMPACT)

    def group(self, name: str) -> H5Group:
        """A new group ``name`` in the file's root (``create_group`` without its checks)."""
        return self.h5.Group(self.h5.h5g.create(self.h5f.id, name.encode()))

    def write(self, group: H5Group, name: str, data: np.ndarray[Any, Any]) -> bool:
        """Write ``data`` as ``group[name]``; False (nothing written) if not a plain case."""
        if data.size == 0 or data.nbytes > _COMPACT_BYTES or data.dtype.kind not in "biufc":
            return False
        h5 = self.h5
        tid = self.types.get(data.dtype.str)
        if tid is None:
            tid = self.types[data.dtype.str] = h5.h5t.py_create(data.dtype, logical=True)
        space = self.spaces.get(data.shape)
        if space is None:
            space = self.spaces[data.shape] = (h5.h5s.create_simple(data.shape) if data.shape
                                               else h5.h5s.create(h5.h5s.SCALAR))
        dataset = h5.h5d.create(group.id, name.encode(), tid, space, dcpl=self.compact)
        dataset.write(h5.h5s.ALL, h5.h5s.ALL, np.ascontiguousarray(data))
        return True


def _write_group(group: H5Group, datasets: list[tuple[str, Any, bool]],
                 compression: str | None, fast: _FastDatasets) -> None:
    """One call's datasets, as :func:`~acme_storage.hdf5._h5.write_results` writes them."""
    for name, data, is_text in datasets:
        if is_text:
            group.create_dataset(name, data=data, dtype=h5py().string_dtype())
            continue
        if not compression and fast.write(group, name, data):
            continue
        kwargs = {"compression": compression} if compression and data.ndim > 0 else {}
        group.create_dataset(name, data=data, **kwargs)


#: a shard's copy of its calls stacked, for readers: ``acme_ids`` and ``acme_block/result_<k>``
BLOCK_IDS = "acme_ids"
BLOCK = "acme_block"


#: the root attribute of a ``"rows"`` shard (a ``"groups"`` shard has none)
LAYOUT_ATTR = "acme_layout"

#: the root attribute of a stacked run's ``"rows"`` shard: the axis its block's
#: ``result_0`` is stacked along (``result_shape``'s ``None``)
STACKING_ATTR = "acme_stacking_dim"


def _signature(datasets: list[tuple[str, Any, bool]]) -> tuple[Any, ...] | None:
    """Names, dtypes and shapes of a call's datasets; None when a block cannot hold them."""
    if any(is_text or data.dtype.kind not in "biufc" or data.size == 0
           for _, data, is_text in datasets):
        return None
    return tuple((name, data.dtype.str, data.shape) for name, data, _ in datasets)


def _uniform(calls: list[tuple[int, list[tuple[str, Any, bool]]]]) -> bool:
    signatures = {_signature(datasets) for _, datasets in calls}
    return len(signatures) == 1 and None not in signatures


def _split_rows(calls: list[tuple[int, list[tuple[str, Any, bool]]]]) -> tuple[
        list[tuple[int, list[tuple[str, Any, bool]]]], list[tuple[int, list[tuple[str, Any, bool]]]]]:
    """The calls that fit the block (the signature of the first call a block can hold)
    and the rest, which get a group each."""
    block: list[tuple[int, list[tuple[str, Any, bool]]]] = []
    groups: list[tuple[int, list[tuple[str, Any, bool]]]] = []
    first: tuple[Any, ...] | None = None
    for call in calls:
        signature = _signature(call[1])
        if first is None:  # the first call a block can hold sets the rows' signature
            first = signature
        (block if signature is not None and signature == first else groups).append(call)
    return block, groups


def _write_block(h5f: H5Group, calls: list[tuple[int, list[tuple[str, Any, bool]]]],
                 stacking_dim: int | None = None, compression: str | None = None) -> None:
    """The calls (of one signature) stacked: ``acme_ids`` and one array per result.

    Reading a shard's calls back then costs a few datasets, not a group per call
    (``open_results`` of a million calls); in a ``"rows"`` shard the block is all
    these calls have, in a ``"groups"`` one a copy of their groups. With
    ``stacking_dim``, ``result_0`` is stacked along that axis (a hyperslab of the
    run's ``result_shape``), the other results along the first. ``compression``: the
    store's filter, for every block (HDF5 chunks them for it).
    """
    if not calls:
        return
    h5f.create_dataset(BLOCK_IDS, data=np.array([i for i, _ in calls], dtype=np.int64))
    block = h5f.create_group(BLOCK)
    for k, (name, _, _) in enumerate(calls[0][1]):
        axis = stacking_dim if stacking_dim is not None and k == 0 else 0
        data = np.stack([datasets[k][1] for _, datasets in calls], axis=axis)
        block.create_dataset(name, data=data,
                             **({"compression": compression} if compression else {}))


def _earlier(path: str, mine: set[int]) -> tuple[bool, list[tuple[int, list[tuple[str, Any, bool]]]]]:
    """Whether a complete shard ``path`` exists already, and the rows of its block that
    are neither ``mine`` nor a group of it (those :func:`_take_over` copies)."""
    if not (os.path.exists(path) and opens(path)):
        return False, []
    with open_file(path, "r") as old:
        groups = {i for i in map(_comp_id, old) if i is not None}
        ids, columns = block_columns(old)
        return True, [(i, [(key, column[j], False) for key, column in columns])
                      for j, i in enumerate(ids) if i not in mine and i not in groups]


def block_columns(h5f: H5Group) -> tuple[list[int], list[tuple[str, np.ndarray[Any, Any]]]]:
    """A shard's block: its call ids and ``(result_<k>, rows)`` per result (empty if none)."""
    if BLOCK_IDS not in h5f or BLOCK not in h5f:
        return [], []
    ids = h5f[BLOCK_IDS][()]
    block = h5f[BLOCK]
    columns = [(key, block[key][()]) for key in _layout.result_keys(block)]
    dim = _stacking_dim(h5f, columns)
    if dim:  # a stacked run's result_0: its rows along the first axis, as every column's
        columns[0] = (columns[0][0], np.moveaxis(columns[0][1], dim, 0))
    if not columns or any(len(c) != len(ids) for _, c in columns):
        return [], []
    return [int(i) for i in ids.tolist()], columns


def _stacking_dim(h5f: H5Group, columns: list[tuple[str, np.ndarray[Any, Any]]]) -> int | None:
    """The axis of a stacked shard's ``result_0`` (None: not stacked, or not a valid axis)."""
    value = h5f.attrs.get(STACKING_ATTR)
    if value is None or not columns or columns[0][0] != "result_0":
        return None
    try:  # anybody may have written the attribute: an integer or nothing
        dim = operator.index(value)
    except TypeError:
        return None
    return dim if 0 <= dim < columns[0][1].ndim else None


def _take_over(path: str, h5f: H5Group, mine: set[int]) -> None:
    """Copy the calls of the earlier shard ``path`` that the new one does not hold."""
    with open_file(path, "r") as old:
        for key in old:
            i = _comp_id(key)
            if i is not None and i not in mine:
                old.copy(old[key], h5f, name=key)


def _comp_id(key: str) -> int | None:
    match = re.fullmatch(r"comp_(\d+)", key)
    return int(match.group(1)) if match else None


class ShardBuffer:
    """A worker's values of the current task, until :meth:`flush` writes them as a shard."""

    def __init__(self) -> None:
        self.calls: list[tuple[int, list[tuple[str, Any, bool]]]] = []
        self.nbytes = 0
        #: the path of the shard being filled (one ``str`` object: references share it)
        self.path: str | None = None
        self.lock = threading.Lock()

    def add(self, path_of: Any, task_id: int, datasets: list[tuple[str, Any, bool]]) -> str:
        """Buffer one call; return the shard path it will be in."""
        if self.path is None:
            self.path = str(path_of(task_id))
        self.calls.append((task_id, datasets))
        self.nbytes += sum(d.nbytes if isinstance(d, np.ndarray) else len(d)
                           for _, d, _ in datasets) + 64
        return self.path

    def take(self) -> tuple[str | None, list[tuple[int, list[tuple[str, Any, bool]]]]]:
        """The buffered shard (path and calls), emptying the buffer."""
        path, calls = self.path, self.calls
        self.path, self.calls, self.nbytes = None, [], 0
        return path, calls


class ShardIndex:
    """Which call is in which complete shard of a run directory (for readers and resume).

    Every shard name is derived from a task id (:func:`shard_name`); the directory
    listing only tells which of them exist. A shard that does not open (empty or
    truncated by a node crash) holds nothing.
    """

    def __init__(self, run_dir: Path, func_name: str, n_calls: int) -> None:
        self.run_dir = run_dir
        self.func_name = func_name
        #: task id -> shard file name (in the payload directory)
        self.where: dict[int, str] = {}
        #: the calls that are rows of a ``"rows"`` shard's block (no group of their own)
        self.rows: set[int] = set()
        payload = _layout.payload_dir(run_dir, func_name)
        if not payload.is_dir() or payload.is_symlink():
            return
        for first in sorted(self._firsts(payload, n_calls)):
            name = shard_name(func_name, first)
            path = _trust.inside(run_dir, payload.name, name)
            if path is None or not path.is_file():
                continue
            groups, block = self._calls_in(path, n_calls)
            for i in groups:
                self.where.setdefault(i, name)
            in_groups = set(groups)
            for i in block:  # a call both a group and a row (never written so) is a group
                if self.where.setdefault(i, name) == name and i not in in_groups:
                    self.rows.add(i)

    def _firsts(self, payload: Path, n_calls: int) -> Iterator[int]:
        for entry in os.scandir(payload):
            t = _layout.task_id_of(entry.name, self.func_name, SHARD_SUFFIX)
            if t is not None and t < n_calls and not entry.is_symlink():
                yield t

    @staticmethod
    def _calls_in(path: Path, n_calls: int) -> tuple[list[int], list[int]]:
        """The calls in groups, and those only in the block (of a ``"rows"`` shard)."""
        try:
            with open_file(path, "r") as h5f:
                groups = [_comp_id(key) for key in h5f]
                # a "groups" shard's block is a copy of its groups: only a "rows" one counts
                block = ([int(i) for i in h5f[BLOCK_IDS][()].tolist()]
                         if h5f.attrs.get(LAYOUT_ATTR) == "rows" and BLOCK_IDS in h5f else [])
        except (OSError, ValueError, KeyError, RuntimeError, TypeError):
            return [], []
        return ([i for i in groups if i is not None and i < n_calls],
                [i for i in block if 0 <= i < n_calls])

    def path(self, i: int) -> Path | None:
        """The shard holding call ``i`` (None when no complete shard does)."""
        name = self.where.get(i)
        if name is None:
            return None
        return _trust.inside(self.run_dir, _layout.payload_dir(Path(), self.func_name).name,
                             name)

    def read(self, ids: list[int]) -> dict[int, Any]:
        """The values of calls ``ids`` found in shards, each shard opened once."""
        by_shard: dict[str, list[int]] = {}
        for i in ids:
            if i in self.where:
                by_shard.setdefault(self.where[i], []).append(i)
        values: dict[int, Any] = {}
        for members in by_shard.values():
            path = self.path(members[0])
            if path is None:
                continue
            with open_file(path, "r") as h5f:
                stacked = _read_block(h5f)
                for i in members:
                    values[i] = (stacked[i] if i in stacked
                                 else read_call(h5f[_layout.comp_name(i)]))
        return values


def _read_block(h5f: H5Group) -> dict[int, Any]:
    """The calls a shard's block holds, as :func:`~acme_storage.hdf5._h5.read_call` reads them."""
    ids, columns = block_columns(h5f)
    rows: dict[int, Any] = {}
    for j, i in enumerate(ids):
        values = [decoded(c[j], text=False) for _, c in columns]
        rows[i] = values[0] if len(values) == 1 else tuple(values)
    return rows


def write_container(container: Path, payload: Path, references: list[Any],
                    locking: bool | None) -> None:
    """The container of a ``"groups"`` run: ``comp_<i>`` -> its shard's ``comp_<i>``
    (or its own file); see :func:`link_calls`."""
    with atomic_path(container) as tmp, open_file(tmp, "w", locking) as h5f:
        link_calls(h5f, payload, references)


def link_calls(h5f: H5Group, payload: Path, references: list[Any]) -> None:
    """``comp_<i>`` -> the shard's ``comp_<i>`` or the call's own file, for every call
    whose reference is an HDF5 file.

    Links are relative to the container (``<fn>_payload/<name>``), so a moved run
    directory still reads; a call without an HDF5 result (failed, or pickled) has
    no link.
    """
    h5 = h5py()
    # h5py's low-level call, as the per-call container makes it (no checks per link)
    lcpl = h5.h5p.create(h5.h5p.LINK_CREATE)
    lcpl.set_char_encoding(h5.h5t.CSET_UTF8)
    create = h5f.id.links.create_external
    rel = payload.name
    last: tuple[str, bytes] = ("", b"")
    for i, reference in enumerate(references):
        if not isinstance(reference, str) or not reference.endswith(".h5"):
            continue
        if reference != last[0]:  # the calls of one shard share its reference
            last = (reference, f"{rel}/{os.path.basename(reference)}".encode())
        comp = _layout.comp_name(i).encode()
        inner = b"/" + comp if reference.endswith(SHARD_SUFFIX) else b"/"
        create(comp, last[1], inner, lcpl=lcpl)
