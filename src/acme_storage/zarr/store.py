"""The ``"zarr"`` store: every result in one zarr v3 group ``<out>/<fn>.zarr``.

::

    <out>/<fn>.zarr/comp_<i>/result_<k>   without result_shape (ACME's names and
                                          collapse rule, as on HDF5)
    <out>/<fn>.zarr/result_0              with result_shape: one array, chunked one
                                          call per chunk along the stacking axis
    <out>/<fn>.zarr/comp_<i>/result_<k>   ... plus extra return values (k >= 1)
    <out>/<fn>.zarr/acme_extent           ... plus, with an np.inf axis, one int per call
    <out>/<fn>_<i>.pickle                 values zarr cannot hold, per call

From 10,000 calls (the default ``store_options={"shard_calls": "auto"}``; or
with True, or a number of calls per shard) and a finite ``result_shape``, ``result_0`` is a
zarr v3 sharded array: one shard file per block of calls instead of one chunk
file per call, written lock-free because the dispatcher never runs two tasks
holding calls of one block (:mod:`acme_storage.zarr.shards` explains it all).
Runs without ``result_shape`` or with an ``np.inf`` axis (from 10,000 calls,
or with ``"rows"`` or True) write a zip file per task instead of a group or
chunk files per call (no ``result_0`` array then: each call's slot is its
``result_0`` in the zip), and so do the extra return values of a sharded
``result_0`` (:mod:`acme_storage.zarr.rows`)::

    <out>/<fn>_payload/<fn>_<t>.zarr.zip  acme_ids, acme_block/result_<k> (the task's
                                          calls as rows), comp_<i>/result_<k> (calls
                                          that do not fit the rows)

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

Chunks are written through zarr-python, except whole chunks of the store's own
uncompressed layouts: a call's slot when it is one chunk, and ``acme_extent``'s
8-byte entries. :mod:`acme_storage.zarr._fast` makes their bytes (the zarr v3
spec fixes them) and says why, with the figures that decided it.

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
result (``Array.resize``, :func:`acme_storage.zarr._zarr.resize_axis`). Shorter results are
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
array cannot hold a pickle): such a call fails with a ``TypeError``
(:class:`acme_core.errors.ResultTypeError`).

Modules: this one is the driver side (``prepare``, ``finalize``, reading back);
:mod:`.writer` the worker side; :mod:`._zarr` the seam over zarr-python;
:mod:`._fast` the chunk bytes. zarr is imported on first use, so listing the
stores does not need it.
"""

from __future__ import annotations

import json
import math
import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from acme_core.errors import ArgumentValueError, NoRunError
from acme_core.fileio import final_name_of, remove_partials
from acme_core.store import BaseStore, RunInfo
from acme_storage import _layout, _trust, stacking
from acme_storage._emergency import read_emergency
from acme_storage.zarr import _zarr, rows
from acme_storage.zarr import shards as zshards
from acme_storage.zarr._fast import FastChunks, whole_slot_chunks
from acme_storage.zarr.writer import EXTENT, ZarrWriter

__all__ = ["CAPACITY", "COMPRESSIONS", "EXTENT", "INF_CHUNK_BYTES", "ZarrStore"]

#: provisional length of an ``np.inf`` axis until ``finalize`` sets the real one
CAPACITY = 2 ** 40
#: compression names the ``compression`` option understands
COMPRESSIONS = ("zstd", "gzip", "blosc")
#: target size of one chunk along an ``np.inf`` axis when ``chunks`` is not given
INF_CHUNK_BYTES = 2 ** 18


def _checked_chunks(chunks: Sequence[int] | None) -> tuple[int, ...] | None:
    if chunks is None:
        return None
    if not isinstance(chunks, (list, tuple)) or not all(
            isinstance(c, (int, np.integer)) and not isinstance(c, bool) and c >= 1
            for c in chunks):
        raise ArgumentValueError(f"`chunks` has to be a tuple of positive integers, not "
                                 f"{chunks!r}", parameter="store_options")
    return tuple(int(c) for c in chunks)


