"""The h5py seam of the HDF5 stores: the lazy import, file options, a call's group.

h5py has no type information, so everything the HDF5 stores ask of it goes
through here, typed as :data:`H5Group` (an h5py ``File`` or ``Group``) and
``Any``. Private to :mod:`acme_storage.hdf5`: the ``"hdf5"`` and ``"hdf5-single"``
stores write and read a call's datasets the same way, so the way lives here
once and neither store imports the other.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, TypeAlias

import numpy as np

from acme_core.errors import ArgumentValueError, require
from acme_core.store import RunInfo
from acme_storage import _layout, _trust, stacking
from acme_storage._values import decoded, named_results

__all__ = [
    "check_h5_run",
    "H5Group",
    "H5_DTYPE_LIMITS",
    "H5_FILTERS",
    "H5_KINDS",
    "check_h5_options",
    "h5py",
    "locking_kwargs",
    "open_file",
    "opens",
    "read_call",
    "read_dataset",
    "read_extras",
    "unstorable",
    "write_results",
]

#: an open ``h5py.File`` or ``h5py.Group`` (h5py is untyped)
H5Group: TypeAlias = Any

# h5py's messages for values without an HDF5 equivalent (ACME's trigger texts)
_UNSTORABLE = ("has no native HDF5 equivalent", "One of data, shape or dtype must be specified",
               "Object dtype", "No conversion path",
               # a str holding "\x00": HDF5's strings end at the first NUL
               "do not support embedded NULLs")

_H5PY: Any = None


def h5py() -> Any:
    """The h5py module, imported once per process (a writer asks for it on every call).

    Raises
    ------
    acme_core.errors.MissingDependencyError
        h5py is not installed (the message names the pip command).
    """
    global _H5PY
    if _H5PY is None:
        _H5PY = require("h5py", "hdf5", "The HDF5 stores")
    return _H5PY


#: h5py's named compression filters
H5_FILTERS = ("gzip", "lzf", "szip")
#: the dtype kinds a stacked HDF5 result may have (complex numbers are compound types in
#: HDF5, which the stores' fill value 0 and virtual datasets do not convert to)
H5_KINDS = "biuf"
#: the largest item size per kind (no ``float128``: HDF5 has no portable equivalent)
H5_DTYPE_LIMITS = {"f": 8}


def check_h5_run(run: RunInfo, store_name: str, kept_dir: str, suffixes: tuple[str, ...]) -> None:
    """A ``check_run`` of the HDF5 stores: a ``result_dtype`` HDF5 can stack, and no
    other run's files in ``output_dir`` (a fresh run; ``kept_dir`` is the store's own
    directory in it, ``suffixes`` those of its per-call files).

    Raises
    ------
    acme_core.errors.ArgumentValueError
        ``parameter="result_dtype"`` or ``"output_dir"``.
    """
    stacking.check_result_dtype(run, store_name, H5_KINDS, H5_DTYPE_LIMITS)
    if not run.resume:
        fn = run.func_name
        _trust.refuse_leftovers(run.output_dir, [_layout.container(Path(), fn).name, kept_dir],
                                fn, suffixes)


def check_h5_options(compression: str | int | None, locking: bool | None) -> None:
    """Refuse bad options before any run directory exists (h5py would only complain later)."""
    if compression is not None and compression not in H5_FILTERS and (
            isinstance(compression, bool) or not isinstance(compression, int)):
        raise ArgumentValueError(f"`compression` has to be one of {', '.join(H5_FILTERS)}, an "
                                 f"HDF5 filter number, or None, not {compression!r}",
                                 parameter="store_options")
    if locking is not None and not isinstance(locking, bool):
        raise ArgumentValueError(f"`locking` has to be True, False or None, not {locking!r}",
                                 parameter="store_options")



def locking_kwargs(locking: bool | None) -> dict[str, Any]:
    """``h5py.File`` keywords for HDF5 file locking (None: HDF5's default)."""
    return {} if locking is None else {"locking": locking}


def open_file(path: str | os.PathLike[str], mode: str, locking: bool | None = None,
              **kwargs: Any) -> H5Group:
    """``h5py.File(path, mode)`` with the store's locking option."""
    return h5py().File(path, mode, **locking_kwargs(locking), **kwargs)


def opens(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is a complete HDF5 file: h5py opens it and lists its root.

    An empty or truncated file (what a node crash can leave of a file that was
    renamed into place before it reached the disk) does not open.
    """
    try:
        with open_file(path, "r") as h5f:
            list(h5f)
    except (OSError, ValueError, KeyError, RuntimeError):
        return False
    return True


def unstorable(exc: BaseException) -> bool:
    """Whether h5py raised ``exc`` because HDF5 cannot hold the value (ACME's trigger)."""
    return isinstance(exc, (TypeError, ValueError)) and any(t in str(exc) for t in _UNSTORABLE)


def write_results(group: H5Group, value: Any, collapse: bool,
                  compression: str | None = None) -> None:
    """Write a call's return value into ``group`` as ``result_0``, ``result_1``, ...

    The names and the collapse rule are ACME's (:func:`acme_storage._values.named_results`).
    A value HDF5 cannot hold (object arrays, ``None``, dicts) makes h5py raise a
    ``TypeError`` that :func:`unstorable` recognises.
    """
    for name, data, is_text in named_results(value, collapse):
        if is_text:
            group.create_dataset(name, data=data, dtype=h5py().string_dtype())
            continue
        array = data if isinstance(data, np.ndarray) else np.asarray(data)
        kwargs = {"compression": compression} if compression and array.ndim > 0 else {}
        group.create_dataset(name, data=array, **kwargs)


def read_dataset(dataset: H5Group) -> Any:
    """A dataset's value; text (written from ``str``: UTF-8 strings) as ``str``, bytes as bytes."""
    info = h5py().check_string_dtype(dataset.dtype)
    return decoded(dataset[()], text=info is not None and info.encoding == "utf-8")


def read_call(group: H5Group) -> Any:
    """A call's datasets as one value (a single ``result_0``) or a tuple in result order."""
    values = [read_dataset(group[k]) for k in _layout.result_keys(group)]
    return values[0] if len(values) == 1 else tuple(values)


def read_extras(group: H5Group) -> list[Any]:
    """A call's extra return values (``result_1``, ``result_2``, ...) in result order."""
    return [read_dataset(group[k]) for k in _layout.result_keys(group, extras_only=True)]
