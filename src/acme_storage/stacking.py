"""Stacked results (``result_shape``): slots, regions, masks and extras, for every format.

Every store that stacks (``"hdf5"``, ``"hdf5-single"``, ``"zarr"``, ``"memory"``)
returns the same thing from ``open_results`` / ``compute()``:

* the stacked array alone when every call returned one value, or
  ``[array, extras of call 0..., extras of call 1..., ...]`` (ACME's flat list)
  when calls returned several values (:func:`with_extras`);
* a :class:`numpy.ma.MaskedArray` whose mask covers the slots of calls that
  were never written (failed, or not run yet), so a missing call is never
  mistaken for a written zero; a plain ndarray when every slot holds data
  (:func:`apply_mask`).

The written mask comes from the run manifest (a call is recorded as finished
only after its result is on disk), intersected with what the store itself can
see on disk, so neither source alone can claim a slot that is not there.

This module knows no file format: the HDF5 virtual dataset lives in
:mod:`acme_storage.hdf5.vds`, zarr's arrays in :mod:`acme_storage.zarr`.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from acme_core.errors import ArgumentValueError, ResultMismatchError, ResultTypeError
from acme_core.manifest import from_ranges
from acme_core.store import RunInfo
from acme_storage._values import elements

__all__ = [
    "apply_mask",
    "cast_losslessly",
    "check_result_dtype",
    "check_slot_value",
    "finished_ids",
    "initial_extent",
    "manifest_shape",
    "slot",
    "slot_region",
    "slot_shape",
    "stack_in_memory",
    "unlimited_axis",
    "with_extras",
]


#: the dtype kinds a stacked result may have: bool, integers, floats, complex numbers
NUMERIC_KINDS = "biufc"


def slot(stacking_dim: int, ndim: int, i: int) -> tuple[Any, ...]:
    """Index of call ``i`` in the stacked array."""
    index: list[Any] = [slice(None)] * ndim
    index[stacking_dim] = i
    return tuple(index)


def slot_shape(shape: Sequence[float], stacking_dim: int) -> tuple[float, ...]:
    """Shape of one call's ``result_0``: ``shape`` without the stacking axis (inf kept)."""
    return tuple(s for k, s in enumerate(shape) if k != stacking_dim)


def unlimited_axis(shape: Sequence[float]) -> int | None:
    """Index of the ``np.inf`` axis in ``shape`` (None if there is none)."""
    for k, s in enumerate(shape):
        if isinstance(s, float) and math.isinf(s):
            return k
    return None


def initial_extent(shape: Sequence[float]) -> tuple[tuple[int, ...], tuple[int | None, ...]]:
    """(initial shape, maximum shape): an ``np.inf`` axis starts at 1 and is unlimited (None).

    1 is ACME's initial length of an unlimited axis, before any data.
    """
    initial = tuple(1 if math.isinf(s) else int(s) for s in shape)
    maxshape = tuple(None if math.isinf(s) else int(s) for s in shape)
    return initial, maxshape


def check_slot_value(value: Any, shape: Sequence[float], stacking_dim: int,
                     dtype: np.dtype[Any] | None) -> np.ndarray[Any, Any]:
    """Validate a call's first return value against its slot; return it as an array.

    Runs on the worker, before anything of the value is written, so a result of
    the wrong shape or dtype fails *its call* (with a message that names both)
    instead of corrupting or silently broadcasting into the stacked array. The
    ``np.inf`` axis accepts any length. Every store that stacks calls it, so the
    rule is the same everywhere (:func:`cast_losslessly`).

    Raises
    ------
    acme_core.errors.ResultMismatchError
        The value does not fit ``result_shape``, or its values change when cast
        to ``result_dtype``.
    acme_core.errors.ResultTypeError
        The value is not numeric.
    """
    data = np.asarray(value)
    expected = slot_shape(shape, stacking_dim)
    fits = data.ndim == len(expected) and all(
        math.isinf(e) or int(e) == n for e, n in zip(expected, data.shape, strict=True))
    if not fits:
        shown = tuple("inf" if math.isinf(e) else int(e) for e in expected)
        raise ResultMismatchError(
            f"result of shape {data.shape} does not fit `result_shape`: each call has to return "
            f"an array of shape {shown} (the stacking axis removed)", parameter="result_shape")
    if data.dtype.kind not in NUMERIC_KINDS:
        raise ResultTypeError(f"a stacked result must be numeric, not {type(value).__name__} "
                              f"of dtype {data.dtype}", parameter="result_shape")
    return data if dtype is None or data.dtype == dtype else cast_losslessly(data, dtype)