def _check_compression(compression: Any, compression_level: int | None) -> None:
    if isinstance(compression, str) and compression not in (*COMPRESSIONS, "default", "none"):
        raise ArgumentValueError(f"`compression` has to be one of {', '.join(COMPRESSIONS)}, "
                                 f"'default' or None (or zarr codecs), not {compression!r}",
                                 parameter="store_options")
    if compression_level is not None and (isinstance(compression_level, bool)
                                          or not isinstance(compression_level, int)):
        raise ArgumentValueError(f"`compression_level` has to be an integer, not "
                                 f"{compression_level!r}", parameter="store_options")


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
    shard_calls : bool, "auto", "rows" or int, optional
        ``"auto"`` (default): True from
        :data:`~acme_storage.zarr.shards.SHARD_AUTO_CALLS` (10,000) calls, False
        below (``benchmarks/README.md``: at 10^4 calls the shards write 3-80x
        faster and read back 500x faster than a chunk file or group per call,
        with 14-67 files instead of 10,000-60,000). False: a chunk file or group
        per call. True: with a finite
        ``result_shape``, ``result_0`` in zarr v3 shards (a size from
        :func:`acme_storage.zarr.shards.calls_per_shard`), otherwise a zip shard per
        task (:mod:`acme_storage.zarr.rows`); ``"rows"``: the same; an integer:
        calls per shard of a finite ``result_shape``'s ``result_0`` (refused
        otherwise). With an ``np.inf`` axis, True, ``"rows"`` and ``"auto"`` write
        zip shards.

    Raises
    ------
    acme_core.errors.ArgumentValueError
        An option is not one of the above (``parameter="store_options"``).
    """

    name: ClassVar[str] = "zarr"
    #: optional dependency -> the pip extra that installs it
    requires: ClassVar[dict[str, str]] = {"zarr": "zarr"}
    #: let workers write whole chunks of the store's own layouts as bytes
    #: (:mod:`acme_storage.zarr._fast`); False sends every chunk through
    #: zarr-python (``benchmarks/bench_stores.py --stores zarr zarr-api`` compares them)
    fast_chunks: ClassVar[bool] = True
    #: write those slot chunks by hand (acme_core.fileio), not with zarr's
    #: LocalStore.set_sync (:mod:`acme_storage.zarr._fast` says why; the benchmark's
    #: ``zarr-set_sync`` sets it to False)
    slots_by_hand: ClassVar[bool] = True

    def __init__(self, compression: Any = None, compression_level: int | None = None,
                 chunks: Sequence[int] | None = None,
                 shard_calls: bool | int | str = "auto") -> None:
        super().__init__()
        _check_compression(compression, compression_level)
        zshards.check_shard_calls(shard_calls)
        self.shard_calls = shard_calls
        self.compression = compression
        self.compression_level = compression_level
        self.chunks: tuple[int, ...] | None = _checked_chunks(chunks)

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(compression={self.compression!r}, "
                f"chunks={self.chunks!r}, shard_calls={self.shard_calls!r})")

    def check_run(self, run: RunInfo) -> None:
        """Refuse a ``result_dtype`` zarr v3 has no data type for, ``chunks`` that do not
        fit ``result_shape``, or another run's files in ``output_dir``.

        Raises
        ------
        acme_core.errors.ArgumentValueError
            ``parameter="result_dtype"``, ``"store_options"`` or ``"output_dir"``.
        """
        stacking.check_result_dtype(run, self.name, max_itemsize={"f": 8, "c": 16})
        zshards.check_run_shards(self.shard_calls, run)
        if run.result_shape is not None and run.result_dtype is not None:
            assert run.stacking_dim is not None
            self._stacked_layout(run.result_shape, run.stacking_dim, run.result_dtype)
        if not run.resume:
            fn = run.func_name
            _trust.refuse_leftovers(run.output_dir, [_layout.container(Path(), fn, ".zarr").name,
                                                     _layout.payload_dir(Path(), fn).name],
                                    fn, (".pickle",))

    @property
    def root(self) -> Path:
        """``<out>/<fn>.zarr``."""
        assert self.run is not None
        return _layout.container(self.out, self.run.func_name, ".zarr")

    @property
    def payload(self) -> Path:
        """``<out>/<fn>_payload``: the zip shards of a run without ``result_shape``."""
        assert self.run is not None
        return _layout.payload_dir(self.out, self.run.func_name)

    def rows(self, run: RunInfo) -> bool:
        """Whether ``run`` writes a zip shard per task (:mod:`acme_storage.zarr.rows`)."""
        return zshards.rows_of(self.shard_calls, run)

    def _zips(self, run: RunInfo) -> bool:
        """Whether ``run`` writes zip shards: its calls (:meth:`rows`), or a sharded
        ``result_0``'s extra return values."""
        return self.rows(run) or self.block_calls(run) is not None

    def block_calls(self, run: RunInfo) -> int | None:
        """Calls per shard (:class:`acme_core.store.WritesBlocks`); None when not sharded."""
        return zshards.shard_calls_of(self.shard_calls, run)

    def _compressors(self) -> Any:
        return _zarr.compressors(self.compression, self.compression_level)

    # -- protocol ------------------------------------------------------------
    def prepare(self, run: RunInfo) -> None:
        """Create the group (and the stacked arrays); on resume, keep it and regrow an inf axis."""
        super().prepare(run)
        self.results_container = str(self.root)
        if run.resume and (self.root / "zarr.json").exists():
            if self._zips(run):
                self.payload.mkdir(exist_ok=True)
            inf = stacking.unlimited_axis(run.result_shape or ())
            if inf is not None and not self.rows(run):
                # new results may be longer than the extent an earlier finalize set
                _zarr.resize_axis(self.root / "result_0", inf, CAPACITY)
            return
        if self.root.exists():
            shutil.rmtree(self.root)
        group = _zarr.open_group(self.root, "w")
        if run.result_shape is not None and not self.rows(run):
            self._create_stacked(group, run)
        if self._zips(run):
            self.payload.mkdir(exist_ok=True)

    def _create_stacked(self, group: _zarr.ZGroup, run: RunInfo) -> None:
        assert run.result_shape is not None and run.stacking_dim is not None
        dtype = np.dtype(run.result_dtype)
        shape, chunks = self._stacked_layout(run.result_shape, run.stacking_dim, dtype)
        calls = self.block_calls(run)
        shards = (zshards.shard_shape(shape, chunks, run.stacking_dim, calls)
                  if calls is not None else None)
        _zarr.create_stacked(group, "result_0", shape, chunks, dtype, 0, self._compressors(),
                             shards)
        if stacking.unlimited_axis(run.result_shape) is not None:
            # the slots' chunk files record what is written, except along an inf axis
            _zarr.create_stacked(group, EXTENT, (run.n_calls,), (1,), np.dtype("<i8"), -1, None)

    def _stacked_layout(self, result_shape: tuple[float, ...], dim: int,
                        dtype: np.dtype[Any]) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """(array shape, chunk shape): one call per chunk along ``dim``."""
        inf = stacking.unlimited_axis(result_shape)
        shape = tuple(CAPACITY if k == inf else int(s) for k, s in enumerate(result_shape))
        per_call = [s for k, s in enumerate(shape) if k != dim]
        if self.chunks is not None:
            if len(self.chunks) != len(per_call):
                raise ArgumentValueError(
                    f"`store_options`: `chunks` {self.chunks} has to have one entry per axis of "
                    f"one call's result "
                    f"({len(per_call)}: `result_shape` without the stacking axis)",
                    parameter="store_options")
            per_call = list(self.chunks)
        elif inf is not None:
            axis = inf - (inf > dim)
            other = math.prod(max(1, s) for k, s in enumerate(per_call) if k != axis)
            per_call[axis] = max(1, INF_CHUNK_BYTES // (other * dtype.itemsize))
        chunks = [max(1, int(c)) for c in per_call]
        chunks.insert(dim, 1)
        return shape, tuple(chunks)

    def _fast(self) -> FastChunks | None:
        """What workers may write as bytes: whole slots, extent entries (see :mod:`._fast`)."""
        run = self.run
        if not self.fast_chunks or run is None or run.result_shape is None:
            return None
        assert run.stacking_dim is not None
        result_0 = _zarr.open_array(self.root / "result_0")
        slots = (result_0.metadata.chunk_key_encoding
                 if whole_slot_chunks(result_0, run.stacking_dim) else None)
        extent = None
        if stacking.unlimited_axis(run.result_shape) is not None:
            extent = _zarr.open_array(self.root / EXTENT).metadata.chunk_key_encoding
        if slots is None and extent is None:
            return None
        return FastChunks(str(self.root), slots, extent, slots_by_hand=self.slots_by_hand)

    def writer(self) -> ZarrWriter:
        """The picklable writer the tasks use."""
        assert self.run is not None
        run = self.run
        args = (str(self.root), run.func_name, run.result_shape, run.stacking_dim,
                str(run.result_dtype) if run.result_dtype is not None else None,
                self._compressors(), self.chunks)
        if self.rows(run):
            return rows.ZarrRowsWriter(*args, payload=str(self.payload))
        cls = ZarrWriter if self.block_calls(run) is None else zshards.ZarrShardWriter
        return cls(*args, fast=self._fast())

    def existing(self) -> dict[int, Any]:
        """Task id -> reference of every call with data on disk."""
        assert self.run is not None
        run = self.run
        if run.result_shape is not None and self.rows(run):  # np.inf in zip shards
            index = rows.RowsIndex(self.out, run.func_name, run.n_calls,
                                   rows.ragged_axis(run.result_shape, run.stacking_dim))
            return {i: str(index.path(i)) for i in sorted(index.where)}
        if run.result_shape is not None:
            assert run.stacking_dim is not None
            ref = str(self.root / "result_0")
            if stacking.unlimited_axis(run.result_shape) is None:
                ids = _written_slots(self.root, run.stacking_dim, run.n_calls)
            else:
                ids = _extended(self.root) if (self.root / EXTENT).exists() else set()
            return {i: ref for i in sorted(ids)}
        found: dict[int, Any] = {}
        if self.root.is_dir():
            # the container listed once: a zip-shard run has no group, and a stat per
            # call would be a million stats at 10^6 calls
            present = set(os.listdir(self.root))
            for i in range(run.n_calls):
                group = self.root / _layout.comp_name(i)
                if _layout.comp_name(i) in present and _complete_group(group):
                    found[i] = str(group)
        for entry in os.scandir(self.out):
            pickled = _layout.task_id_of(entry.name, run.func_name, ".pickle")
            if pickled is not None and pickled < run.n_calls and not entry.is_symlink() \
                    and _trust.whole_pickle(entry.path):
                found[pickled] = entry.path
        # zip shards (a call's own pickle or group wins over a copy in a shard)
        index = rows.RowsIndex(self.out, run.func_name, run.n_calls)
        for i in index.where.keys() - found.keys():
            found[i] = str(index.path(i))
        return found

    def finalize(self, references: list[Any], failed: set[int]) -> list[Any]:
        """Remove what killed writers left; set an inf axis to the longest result."""
        assert self.run is not None
        run = self.run
        self.results_container = str(self.root)
        # temporary chunk files, groups and pickles of calls whose worker died mid-write:
        # ours (".<name>.<hex>.partial") next to the container, and inside it also
        # zarr-python's own ("<stem>.<uuid>.partial"); no key of the container ends so
        remove_partials(self.out, match=self._is_own_temporary)
        for directory in (self.root, self.root / "result_0", self.root / EXTENT, self.payload):
            remove_partials(directory, match=lambda name: name.endswith(".partial"))
        inf = stacking.unlimited_axis(run.result_shape or ())
        if inf is not None and not self.rows(run):
            extent = _zarr.open_array(self.root / EXTENT)[...]
            written = extent[extent >= 0]
            # ACME's initial extent of an unlimited axis is 1 (before any data)
            longest = int(written.max()) if written.size else 1
            _zarr.resize_axis(self.root / "result_0", inf, longest)
        return [ref if i not in failed else None for i, ref in enumerate(references)]

    def _is_own_temporary(self, name: str) -> bool:
        """A temporary group or emergency pickle of this run (in a directory others may share)."""
        assert self.run is not None
        fn, final = self.run.func_name, final_name_of(name)
        return ((final is not None and final.startswith(f"{fn}.zarr.comp_"))
                or _layout.is_call_temporary(name, fn, ".pickle"))

    # -- reading ---------------------------------------------------------------
    @classmethod
    def read(cls, run_dir: Path, manifest: dict[str, Any]) -> Any:
        """Every finished call's value in task order; with ``result_shape`` the stacked array.

        Raises
        ------
        acme_core.errors.NoRunError
            ``run_dir`` has no zarr container.
        """
        run = _trust.listed(run_dir, manifest)
        name = _layout.container(Path(), run.func_name, ".zarr").name
        root = _trust.inside(run_dir, name)
        if root is None or _trust.inside(run_dir, name, "zarr.json") is None:
            raise NoRunError(f"{run_dir} has no zarr container {name}")
        group = _zarr.open_group(root)
        if manifest.get("result_shape") is None:
            index = rows.RowsIndex(run_dir, run.func_name, run.n_calls)
            in_shards = index.read(sorted(run.finished - run.pickled)) if index.where else {}
            return [in_shards[i] if i in in_shards
                    else _read_call(group, run_dir, run.func_name, i, i in run.pickled)
                    if i in run.finished else None for i in range(run.n_calls)]
        if _trust.inside(run_dir, name, "result_0") is None:  # np.inf in zip shards
            ragged = rows.ragged_axis(stacking.manifest_shape(manifest),
                                      int(manifest["stacking_dim"]))
            index = rows.RowsIndex(run_dir, run.func_name, run.n_calls, ragged)
            return _read_rows_stacked(index, manifest, run.finished)
        index = rows.RowsIndex(run_dir, run.func_name, run.n_calls)
        _trust.inside(run_dir, name, EXTENT)  # zarr follows links: none may leave the run
        return _read_stacked(group, root, manifest, run.finished, index)


def _complete_group(group: Path) -> bool:
    """Whether a call's group is complete on disk: its metadata parse, no file is empty.

    Groups are renamed into place only when complete; a node crash can still leave
    files of a renamed group empty or short (they are not fsync'd).
    """
    if group.is_symlink() or not (group / "zarr.json").is_file():
        return False
    for path in group.rglob("*"):
        if path.is_symlink():
            return False
        if path.name == "zarr.json":
            try:
                json.loads(path.read_bytes())
            except ValueError:
                return False
    try:
        return all(_zarr.chunks_whole(array) for array in group.iterdir() if array.is_dir())
    except (OSError, ValueError, KeyError, TypeError):  # metadata zarr cannot read
        return False


def _written_slots(root: Path, stacking_dim: int, n_calls: int) -> set[int]:
    """Calls whose slot has its (first) chunk in ``result_0`` (finite shapes), per call
    file or in a shard's index."""
    present = _zarr.chunk_keys(root / "result_0")
    if not present:
        return set()
    array = _zarr.open_array(root / "result_0")
    if array.shards is not None:
        return zshards.written_slots(root, array, stacking_dim, n_calls)
    keys = _zarr.slot_keys(array, stacking_dim, n_calls)
    # an empty or short chunk file (a node crash before it reached the disk) is no result
    size = _zarr.whole_chunk_size(array)
    return {i for i, key in keys.items()
            if key in present and _chunk_complete(root / "result_0" / key, size)}


def _chunk_complete(path: Path, size: int | None) -> bool:
    actual = os.stat(path).st_size
    return actual == size if size is not None else actual > 0


def _extended(root: Path) -> set[int]:
    """Calls with an entry in ``acme_extent`` (inf shapes): their slot is complete."""
    extent = _zarr.open_array(root / EXTENT)[...]
    return {int(i) for i in np.flatnonzero(extent >= 0)}


def _read_stacked(group: _zarr.ZGroup, root: Path, manifest: dict[str, Any],
                  finished: set[int], index: rows.RowsIndex) -> Any:
    """The stacked ``result_0``, masked where calls are missing, with extra returns
    (from zip shards, ``index``, or ``comp_<i>`` groups)."""
    n = int(manifest["n_calls"])
    shape = stacking.manifest_shape(manifest)
    dim = int(manifest["stacking_dim"])
    array = group["result_0"]
    inf = stacking.unlimited_axis(shape)
    data = None
    if inf is None and array.shards is not None and zshards.raw_shards(array, dim):
        data, on_disk = zshards.read_raw(root, array, dim, n)  # by hand: zarr is slow here
        written = finished & on_disk
    elif inf is None:
        written = finished & _written_slots(root, dim, n)
    else:
        extent = group[EXTENT][...]
        written = {i for i in finished if extent[i] >= 0}
        if array.shape[inf] == CAPACITY:
            # the run never reached finalize: cut the provisional axis to the longest result
            longest = int(extent[extent >= 0].max()) if (extent >= 0).any() else 1
            data = array[tuple(slice(0, longest) if k == inf else slice(None)
                               for k in range(array.ndim))]
    if data is None:
        data = array[...]
    return stacking.with_extras(stacking.apply_mask(data, dim, n, written),
                                _extras(group, index, sorted(written)))


def _read_rows_stacked(index: rows.RowsIndex, manifest: dict[str, Any],
                       finished: set[int]) -> Any:
    """A run with an ``np.inf`` axis in zip shards, stacked as the per-call layout reads it:
    that axis as long as the longest result (1 without any), shorter ones padded with 0,
    masked where calls are missing, with extra returns."""
    n, dim = int(manifest["n_calls"]), int(manifest["stacking_dim"])
    shape = stacking.manifest_shape(manifest)
    inf = stacking.unlimited_axis(shape)
    assert inf is not None
    found = index.read(sorted(finished), as_lists=True)
    slots = {i: np.asarray(values[0]) for i, values in found.items()}
    axis = inf - (inf > dim)
    longest = max((slot.shape[axis] for slot in slots.values() if slot.ndim > axis), default=1)
    full = tuple(longest if k == inf else int(s) for k, s in enumerate(shape))
    data = np.zeros(full, dtype=np.dtype(manifest.get("result_dtype") or "float64"))
    # a slot fits when its other axes are the result_shape's (a file is not trusted beyond
    # that); its index is the template's, with the call's id and length (no slot_region
    # per call: a third of reading 10^5 padded rows back)
    other = tuple(int(s) for k, s in enumerate(full) if k not in (dim, inf))
    region: list[Any] = [slice(None)] * len(full)
    written = []
    for i, slot in slots.items():
        if slot.ndim == len(other) + 1 and slot.shape[axis] <= longest \
                and slot.shape[:axis] + slot.shape[axis + 1:] == other:
            region[dim], region[inf] = i, slice(0, slot.shape[axis])
            data[tuple(region)] = slot
            written.append(i)
    return stacking.with_extras(stacking.apply_mask(data, dim, n, written),
                                [found[i][1:] for i in sorted(written)])


def _extras(group: _zarr.ZGroup, index: rows.RowsIndex, ids: list[int]) -> list[list[Any]]:
    """The extra return values of calls ``ids``: from zip shards, else ``comp_<i>`` groups."""
    in_shards = index.read(ids, as_lists=True) if index.where else {}
    # the group's members listed once: `name in group` asks the store once per call
    # (about 0.5 ms each: 5 s of reading 10,000 calls back)
    members = set(group.group_keys())
    return [in_shards[i] if i in in_shards
            else _zarr.read_extras(group[_layout.comp_name(i)])
            if _layout.comp_name(i) in members else [] for i in ids]


def _read_call(group: _zarr.ZGroup, run_dir: Path, fn: str, i: int, pickled: bool) -> Any:
    """Call ``i``'s value: its emergency pickle (when the manifest lists it), its group, or None."""
    if pickled:
        pkl = _trust.inside(run_dir, _layout.call_name(fn, i, ".pickle"))
        if pkl is not None:
            return read_emergency(pkl)
    name = _layout.comp_name(i)
    if name not in group:
        return None
    _trust.inside(run_dir, _layout.container(Path(), fn, ".zarr").name, name)
    return _zarr.read_call(group[name])
