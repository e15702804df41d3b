"""The ``"hdf5-single"`` store (ACME's ``single_file=True``): every result in one ``<fn>.h5``.

::

    <out>/<fn>.h5      groups comp_<i> (datasets result_0, result_1, ...), or one
                       stacked dataset result_0 plus comp_<i>/result_<k> for extras

How many writers share one file without a lock
----------------------------------------------
HDF5 files cannot be written by several processes at once, and ACME serialises
the writers with a dask ``distributed.Lock``: every call takes the lock, opens
the shared file, writes and closes. That has three problems on a cluster:

* a worker killed while it holds the file open (out of memory, node lost, job
  time limit) leaves a half-written HDF5 file: every result in it may be lost,
  not just that call's;
* the lock needs a live dask scheduler, so it ties the store to one backend;
* the writers queue behind each other on the shared file system.

This store therefore does not let workers touch the shared file at all:

1. **Workers stage.** Each call writes its own small HDF5 file
   ``<out>/<fn>_staging/<fn>_<i>.h5`` atomically (temporary name, then
   ``os.replace``), exactly like the ``"hdf5"`` store's payload files. Workers on
   any host write in parallel and need no lock: a file is complete or absent.
2. **The driver merges.** ``finalize`` (in the process that called
   ``ParallelMap``, the only process that ever opens ``<fn>.h5`` for writing)
   copies the container to a temporary name, merges every staged call into it,
   records the merged calls in the container's ``acme_written`` attribute and
   renames the result over ``<fn>.h5``. A crash at any moment leaves either the
   old or the new container, never a broken one; staged files are deleted only
   after the rename, so ``resume=True`` merges whatever an interrupted run left.

The cost is that every byte is written twice (staged, then merged; the second
read usually comes from the page cache) and that ``<fn>.h5`` is filled at the end
of ``compute()``, not while it runs. ``benchmarks/bench_stores.py`` measures it
next to the ``"hdf5"`` store. In exchange the file cannot be corrupted by a
worker, any executor works, and ``compute()`` returns ``[<out>/<fn>.h5]`` with
every finished result in it.

With ``result_shape`` the container holds a regular dataset ``result_0`` (an
``np.inf`` axis is resizable: the merge sets its extent to the longest result,
shorter results are padded with 0, the dataset's fill value). Each call's
result is checked against its slot on the worker, so a wrong shape fails that
call. Extra return values go to ``comp_<i>/result_<k>``. As in ACME, there is no
emergency pickling: a value HDF5 cannot hold fails its call (use the ``"hdf5"``
or ``"pickle"`` store for such values).

Slots of calls that never finished read back masked (:func:`acme_core.open_results`).

Staged files are written and merged with the helpers of :mod:`acme_storage.hdf5._h5`,
which the ``"hdf5"`` store uses too; this module imports nothing of that store.
"""

from __future__ import annotations

import json
import math
import os
import shutil
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from acme_core.errors import NoRunError, ResultTypeError, RunDirectoryError
from acme_core.fileio import atomic_path, fsync_path, is_partial, temporary_name
from acme_core.manifest import from_ranges, to_ranges
from acme_core.store import BaseStore, RunInfo
from acme_storage import _layout, _trust, stacking
from acme_storage._values import elements
from acme_storage.hdf5._h5 import (
    H5_FILTERS,
    H5Group,
    check_h5_options,
    check_h5_run,
    open_file,
    opens,
    read_call,
    read_extras,
    unstorable,
    write_results,
)

__all__ = ["H5_FILTERS", "WRITTEN_ATTR", "HDF5SingleStore", "HDF5SingleWriter", "read_written"]

#: container attribute listing (as JSON ``[first, last]`` ranges) the calls merged into it
WRITTEN_ATTR = "acme_written"


def read_written(h5f: H5Group) -> set[int]:
    """Task ids recorded as merged in an open container."""
    raw = h5f.attrs.get(WRITTEN_ATTR)
    if raw is None:
        return set()
    if isinstance(raw, bytes):
        raw = raw.decode()
    return set(from_ranges(json.loads(str(raw))))