def cast_losslessly(data: np.ndarray[Any, Any], dtype: np.dtype[Any]) -> np.ndarray[Any, Any]:
    """``data`` cast to ``dtype``, refused where its values do not survive the cast.

    The rule (ACME's documented one, now checked for every cast): into integers
    and bool every value must come back unchanged (no wrap-around, no clipping,
    no cut fraction, no NaN); into floats and complex numbers values may round
    to the nearest representable one but must not overflow to infinity, and a
    complex value must have no imaginary part when cast to a real type.

    Raises
    ------
    acme_core.errors.ResultMismatchError
        ``parameter="result_dtype"``, naming both dtypes.
    """
    if np.can_cast(data.dtype, dtype, casting="safe") or not data.size:
        return data.astype(dtype)
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # numpy's ComplexWarning, RuntimeWarning
        cast = data.astype(dtype)
        if dtype.kind in "fc":
            survived = bool(np.all(np.isfinite(cast) | ~np.isfinite(data)))
            if data.dtype.kind == "c" and dtype.kind == "f":
                survived = survived and not np.any(data.imag)
        else:
            survived = bool(np.array_equal(cast, data))
    if not survived:
        raise ResultMismatchError(f"result of dtype {data.dtype} does not fit `result_dtype` "
                                  f"{dtype}: its values change when cast (out of range, "
                                  "a fraction or NaN cut off)", parameter="result_dtype")
    return cast


def check_result_dtype(run: RunInfo, store: str, kinds: str = NUMERIC_KINDS,
                       max_itemsize: dict[str, int] | None = None) -> None:
    """Refuse, before anything is written, a ``result_dtype`` the store cannot stack.

    ``kinds`` are the dtype kinds the store's format holds; ``max_itemsize`` the
    largest item size per kind (``{"f": 8}``: no ``float128``).

    Raises
    ------
    acme_core.errors.ArgumentValueError
        ``parameter="result_dtype"``, naming the store and what it can hold.
    """
    dtype = run.result_dtype
    if run.result_shape is None or dtype is None:
        return
    limit = (max_itemsize or {}).get(dtype.kind)
    if dtype.kind not in kinds or (limit is not None and dtype.itemsize > limit) \
            or dtype.fields is not None or dtype.subdtype is not None:
        names = {"b": "bool", "i": "signed integers", "u": "unsigned integers",
                 "f": "floats", "c": "complex numbers"}
        held = ", ".join(names[k] + (f" up to {8 * (max_itemsize or {})[k]} bits"
                                     if k in (max_itemsize or {}) else "") for k in kinds)
        raise ArgumentValueError(f"`result_dtype` {str(dtype)!r} cannot be stacked by the store "
                                 f"{store!r}: it holds {held}", parameter="result_dtype")


def slot_region(shape: Sequence[float], stacking_dim: int, i: int,
                data_shape: Sequence[int]) -> tuple[Any, ...]:
    """Index of call ``i``'s data in the stacked array (the inf axis cut to the data's length)."""
    region: list[Any] = []
    k = 0
    for d, s in enumerate(shape):
        if d == stacking_dim:
            region.append(i)
            continue
        region.append(slice(0, int(data_shape[k])) if math.isinf(s) else slice(None))
        k += 1
    return tuple(region)


def manifest_shape(manifest: dict[str, Any]) -> tuple[float, ...]:
    """The manifest's ``result_shape`` with the stacking axis filled in (N)."""
    n = int(manifest["n_calls"])
    return tuple(n if s is None else (float(s) if math.isinf(float(s)) else int(s))
                 for s in manifest["result_shape"])


def finished_ids(manifest: dict[str, Any]) -> set[int]:
    """Task ids the manifest records as finished."""
    return set(from_ranges(manifest.get("finished", [])))


def apply_mask(data: np.ndarray[Any, Any], stacking_dim: int, n_calls: int,
               written: Iterable[int]) -> np.ndarray[Any, Any]:
    """``data`` as is when every slot was written, else masked on the unwritten slots."""
    written = set(written)
    missing = [i for i in range(n_calls) if i not in written]
    if not missing:
        return data
    mask = np.zeros(data.shape, dtype=bool)
    for i in missing:
        mask[slot(stacking_dim, data.ndim, i)] = True
    return np.ma.MaskedArray(data, mask=mask)


def with_extras(data: Any, extras: Sequence[Sequence[Any]]) -> Any:
    """ACME's stacked return: the array, or ``[array, *extras of every call]`` (flat)."""
    if not any(extras):
        return data
    return [data, *(item for per_call in extras for item in per_call)]


def stack_in_memory(references: list[Any], failed: set[int], run: RunInfo) -> Any:
    """ACME's in-memory result: the stacked array, plus extra returns as a flat list."""
    assert run.result_shape is not None and run.stacking_dim is not None
    shape = tuple(int(s) for s in run.result_shape)
    arr = np.zeros(shape, dtype=run.result_dtype)
    extras: list[list[Any]] = []
    written: list[int] = []
    for i, ref in enumerate(references):
        if i in failed or ref is None:
            continue
        items = elements(ref)
        arr[slot(run.stacking_dim, len(shape), i)] = items[0]
        written.append(i)
        extras.append(items[1:])
    masked = apply_mask(arr, run.stacking_dim, run.n_calls, written)
    return with_extras(masked, extras)
