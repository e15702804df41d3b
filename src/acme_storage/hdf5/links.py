"""The ``"hdf5"`` store: one HDF5 file per call plus an aggregate container (ACME's layout).

::

    <out>/<fn>.h5                      groups comp_<i> = relative ExternalLinks
    <out>/<fn>_payload/<fn>_<i>.h5     datasets result_0, result_1, ...

With ``result_shape`` the container holds a virtual dataset instead
(:mod:`acme_storage.hdf5.vds`). With ``shard_calls`` the calls of each task share
one shard file ``<fn>_payload/<fn>_<t>.shard.h5`` instead
(:mod:`acme_storage.hdf5.shards`): as rows of one array per result, the container
a virtual dataset over them (``"rows"``, :mod:`acme_storage.hdf5.rows`; what
``"auto"`` chooses from :data:`SHARD_AUTO_CALLS` calls on), or as a group per call
linked ``comp_<i>`` by ``comp_<i>`` (``"groups"``). A stacked run in shards
(``result_shape`` without an ``np.inf`` axis) has the ``"rows"`` layout with the
block's ``result_0`` stacked as ``result_shape`` says, and the container's
``result_0`` is a virtual dataset of that shape over the shards
(:mod:`acme_storage.hdf5.stacked`).

Return values HDF5 cannot hold (dicts, objects, ``None``) are pickled instead,
per call, as ``<fn>_<i>.pickle`` holding ``[value]`` ("emergency pickling",
:mod:`acme_storage._emergency`); the run's files then move up into ``<out>`` and
the container is dropped, as in ACME.

Numeric results are written from a per-process template image that h5py made for
the first result of the same names, dtypes and shapes (:mod:`acme_storage.hdf5.template`):
one file creation and one ``writev`` per call instead of h5py's per-file setup.
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from acme_core.errors import ArgumentValueError
from acme_core.fileio import atomic_path, fsync_path, is_partial, remove_partials
from acme_core.store import BaseStore, RunInfo
from acme_storage import _layout, _trust, stacking
from acme_storage._emergency import read_emergency, warn_pickled, write_emergency
from acme_storage._task_buffers import TaskBuffers
from acme_storage._values import elements, named_results
from acme_storage.hdf5 import rows, shards, vds
from acme_storage.hdf5 import stacked as h5stacked
from acme_storage.hdf5 import template as h5template
from acme_storage.hdf5._h5 import (
    check_h5_options,
    check_h5_run,
    h5py,
    open_file,
    opens,
    read_call,
    unstorable,
    write_results,
)

__all__ = ["SHARD_AUTO_CALLS", "HDF5ShardWriter", "HDF5Store", "HDF5Writer", "template_plan"]

log = logging.getLogger("acme")

#: ``shard_calls="auto"`` shards runs of at least this many calls (``benchmarks/README.md``)
SHARD_AUTO_CALLS = 10_000

#: this process's file templates (see :mod:`acme_storage.hdf5.template`)
_TEMPLATES = h5template.Templates()


def template_plan(value: Any, collapse: bool) -> tuple[list[str], list[np.ndarray[Any, Any]]] | None:
    """The datasets :func:`~acme_storage.hdf5._h5.write_results` would create, if all can
    come from a template.

    None when any of them needs h5py itself (text, objects, other dtypes); see
    :mod:`acme_storage.hdf5.template`.
    """
    planned = named_results(value, collapse)
    if any(p.is_text for p in planned):
        return None
    arrays = [p.data if isinstance(p.data, np.ndarray) else np.asarray(p.data) for p in planned]
    if not all(h5template.fits(a) for a in arrays):
        return None
    # (not np.ascontiguousarray: it turns a 0-d array into a 1-d one)
    arrays = [a if a.flags.c_contiguous else a.copy(order="C") for a in arrays]
    return [p.name for p in planned], arrays


class HDF5Writer:
    """Worker side: writes ``<payload>/<fn>_<i>.h5`` atomically, or the emergency pickle."""

    def __init__(self, payload: str, func_name: str, collapse: bool, compression: str | None,
                 locking: bool | None, fsync: bool = False,
                 slot: tuple[tuple[float, ...], int, str] | None = None) -> None:
        self.payload = payload
        #: with ``result_shape``: (shape, stacking axis, dtype) that every call's
        #: first value is checked against (and cast to) before anything is written
        self.slot = slot
        self.func_name = func_name
        self.collapse = collapse
        self.compression = compression
        self.locking = locking
        #: flush each file to the disk before its rename (:attr:`HDF5Store.fsync_calls`)
        self.fsync = fsync

    def checked(self, value: Any) -> Any:
        """``value`` with its first element checked against its slot and cast to
        ``result_dtype`` (a stacked run); as it is without ``result_shape``.

        Raises
        ------
        acme_core.errors.ResultMismatchError
            The first element does not fit its slot (:func:`~acme_storage.stacking.check_slot_value`).
        acme_core.errors.ResultTypeError
            The first element is not numeric.
        """
        if self.slot is None:
            return value
        shape, dim, dtype = self.slot
        items = elements(value)
        if np.asarray(items[0]).dtype == object:
            return value  # a value no array holds (a dict, None): ACME's emergency pickle
        items[0] = stacking.check_slot_value(items[0], shape, dim, np.dtype(dtype))
        return items

    def write(self, task_id: int, value: Any) -> str:
        """Write call ``task_id``'s value; return the path of the file that holds it.

        Raises
        ------
        acme_core.errors.ResultMismatchError
            With ``result_shape``: the value does not fit its slot (shape, or values
            that change when cast to ``result_dtype``); nothing is written.
        """
        value = self.checked(value)
        final = os.path.join(self.payload, _layout.call_name(self.func_name, task_id, ".h5"))
        emergency = os.path.join(self.payload,
                                 _layout.call_name(self.func_name, task_id, ".pickle"))
        planned = template_plan(value, self.collapse) if self.compression is None else None
        if planned is None or not _TEMPLATES.write(h5py(), final, *planned, fsync=self.fsync):
            try:
                with atomic_path(final) as tmp:
                    with open_file(tmp, "w", self.locking) as h5f:
                        write_results(h5f, value, self.collapse, self.compression)
                    if self.fsync:
                        fsync_path(tmp)
            except Exception as exc:
                if not unstorable(exc):
                    raise
                warn_pickled(final, exc, "HDF5")
                write_emergency(emergency, value)
                return emergency
        if os.path.exists(emergency):  # an earlier attempt of this call was pickled
            os.unlink(emergency)
        return final


class HDF5ShardWriter(HDF5Writer):
    """Worker side of a sharded run: a task's calls go into one shard file (:mod:`.shards`).

    Values a shard cannot hold take :class:`HDF5Writer`'s per-call path. A stacked
    run's first value is checked against its slot (and cast) before it is buffered,
    and the block stacks it along ``result_shape``'s axis (:mod:`.stacked`). Outside
    a task (``debug=True``), each call is written at once as a shard of its own.
    """

    def __init__(self, *args: Any, shard_bytes: int = shards.SHARD_BYTES, rows: bool = False,
                 **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.shard_bytes = shard_bytes
        #: the ``"rows"`` layout (else ``"groups"``)
        self.rows = rows
        #: a stacked run's block stacks ``result_0`` along ``result_shape``'s axis
        self.stacking_dim = None if self.slot is None else self.slot[1]
        # the buffers of the tasks running in this process (see acme_storage._task_buffers)
        self._tasks: TaskBuffers[shards.ShardBuffer] = TaskBuffers()

    def _shard_path(self, first: int) -> str:
        return os.path.join(self.payload, shards.shard_name(self.func_name, first))

    def begin_chunk(self, task_ids: list[int]) -> None:
        """Start buffering the calls ``task_ids`` of one task."""
        self._tasks.begin(task_ids, shards.ShardBuffer())

    def end_chunk(self) -> None:
        """Write the task's shard (complete or absent)."""
        buffer = self._tasks.end()
        if buffer is not None:
            with buffer.lock:
                self._flush(buffer)

    def _flush(self, buffer: shards.ShardBuffer) -> None:
        path, calls = buffer.take()
        if path is not None and calls:
            shards.write_shard(path, calls, self.compression, self.locking, self.fsync,
                               rows=self.rows, stacking_dim=self.stacking_dim)

    def write(self, task_id: int, value: Any) -> str:
        """Buffer call ``task_id``'s value for its task's shard; return the shard's path."""
        # a stacked run's slot is checked here, so a value that does not fit fails its
        # call before anything of it is buffered, and the task's other calls go on
        value = self.checked(value)
        datasets = shards.buffered(value, self.collapse)
        if datasets is None:
            return super().write(task_id, value)
        buffer = self._tasks.of(task_id)
        if buffer is None:  # outside a task: a shard of its own, now
            path = self._shard_path(task_id)
            shards.write_shard(path, [(task_id, datasets)], self.compression, self.locking,
                               self.fsync, rows=self.rows, stacking_dim=self.stacking_dim)
            return path
        with buffer.lock:
            reference = buffer.add(self._shard_path, task_id, datasets)
            if buffer.nbytes >= self.shard_bytes:  # bounded memory: the next shard begins
                self._flush(buffer)
        return reference