class HDF5SingleWriter:
    """Worker side: stages one call's result as ``<staging>/<fn>_<i>.h5`` (atomic)."""

    def __init__(self, staging: str, container: str, func_name: str,
                 result_shape: tuple[float, ...] | None, stacking_dim: int | None,
                 result_dtype: str | None, locking: bool | None) -> None:
        self.staging = staging
        self.container = container
        self.func_name = func_name
        self.result_shape = result_shape
        self.stacking_dim = stacking_dim
        self.result_dtype = result_dtype
        self.locking = locking

    def write(self, task_id: int, value: Any) -> str:
        """Stage call ``task_id``'s value; return the container's path (its reference).

        Raises
        ------
        acme_core.errors.ResultTypeError
            HDF5 cannot hold the value (this store pickles nothing).
        acme_core.errors.ResultMismatchError
            With ``result_shape``: the value does not fit its slot.
        """
        final = _layout.call_file(Path(self.staging), self.func_name, task_id, ".h5")
        if self.result_shape is not None:
            assert self.stacking_dim is not None
            items = elements(value)
            dtype = np.dtype(self.result_dtype) if self.result_dtype else None
            # the shape check runs here, on the worker, so a bad result fails its call
            items[0] = stacking.check_slot_value(items[0], self.result_shape, self.stacking_dim,
                                                 dtype)
            value, collapse = items, False
        else:
            collapse = True
        try:
            with atomic_path(final) as tmp, open_file(tmp, "w", self.locking) as h5f:
                # compression happens at merge time (the container's datasets)
                write_results(h5f, value, collapse)
        except Exception as exc:
            if unstorable(exc):
                raise ResultTypeError(
                    f"the return value of call {task_id} cannot be stored in HDF5 ({exc}); the "
                    f"single-file store does not pickle such values: use store='hdf5' (which "
                    f"pickles them per call) or write_pickle=True", parameter="store") from exc
            raise
        return self.container


