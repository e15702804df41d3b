"""The ``"hdf5"`` store: one HDF5 file per call plus an aggregate container (ACME's layout).

::

    <out>/<fn>.h5                      groups comp_<i> = relative ExternalLinks
    <out>/<fn>_payload/<fn>_<i>.h5     datasets result_0, result_1, ...

With ``result_shape`` the container holds a virtual dataset instead
(:mod:`acme_storage.hdf5.vds`).

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

from acme_core.fileio import atomic_path, fsync_path, is_partial, remove_partials
from acme_core.store import BaseStore, RunInfo
from acme_storage import _layout, _trust, stacking
from acme_storage._emergency import read_emergency, warn_pickled, write_emergency
from acme_storage._values import elements, named_results
from acme_storage.hdf5 import template as h5template
from acme_storage.hdf5 import vds
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

__all__ = ["HDF5Store", "HDF5Writer", "template_plan"]

log = logging.getLogger("acme")

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

    def write(self, task_id: int, value: Any) -> str:
        """Write call ``task_id``'s value; return the path of the file that holds it.

        Raises
        ------
        acme_core.errors.ResultMismatchError
            With ``result_shape``: the value does not fit its slot (shape, or values
            that change when cast to ``result_dtype``); nothing is written.
        """
        if self.slot is not None:
            shape, dim, dtype = self.slot
            items = elements(value)
            if np.asarray(items[0]).dtype != object:
                items[0] = stacking.check_slot_value(items[0], shape, dim, np.dtype(dtype))
                value = items
            # else: a value no array holds (a dict, None) goes to ACME's emergency pickle
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


class HDF5Store(BaseStore):
    """One HDF5 file per call and an aggregate container of relative ExternalLinks.

    Parameters
    ----------
    compression : str, optional
        h5py compression filter for array results (e.g. ``"gzip"``, ``"lzf"``).
    locking : bool, optional
        HDF5 file locking; ``False`` helps on shared file systems that do not
        support it (like ``HDF5_USE_FILE_LOCKING=FALSE``). None keeps HDF5's default.
    """

    name: ClassVar[str] = "hdf5"
    #: optional dependency -> the pip extra that installs it
    requires: ClassVar[dict[str, str]] = {"h5py": "hdf5"}
    #: fsync every call's file before its rename. Off: ``resume=True`` opens every
    #: file before it counts, so a file a node crash left empty or short only reruns
    #: its call, and the fsync would cost every call (``benchmarks/README.md``)
    fsync_calls: ClassVar[bool] = False

    def __init__(self, compression: str | None = None, locking: bool | None = None) -> None:
        super().__init__()
        check_h5_options(compression, locking)
        self.compression = compression
        self.locking = locking

    @classmethod
    def check_run(cls, run: RunInfo) -> None:
        """Refuse a ``result_dtype`` HDF5 cannot stack, or another run's files in ``output_dir``.

        Raises
        ------
        acme_core.errors.ArgumentValueError
            ``parameter="result_dtype"`` or ``"output_dir"``.
        """
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
        return HDF5Writer(str(self.payload), self.run.func_name,
                          collapse=self.run.result_shape is None,
                          compression=self.compression, locking=self.locking,
                          fsync=self.fsync_calls, slot=_slot(self.run))

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
        return found

    def finalize(self, references: list[Any], failed: set[int]) -> list[Any]:
        """Link extra returns (stacked runs); after emergency pickling, ACME's flat layout."""
        assert self.run is not None
        remove_partials(self.payload)
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
        if (manifest.get("result_shape") is not None
                and _trust.inside(run_dir, _layout.container(Path(), run.func_name).name)):
            return vds.read_stacked(run_dir, manifest)
        return [_read_one(run_dir, run.func_name, i, i in run.pickled)
                if i in run.finished else None for i in range(run.n_calls)]


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
