"""The ``"hdf5"`` store: one HDF5 file per call plus an aggregate container (ACME's layout).

::

    <out>/<fn>.h5                      groups comp_<i> = relative ExternalLinks
    <out>/<fn>_payload/<fn>_<i>.h5     datasets result_0, result_1, ...

Return values HDF5 cannot hold (dicts, objects, ``None``) are pickled instead,
per call, as ``<fn>_<i>.pickle`` holding ``[value]`` ("emergency pickling"); the
run's files then move up into ``<out>`` and the container is dropped, as in ACME.

Numeric results are written from a per-process template image that h5py made for
the first result of the same names, dtypes and shapes (:mod:`acme_storage.hdf5_template`):
one file creation and one ``writev`` per call instead of h5py's per-file setup.
"""

from __future__ import annotations

import logging
import numbers
import os
import shutil
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from acme_core.errors import require
from acme_core.fileio import atomic_path, is_partial, remove_partials
from acme_core.store import BaseStore, RunInfo
from acme_storage import hdf5_template, naming
from acme_storage.pickled import read_emergency, write_emergency
from acme_storage.stacking import elements

log = logging.getLogger("acme")

# h5py's messages for values without an HDF5 equivalent (ACME's trigger texts)
_UNSTORABLE = ("has no native HDF5 equivalent", "One of data, shape or dtype must be specified",
               "Object dtype", "No conversion path")


_H5PY: Any = None


def _h5py() -> Any:
    """h5py, imported once per process (a writer asks for it on every call)."""
    global _H5PY
    if _H5PY is None:
        _H5PY = require("h5py", "hdf5", "The HDF5 stores")
    return _H5PY


def file_locking_kwargs(locking: bool | None) -> dict[str, Any]:
    """``h5py.File`` keywords for HDF5 file locking (None: HDF5's default)."""
    return {} if locking is None else {"locking": locking}


def write_elements(group: Any, value: Any, collapse: bool, compression: str | None = None) -> None:
    """Write a call's return value into ``group`` as ``result_0``, ``result_1``, ...

    With ``collapse`` (ACME's rule without ``result_shape``), a value whose
    elements are all numbers becomes one dataset ``result_0``; all strings become
    one string dataset.
    """
    h5py = _h5py()
    items = elements(value)
    if collapses_to_numbers(items, collapse):
        group.create_dataset("result_0", data=np.asarray(items))
        return
    if collapse and items and all(isinstance(v, str) for v in items):
        group.create_dataset("result_0", data=items, dtype=h5py.string_dtype())
        return
    for k, item in enumerate(items):
        if isinstance(item, str):
            group.create_dataset(f"result_{k}", data=item, dtype=h5py.string_dtype())
            continue
        data = np.asarray(item) if not isinstance(item, np.ndarray) else item
        if data.dtype == object:
            # raise h5py's own error text so the emergency-pickle trigger sees it
            raise TypeError(f"Object dtype {data.dtype!r} has no native HDF5 equivalent")
        kwargs = {"compression": compression} if compression and data.ndim > 0 else {}
        group.create_dataset(f"result_{k}", data=data, **kwargs)


def collapses_to_numbers(items: list[Any], collapse: bool) -> bool:
    """ACME's rule: with ``collapse``, elements that are all numbers form one dataset."""
    return collapse and bool(items) and all(
        isinstance(v, numbers.Number) and not isinstance(v, bool) for v in items)


def template_plan(value: Any, collapse: bool) -> tuple[list[str], list[np.ndarray]] | None:
    """The datasets :func:`write_elements` would create, if all can come from a template.

    None when any of them needs h5py itself (strings, objects, other dtypes); see
    :mod:`acme_storage.hdf5_template`.
    """
    items = elements(value)
    if collapses_to_numbers(items, collapse):
        arrays = [np.asarray(items)]
    elif any(isinstance(item, (str, bytes)) for item in items):
        return None
    else:
        arrays = [item if isinstance(item, np.ndarray) else np.asarray(item) for item in items]
    if not all(hdf5_template.fits(a) for a in arrays):
        return None
    # (not np.ascontiguousarray: it turns a 0-d array into a 1-d one)
    arrays = [a if a.flags.c_contiguous else a.copy(order="C") for a in arrays]
    return [f"result_{k}" for k in range(len(arrays))], arrays


def unstorable(exc: BaseException) -> bool:
    return isinstance(exc, (TypeError, ValueError)) and any(t in str(exc) for t in _UNSTORABLE)


class HDF5Writer:
    """Writes ``<payload>/<fn>_<i>.h5`` atomically, or the emergency pickle."""

    def __init__(self, payload: str, func_name: str, collapse: bool, compression: str | None,
                 locking: bool | None) -> None:
        self.payload = payload
        self.func_name = func_name
        self.collapse = collapse
        self.compression = compression
        self.locking = locking

    def write(self, task_id: int, value: Any) -> str:
        h5py = _h5py()
        final = os.path.join(self.payload, naming.call_name(self.func_name, task_id, ".h5"))
        emergency = os.path.join(self.payload,
                                 naming.call_name(self.func_name, task_id, ".pickle"))
        planned = template_plan(value, self.collapse) if self.compression is None else None
        if planned is None or not _TEMPLATES.write(h5py, final, *planned):
            try:
                with atomic_path(final) as tmp:
                    with h5py.File(tmp, "w", **file_locking_kwargs(self.locking)) as h5f:
                        write_elements(h5f, value, self.collapse, self.compression)
            except Exception as exc:
                if not unstorable(exc):
                    raise
                log.warning(
                    "Could not write %s results have been pickled instead. Return values are "
                    "most likely not suitable for storage in HDF5 containers. Original error "
                    "message: %s", final, exc)
                write_emergency(emergency, value)
                return emergency
        if os.path.exists(emergency):  # an earlier attempt of this call was pickled
            os.unlink(emergency)
        return final