class HDF5Store(BaseStore):
    """One HDF5 file per call and an aggregate container of relative ExternalLinks.

    Parameters
    ----------
    compression : str, optional
        h5py compression filter for array results (e.g. ``"gzip"``, ``"lzf"``).
    locking : bool, optional
        HDF5 file locking; ``False`` helps on shared file systems that do not
        support it (like ``HDF5_USE_FILE_LOCKING=FALSE``). None keeps HDF5's default.
    shard_calls : {"auto", "rows", "groups", True, False}, optional
        Write the calls of each task into one shard file
        (``<fn>_payload/<fn>_<t>.shard.h5``, :mod:`acme_storage.hdf5.shards`) instead of
        a file per call (``False``, ACME's layout). ``"rows"`` (or ``True``): a shard
        holds its calls as rows of one array per result, and the container a virtual
        dataset ``result_<k>`` over every call (:mod:`acme_storage.hdf5.rows`; the
        fast layout); ``comp_<i>`` only for calls that do not fit a row. ``"groups"``:
        a group ``comp_<i>`` per call in the shard, linked from the container as with
        a file per call. ``"auto"`` (default): ``"rows"`` for runs of at least
        :data:`SHARD_AUTO_CALLS` calls, else ``False``. With ``result_shape`` the
        shards' blocks are stacked as ``result_shape`` says and the container's
        ``result_0`` has that shape (:mod:`acme_storage.hdf5.stacked`); ``"groups"``
        is refused then, and so is ``"rows"``/``True`` with an ``np.inf`` axis,
        which ``"auto"`` writes per call.
    """

    name: ClassVar[str] = "hdf5"
    #: optional dependency -> the pip extra that installs it
    requires: ClassVar[dict[str, str]] = {"h5py": "hdf5"}
    #: fsync every call's file before its rename. Off: ``resume=True`` opens every
    #: file before it counts, so a file a node crash left empty or short only reruns
    #: its call, and the fsync would cost every call (``benchmarks/README.md``)
    fsync_calls: ClassVar[bool] = False

    def __init__(self, compression: str | None = None, locking: bool | None = None,
                 shard_calls: bool | str = "auto") -> None:
        super().__init__()
        check_h5_options(compression, locking)
        _check_shard_calls(shard_calls)
        self.compression = compression
        self.locking = locking
        self.shard_calls = shard_calls
        #: this run's shard layout, ``"rows"``, ``"groups"`` or None (decided by :meth:`prepare`)
        self.layout: str | None = None

    @property
    def sharded(self) -> bool:
        """Whether this run writes shards (decided by :meth:`prepare`)."""
        return self.layout is not None

    def check_run(self, run: RunInfo) -> None:
        """Refuse a ``result_dtype`` HDF5 cannot stack, ``shard_calls="groups"`` with
        ``result_shape`` (or ``"rows"``/``True`` with an ``np.inf`` axis), or another
        run's files in ``output_dir``.

        Raises
        ------
        acme_core.errors.ArgumentValueError
            ``parameter="result_dtype"``, ``"store_options"`` or ``"output_dir"``.
        """
        cls = type(self)
        _check_shard_calls(self.shard_calls)
        if self.shard_calls not in (False, "auto") and run.result_shape is not None:
            why = ("with `result_shape`: stacked results are rows of a block ('rows')"
                   if self.shard_calls == "groups" else
                   "with an `np.inf` axis in `result_shape`: such results are written per call"
                   if stacking.unlimited_axis(run.result_shape) is not None else None)
            if why is not None:
                raise ArgumentValueError(f"`store_options['shard_calls']={self.shard_calls!r}` "
                                         f"is not available {why}", parameter="store_options")
        check_h5_run(run, cls.name, _layout.payload_dir(Path(), run.func_name).name,
                     (".h5", ".pickle"))

    # -- paths ---------------------------------------------------------------
    @property
    def payload(self) -> Path:
        """``<out>/<fn>_payload``."""
        assert self.run is not None
        return _layout.payload_dir(self.out, self.run.func_name)

    @property
    def container_path(self) -> Path:
        """``<out>/<fn>.h5``."""
        assert self.run is not None
        return _layout.container(self.out, self.run.func_name)

    # -- protocol ------------------------------------------------------------
    def prepare(self, run: RunInfo) -> None:
        """Create the payload directory and the container (kept as it is on resume)."""
        super().prepare(run)
        os.makedirs(self.payload, exist_ok=True)
        self.layout = _layout_of(self.shard_calls, run)
        if self.sharded:  # the container links the shards once they exist (finalize)
            return
        if run.resume and self.container_path.exists():
            return
        if run.result_shape is not None:
            vds.write_virtual_container(self.container_path, self.payload, run, self.locking)
            return
        self._write_links(run)
        self.results_container = str(self.container_path)

    def _write_links(self, run: RunInfo) -> None:
        """The container of ExternalLinks ``comp_<i>`` -> ``<fn>_payload/<fn>_<i>.h5:/``."""
        h5 = h5py()
        with atomic_path(self.container_path) as tmp, open_file(tmp, "w", self.locking) as h5f:
            # h5py's low-level call, as `h5f[name] = ExternalLink(...)` makes it, without
            # the high-level checks per link (2.5x faster for 10,000 calls)
            lcpl = h5.h5p.create(h5.h5p.LINK_CREATE)
            lcpl.set_char_encoding(h5.h5t.CSET_UTF8)
            create = h5f.id.links.create_external
            rel, fn = self.payload.name, run.func_name
            for i in range(run.n_calls):
                target = f"{rel}/{_layout.call_name(fn, i, '.h5')}"
                create(_layout.comp_name(i).encode(), target.encode(), b"/", lcpl=lcpl)

    def writer(self) -> HDF5Writer:
        """The picklable writer the tasks use."""
        assert self.run is not None
        cls = HDF5ShardWriter if self.sharded else HDF5Writer
        kwargs: dict[str, Any] = {"rows": self.layout == "rows"} if self.sharded else {}
        return cls(str(self.payload), self.run.func_name,
                   collapse=self.run.result_shape is None,
                   compression=self.compression, locking=self.locking,
                   fsync=self.fsync_calls, slot=_slot(self.run), **kwargs)

    def existing(self) -> dict[int, Any]:
        """Task id -> path of every call's complete file (HDF5 that opens, or a whole pickle)."""
        assert self.run is not None
        found: dict[int, Any] = {}
        fn = self.run.func_name
        for directory in (self.payload, self.out):
            if not directory.is_dir() or directory.is_symlink():
                continue
            for entry in os.scandir(directory):
                if is_partial(entry.name) or entry.is_symlink():
                    continue
                i = _layout.task_id_of(entry.name, fn, ".h5")
                if i is not None and i < self.run.n_calls and opens(entry.path):
                    found[i] = entry.path
                i = _layout.task_id_of(entry.name, fn, ".pickle")
                if i is not None and i < self.run.n_calls and _trust.whole_pickle(entry.path):
                    found[i] = entry.path
        if self.sharded:  # a call's own file wins over a copy in a shard
            index = shards.ShardIndex(self.out, fn, self.run.n_calls)
            for i in index.where.keys() - found.keys():
                found[i] = str(index.path(i))
        return found

    def finalize(self, references: list[Any], failed: set[int]) -> list[Any]:
        """Link extra returns (stacked runs); after emergency pickling, ACME's flat layout."""
        assert self.run is not None
        remove_partials(self.payload)
        if self.layout == "rows":
            rows.write_rows_container(self.container_path, self.payload, references, self.locking,
                                      _stacked_of(self.run))
            self.results_container = str(self.container_path)
            return list(references)
        if self.sharded:
            shards.write_container(self.container_path, self.payload, references, self.locking)
            self.results_container = str(self.container_path)
            return list(references)
        self.results_container = str(self.container_path) if self.container_path.exists() else None
        if self.run.result_shape is not None and references and not failed:
            vds.link_extra_returns(self.container_path, self.payload, self.run, self.locking)
        if not any(isinstance(r, str) and r.endswith(".pickle") for r in references):
            return list(references)
        return self._flatten(references)

    def _flatten(self, references: list[Any]) -> list[Any]:
        """Emergency pickling happened: ACME moves every call's file up into ``<out>``
        and drops the container, whose links would point at missing files."""
        log.warning("Some compute runs could not be saved as HDF5, collection container %s has "
                    "been removed as it would comprise invalid file-links", self.container_path)
        moved: list[Any] = []
        for ref in references:
            if ref is None:
                moved.append(None)
                continue
            target = self.out / Path(ref).name
            os.replace(ref, target)
            moved.append(str(target))
        if self.container_path.exists():
            self.container_path.unlink()
        shutil.rmtree(self.payload, ignore_errors=True)
        self.results_container = None
        return moved

    @classmethod
    def read(cls, run_dir: Path, manifest: dict[str, Any]) -> Any:
        """Every finished call's value in task order; with ``result_shape`` the stacked array.

        Only calls the manifest lists as finished are read, and only those it lists
        as pickled are unpickled; a stacked run whose container emergency pickling
        dropped reads back per call.
        """
        run = _trust.listed(run_dir, manifest)
        index = shards.ShardIndex(run_dir, run.func_name, run.n_calls)
        own = _own_files(run_dir, run.func_name, run.n_calls) if index.where else None
        if manifest.get("result_shape") is not None:
            if own is None:  # a file per call; without the container (pickles): per call
                if _trust.inside(run_dir, _layout.container(Path(), run.func_name).name):
                    return vds.read_stacked(run_dir, manifest)
            elif not run.pickled:  # sharded; a pickled value fits no slot: per call
                stacked = h5stacked.read_stacked(
                    index, manifest, run.finished, own,
                    lambda i: _read_one(run_dir, run.func_name, i, False))
                if stacked is not None:
                    return stacked
        if (index.rows and own is not None and not own & run.finished
                and manifest.get("result_shape") is None):
            stacked = rows.read_stacked(index, run.finished, run.n_calls)
            if stacked is not None:
                return stacked
        in_shards = index.read(sorted(i for i in run.finished
                                      if own is None or i not in own)) if index.where else {}
        return [in_shards[i] if i in in_shards
                else _read_one(run_dir, run.func_name, i, i in run.pickled)
                if i in run.finished else None for i in range(run.n_calls)]