class HDF5SingleStore(BaseStore):
    """All results in one HDF5 file ``<out>/<fn>.h5`` (``single_file=True``).

    See the module docstring for how concurrent writers are kept apart.

    Parameters
    ----------
    compression : str or int, optional
        h5py compression filter for the container's array datasets (``"gzip"``,
        ``"lzf"``, ``"szip"`` or a registered filter number). The stacked
        ``result_0`` is then chunked one call per chunk.
    compression_opts : int, optional
        The filter's option (e.g. the gzip level 0-9).
    locking : bool, optional
        HDF5 file locking; ``False`` helps on shared file systems that do not
        support it (like ``HDF5_USE_FILE_LOCKING=FALSE``). None keeps HDF5's default.

    Raises
    ------
    acme_core.errors.ArgumentValueError
        An option is not one of the above (``parameter="store_options"``).
    """

    name: ClassVar[str] = "hdf5-single"
    #: optional dependency -> the pip extra that installs it
    requires: ClassVar[dict[str, str]] = {"h5py": "hdf5"}

    def __init__(self, compression: str | int | None = None, compression_opts: Any = None,
                 locking: bool | None = None) -> None:
        super().__init__()
        check_h5_options(compression, locking)
        self.compression = compression
        self.compression_opts = compression_opts
        self.locking = locking

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(compression={self.compression!r}, "
                f"locking={self.locking!r})")

    @classmethod
    def check_run(cls, run: RunInfo) -> None:
        """Refuse a ``result_dtype`` HDF5 cannot stack, or another run's files in ``output_dir``.

        Raises
        ------
        acme_core.errors.ArgumentValueError
            ``parameter="result_dtype"`` or ``"output_dir"``.
        """
        check_h5_run(run, cls.name, _layout.staging_dir(Path(), run.func_name).name, ())

    # -- paths ---------------------------------------------------------------
    @property
    def container_path(self) -> Path:
        """``<out>/<fn>.h5``."""
        assert self.run is not None
        return _layout.container(self.out, self.run.func_name)

    @property
    def staging(self) -> Path:
        """``<out>/<fn>_staging``."""
        assert self.run is not None
        return _layout.staging_dir(self.out, self.run.func_name)

    def _staged(self, task_id: int) -> Path:
        assert self.run is not None
        return _layout.call_file(self.staging, self.run.func_name, task_id, ".h5")

    def _open(self, path: Path, mode: str) -> H5Group:
        return open_file(path, mode, self.locking)

    def _filter(self) -> dict[str, Any]:
        if self.compression is None:
            return {}
        kwargs: dict[str, Any] = {"compression": self.compression}
        if self.compression_opts is not None:
            kwargs["compression_opts"] = self.compression_opts
        return kwargs

    # -- protocol ------------------------------------------------------------
    def prepare(self, run: RunInfo) -> None:
        """Create the staging directory and the empty container (both kept on resume)."""
        super().prepare(run)
        self.results_container = str(self.container_path)
        if run.resume:
            # keep staged calls of an interrupted run: finalize merges them
            os.makedirs(self.staging, exist_ok=True)
            if self.container_path.exists():
                return
        else:
            shutil.rmtree(self.staging, ignore_errors=True)  # an earlier run's leftovers
            os.makedirs(self.staging)
        with atomic_path(self.container_path) as tmp, self._open(tmp, "w") as h5f:
            h5f.attrs[WRITTEN_ATTR] = "[]"
            if run.result_shape is None:
                # ACME pre-creates every group; they fill at the merge
                for i in range(run.n_calls):
                    h5f.create_group(_layout.comp_name(i))
            else:
                self._create_stacked(h5f, run)

    def _create_stacked(self, h5f: H5Group, run: RunInfo) -> None:
        assert run.result_shape is not None and run.stacking_dim is not None
        shape, maxshape = stacking.initial_extent(run.result_shape)
        kwargs = self._filter()
        if None in maxshape or kwargs:
            # one call per chunk along the stacking axis (the slot), at most ~4 MiB
            chunks = list(shape)
            chunks[run.stacking_dim] = 1
            itemsize = np.dtype(run.result_dtype).itemsize
            inf = stacking.unlimited_axis(run.result_shape)
            if inf is not None:
                other = math.prod(c for k, c in enumerate(chunks) if k != inf) * itemsize
                chunks[inf] = max(1, min(2 ** 22 // max(other, 1), 2 ** 20))
            kwargs["chunks"] = tuple(max(1, c) for c in chunks)
        h5f.create_dataset("result_0", shape=shape, maxshape=maxshape, dtype=run.result_dtype,
                           fillvalue=0, **kwargs)

    def writer(self) -> HDF5SingleWriter:
        """The picklable writer the tasks use."""
        assert self.run is not None
        run = self.run
        return HDF5SingleWriter(str(self.staging), str(self.container_path), run.func_name,
                                run.result_shape, run.stacking_dim,
                                str(run.result_dtype) if run.result_dtype is not None else None,
                                self.locking)

    def existing(self) -> dict[int, Any]:
        """Task id -> container path of every call merged or staged."""
        assert self.run is not None
        found: set[int] = set()
        if self.container_path.exists():
            with self._open(self.container_path, "r") as h5f:
                found |= read_written(h5f)
        if self.staging.is_dir() and not self.staging.is_symlink():
            for entry in os.scandir(self.staging):
                if is_partial(entry.name) or entry.is_symlink():
                    continue
                i = _layout.task_id_of(entry.name, self.run.func_name, ".h5")
                if i is not None and opens(entry.path):  # a truncated file is no result
                    found.add(i)
        container = str(self.container_path)
        return {i: container for i in sorted(found) if i < self.run.n_calls}

    def finalize(self, references: list[Any], failed: set[int]) -> list[str]:
        """Merge every finished staged call into the container; return ``[container]``."""
        todo = [i for i, ref in enumerate(references)
                if ref is not None and i not in failed and self._staged(i).exists()]
        if todo:
            self._merge(todo)
        shutil.rmtree(self.staging, ignore_errors=True)
        self.results_container = str(self.container_path)
        return [self.results_container]

    # -- the merge (driver only) ----------------------------------------------
    def _merge(self, todo: list[int]) -> None:
        """Merge the staged calls ``todo`` into a copy of the container, then swap it in."""
        assert self.run is not None
        tmp = temporary_name(self.container_path)
        try:
            shutil.copyfile(self.container_path, tmp)
            with self._open(tmp, "a") as h5f:
                written = read_written(h5f)
                if self.run.result_shape is None:
                    for i in todo:
                        self._merge_group(h5f, i)
                else:
                    self._merge_stacked(h5f, todo)
                written.update(todo)
                h5f.attrs[WRITTEN_ATTR] = json.dumps(to_ranges(written))
            # the container replaces the one holding every earlier result: on the disk
            # first, so a crash after the rename cannot leave an empty or short one
            fsync_path(tmp)
            os.replace(tmp, self.container_path)
        except BaseException:
            if tmp.exists():
                tmp.unlink()
            raise

    def _merge_group(self, h5f: H5Group, i: int) -> None:
        with self._open(self._staged(i), "r") as src:
            self._replace_group(h5f, i, src, _layout.result_keys(src))

    def _replace_group(self, h5f: H5Group, i: int, src: H5Group, names: list[str]) -> None:
        """``comp_<i>`` holding exactly ``src``'s datasets ``names`` (a rerun call replaces
        its earlier result)."""
        group = h5f.require_group(_layout.comp_name(i))
        for name in list(group):
            del group[name]
        for name in names:
            self._copy(src[name], group, name)

    def _copy(self, dataset: H5Group, group: H5Group, name: str) -> None:
        """Copy one staged dataset into ``group``, compressed when asked (arrays only)."""
        kwargs = self._filter()
        if kwargs and dataset.shape and dataset.dtype.kind in "biufc":
            group.create_dataset(name, data=dataset[()], **kwargs)
        else:
            group.copy(dataset, name)  # H5Ocopy: native, keeps the dtype (strings too)

    def _merge_stacked(self, h5f: H5Group, todo: list[int]) -> None:
        run = self.run
        assert run is not None and run.result_shape is not None and run.stacking_dim is not None
        dset = h5f["result_0"]
        dim = run.stacking_dim
        inf = stacking.unlimited_axis(run.result_shape)
        # one process sizes the unlimited axis: it grows to the longest result merged
        # and never shrinks (ACME lets every writer resize it, and the last one wins);
        # it stays at ACME's initial 1 if every result is empty
        for i in todo:
            with self._open(self._staged(i), "r") as src:
                data = src["result_0"][()]
                if inf is not None:
                    length = data.shape[inf - (inf > dim)]
                    if length > dset.shape[inf]:
                        dset.resize(length, axis=inf)
                    # pad with the fill value so a shorter rerun leaves nothing stale
                    dset[stacking.slot(dim, dset.ndim, i)] = 0
                dset[stacking.slot_region(run.result_shape, dim, i, data.shape)] = data
                extras = _layout.result_keys(src, extras_only=True)
                if extras or _layout.comp_name(i) in h5f:
                    self._replace_group(h5f, i, src, extras)

    # -- reading ---------------------------------------------------------------
    @classmethod
    def read(cls, run_dir: Path, manifest: dict[str, Any]) -> Any:
        """Every merged call's value in task order; with ``result_shape`` the stacked array.

        Raises
        ------
        acme_core.errors.NoRunError
            ``run_dir`` has no container.
        """
        run = _trust.listed(run_dir, manifest)
        name = _layout.container(Path(), run.func_name).name
        container = _trust.inside(run_dir, name)
        if container is None:
            raise NoRunError(f"{run_dir} has no results container {name}")
        finished = run.finished
        with open_file(container, "r") as h5f:
            merged = read_written(h5f) if WRITTEN_ATTR in h5f.attrs else finished
            written = finished & merged
            if manifest.get("result_shape") is None:
                return [_read_group(h5f, i) if i in written else None
                        for i in range(run.n_calls)]
            data = h5f["result_0"][()]
            extras = [read_extras(h5f[_layout.comp_name(i)]) if _layout.comp_name(i) in h5f
                      else [] for i in sorted(written)]
        data = stacking.apply_mask(data, int(manifest["stacking_dim"]), int(manifest["n_calls"]),
                                   written)
        return stacking.with_extras(data, extras)


def _read_group(h5f: H5Group, i: int) -> Any:
    """Call ``i``'s value from ``comp_<i>``; None when the group is missing or empty.

    Only the container's own groups are read: a link (soft, or external to another
    file) planted in their place is refused, as a symbolic link would be.
    """
    link = h5f.get(_layout.comp_name(i), getlink=True)
    if link is not None and type(link).__name__ != "HardLink":
        raise RunDirectoryError(f"{h5f.filename}: {_layout.comp_name(i)} is a link, not the "
                                "container's own group")
    group = h5f.get(_layout.comp_name(i))
    return read_call(group) if group is not None and len(group) else None