#: this process's file templates (see :mod:`acme_storage.hdf5_template`)
_TEMPLATES = hdf5_template.Templates()


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

    def __init__(self, compression: str | None = None, locking: bool | None = None) -> None:
        super().__init__()
        self.compression = compression
        self.locking = locking

    # -- paths ---------------------------------------------------------------
    @property
    def payload(self) -> Path:
        assert self.run is not None
        return naming.payload_dir(self.out, self.run.func_name)

    @property
    def container_path(self) -> Path:
        assert self.run is not None
        return naming.container(self.out, self.run.func_name)

    # -- protocol ------------------------------------------------------------
    def prepare(self, run: RunInfo) -> None:
        super().prepare(run)
        os.makedirs(self.payload, exist_ok=True)
        if run.resume and self.container_path.exists():
            return
        self._write_container()

    def _write_container(self) -> None:
        h5py = _h5py()
        assert self.run is not None
        if self.run.result_shape is not None:
            from acme_storage.stacking import write_virtual_container

            write_virtual_container(self.container_path, self.payload, self.run, self.locking)
            return
        with atomic_path(self.container_path) as tmp:
            with h5py.File(tmp, "w", **file_locking_kwargs(self.locking)) as h5f:
                # h5py's low-level call, as `h5f[name] = ExternalLink(...)` makes it, without
                # the high-level checks per link (2.5x faster for 10,000 calls)
                lcpl = h5py.h5p.create(h5py.h5p.LINK_CREATE)
                lcpl.set_char_encoding(h5py.h5t.CSET_UTF8)
                create = h5f.id.links.create_external
                rel, fn = self.payload.name, self.run.func_name
                for i in range(self.run.n_calls):
                    target = f"{rel}/{naming.call_name(fn, i, '.h5')}"
                    create(f"comp_{i}".encode(), target.encode(), b"/", lcpl=lcpl)
        self.results_container = str(self.container_path)

    def writer(self) -> HDF5Writer:
        assert self.run is not None
        return HDF5Writer(str(self.payload), self.run.func_name,
                          collapse=self.run.result_shape is None,
                          compression=self.compression, locking=self.locking)

    def existing(self) -> dict[int, Any]:
        assert self.run is not None
        found: dict[int, Any] = {}
        for directory in (self.payload, self.out):
            if not directory.is_dir():
                continue
            for entry in os.scandir(directory):
                if is_partial(entry.name):
                    continue
                for suffix in (".h5", ".pickle"):
                    i = naming.task_id_of(entry.name, self.run.func_name, suffix)
                    if i is not None and i < self.run.n_calls:
                        found[i] = entry.path
        return found

    def finalize(self, references: list[Any], failed: set[int]) -> list[Any]:
        assert self.run is not None
        remove_partials(self.payload)
        self.results_container = str(self.container_path) if self.container_path.exists() else None
        if self.run.result_shape is not None and references and not failed:
            from acme_storage.stacking import link_extra_returns

            link_extra_returns(self.container_path, self.payload, self.run, self.locking)
        if not any(isinstance(r, str) and r.endswith(".pickle") for r in references):
            return [r if r is not None else None for r in references]
        # Emergency pickling happened: ACME moves every call's file up into <out>
        # and drops the container, whose links would point at missing files.
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
        h5py = _h5py()
        fn = manifest["func_name"]
        n = int(manifest["n_calls"])
        if manifest.get("result_shape") is not None:
            from acme_storage.stacking import read_stacked

            return read_stacked(run_dir, manifest)
        out: list[Any] = []
        payload = naming.payload_dir(run_dir, fn)
        for i in range(n):
            for directory in (payload, run_dir):
                h5 = naming.call_file(directory, fn, i, ".h5")
                pkl = naming.call_file(directory, fn, i, ".pickle")
                if h5.exists():
                    with h5py.File(h5, "r") as h5f:
                        out.append(read_group(h5f))
                    break
                if pkl.exists():
                    out.append(read_emergency(pkl))
                    break
            else:
                out.append(None)
        return out


def read_group(group: Any) -> Any:
    """A call's datasets as one array (a single ``result_0``) or a tuple in result order."""
    names = sorted((k for k in group if k.startswith("result_")), key=naming.natural_key)
    values = [_decode(group[k][()]) for k in names]
    return values[0] if len(values) == 1 else tuple(values)


def _decode(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, np.ndarray) and value.dtype == object:
        return np.array([v.decode() if isinstance(v, bytes) else v for v in value.ravel()],
                        dtype=object).reshape(value.shape)
    return value