#: the values of ``store_options["shard_calls"]``
SHARD_CALLS = (False, True, "rows", "groups", "auto")


def _check_shard_calls(value: Any) -> None:
    """Refuse a ``shard_calls`` that is not one of :data:`SHARD_CALLS` (1 is not True)."""
    if not (isinstance(value, bool) or (isinstance(value, str) and value in SHARD_CALLS)):
        raise ArgumentValueError(f"`store_options['shard_calls']` has to be one of "
                                 f"{', '.join(map(repr, SHARD_CALLS))}, not {value!r}",
                                 parameter="store_options")


def _layout_of(shard_calls: bool | str, run: RunInfo) -> str | None:
    """The shard layout of ``run``: ``"rows"``, ``"groups"`` or None (a file per call).

    A stacked run is sharded as ``"rows"`` (its block stacked as ``result_shape``,
    :mod:`.stacked`) unless it has an ``np.inf`` axis (``check_run`` refuses an
    explicit request for that).
    """
    if shard_calls is False or (run.result_shape is not None
                                and stacking.unlimited_axis(run.result_shape) is not None):
        return None
    if shard_calls == "auto":
        return "rows" if run.n_calls >= SHARD_AUTO_CALLS else None
    return "groups" if shard_calls == "groups" else "rows"


def _stacked_of(run: RunInfo | None) -> h5stacked.Stacked | None:
    """A stacked run's finite ``result_shape``, stacking axis and dtype for its container."""
    if run is None or run.result_shape is None:
        return None
    assert run.stacking_dim is not None and run.result_dtype is not None
    return tuple(int(s) for s in run.result_shape), run.stacking_dim, np.dtype(run.result_dtype)


