"""ACME's rules for a call's return value, shared by the HDF5 and zarr stores.

Writing: a return value is a list of *elements* (a list or tuple as it is,
anything else as one element), stored as ``result_0``, ``result_1``, ... Without
``result_shape`` ACME *collapses* a value whose elements are all numbers into
one array ``result_0``, and one whose elements are all strings into one string
array. :func:`named_results` applies these rules; which element a format can
hold is the format's business (HDF5 and zarr differ, e.g. on numpy unicode
arrays), so it stays in the store.

Reading: h5py returns text as ``bytes`` (arrays of it as object arrays of
bytes), zarr-python as ``str`` or numpy ``StringDType`` arrays. :func:`decoded`
turns both into what ``open_results`` promises: ``str``, or object arrays of
``str``.

Nothing here imports h5py or zarr.
"""

from __future__ import annotations

import numbers
from typing import Any, NamedTuple

import numpy as np

from acme_storage._layout import result_name

__all__ = ["Named", "decoded", "elements", "is_number", "named_results"]


class Named(NamedTuple):
    """One dataset a call's return value becomes."""

    #: ``result_<k>``
    name: str
    #: a ``str``, an object array of ``str`` (collapsed strings), or the element as it was
    data: Any
    #: whether the format must store ``data`` as text
    is_text: bool


def elements(value: Any) -> list[Any]:
    """ACME's rule: a return value is a list of elements unless it is a list/tuple."""
    return list(value) if isinstance(value, (list, tuple)) else [value]


def is_number(value: Any) -> bool:
    """A number in ACME's collapse rule (``bool`` is not one)."""
    return isinstance(value, numbers.Number) and not isinstance(value, bool)


def named_results(value: Any, collapse: bool) -> list[Named]:
    """The datasets ``value`` becomes, by ACME's rules (see the module docstring).

    ``collapse`` is ACME's rule without ``result_shape``. Elements are passed on
    unconverted (``is_text`` for a ``str``), except collapsed numbers (one array)
    and collapsed strings (one object array of ``str``).
    """
    items = elements(value)
    if collapse and items and all(is_number(v) for v in items):
        return [Named(result_name(0), np.asarray(items), False)]
    if collapse and items and all(isinstance(v, str) for v in items):
        return [Named(result_name(0), np.array(items, dtype=object), True)]
    return [Named(result_name(k), item, isinstance(item, str)) for k, item in enumerate(items)]


def decoded(value: Any, text: bool = True) -> Any:
    """A value read back from HDF5 or zarr, with text as ``str`` (arrays of it of object dtype).

    ``text`` says whether the dataset holds text (written from ``str``): only then
    are bytes decoded. A ``bytes`` result (any bytes, not necessarily UTF-8) comes
    back as ``bytes``, an array of them as it was stored.
    """
    if not text:
        return bytes(value) if isinstance(value, np.bytes_) else value
    if isinstance(value, bytes):  # h5py: a scalar string
        return value.decode()
    if not isinstance(value, np.ndarray) or value.dtype.kind not in "TUO":
        return value
    if value.ndim == 0:
        item = value[()]
        return item.decode() if isinstance(item, bytes) else str(item)
    if value.dtype.kind in "TU":  # zarr: numpy StringDType (or unicode) arrays
        return value.astype(object)
    # h5py: object arrays of bytes
    return np.array([v.decode() if isinstance(v, bytes) else v for v in value.ravel()],
                    dtype=object).reshape(value.shape)