def _slot(run: RunInfo) -> tuple[tuple[float, ...], int, str] | None:
    """What a stacked run's writer checks each call's first value against."""
    if run.result_shape is None:
        return None
    assert run.stacking_dim is not None and run.result_dtype is not None
    return run.result_shape, run.stacking_dim, str(run.result_dtype)


def _read_one(run_dir: Path, fn: str, i: int, pickled: bool) -> Any:
    """Call ``i``'s value from its payload file or pickle (in either directory); None if absent."""
    payload = _layout.payload_dir(Path(), fn).name
    for where in ((payload,), ()):
        h5 = _trust.inside(run_dir, *where, _layout.call_name(fn, i, ".h5"))
        if h5 is not None:
            with open_file(h5, "r") as h5f:
                return read_call(h5f)
        pkl = _trust.inside(run_dir, *where, _layout.call_name(fn, i, ".pickle"))
        if pkl is not None and pickled:
            return read_emergency(pkl)
    return None


def _own_files(run_dir: Path, fn: str, n_calls: int) -> set[int]:
    """The calls with a file of their own (``.h5`` or ``.pickle``) next to the shards."""
    own: set[int] = set()
    for directory in (_layout.payload_dir(run_dir, fn), run_dir):
        if not directory.is_dir() or directory.is_symlink():
            continue
        for entry in os.scandir(directory):
            for suffix in (".h5", ".pickle"):
                i = _layout.task_id_of(entry.name, fn, suffix)
                if i is not None and i < n_calls:
                    own.add(i)
    return own
