"""Stacked results (``result_shape``): shared helpers, the in-memory array, the HDF5 virtual dataset.

Every store that stacks (``"hdf5"``, ``"hdf5-single"``, ``"zarr"``, ``"memory"``)
returns the same thing from ``open_results`` / ``compute()``:

* the stacked array alone when every call returned one value, or
  ``[array, extras of call 0..., extras of call 1..., ...]`` (ACME's flat list)
  when calls returned several values;
* a :class:`numpy.ma.MaskedArray` whose mask covers the slots of calls that
  were never written (failed, or not run yet), so a missing call is never
  mistaken for a written zero; a plain ndarray when every slot holds data.

The written mask comes from the run manifest (a call is recorded as finished
only after its result is on disk), intersected with what the store itself can
see on disk, so neither source alone can claim a slot that is not there.

The ``"hdf5"`` virtual dataset's sources are **relative** paths
(``<fn>_payload/<fn>_<i>.h5``), resolved by HDF5 against the container's own
directory, so a run directory can be moved or copied and still reads.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from acme_core.fileio import atomic_path
from acme_core.store import RunInfo
from acme_storage import naming


def slot(stacking_dim: int, ndim: int, i: int) -> tuple[Any, ...]:
    """Index of call ``i`` in the stacked array."""
    index: list[Any] = [slice(None)] * ndim
    index[stacking_dim] = i
    return tuple(index)


def elements(value: Any) -> list[Any]:
    """ACME's rule: a return value is a list of elements unless it is a list/tuple."""
    return list(value) if isinstance(value, (list, tuple)) else [value]


def slot_shape(shape: Sequence[float], stacking_dim: int) -> tuple[float, ...]:
    """Shape of one call's ``result_0``: ``shape`` without the stacking axis (inf kept)."""
    return tuple(s for k, s in enumerate(shape) if k != stacking_dim)


def unlimited_axis(shape: Sequence[float]) -> int | None:
    """Index of the ``np.inf`` axis in ``shape`` (None if there is none)."""
    for k, s in enumerate(shape):
        if isinstance(s, float) and math.isinf(s):
            return k
    return None


def check_slot_value(value: Any, shape: Sequence[float], stacking_dim: int,
                     dtype: np.dtype | None) -> np.ndarray:
    """Validate a call's first return value against its slot; return it as an array.

    Runs on the worker, so a result of the wrong shape fails *its call* (with a
    message that names both shapes) instead of corrupting or silently
    broadcasting into the stacked array. The ``np.inf`` axis accepts any length.
    """
    data = np.asarray(value)
    expected = slot_shape(shape, stacking_dim)
    fits = data.ndim == len(expected) and all(
        math.isinf(e) or int(e) == n for e, n in zip(expected, data.shape, strict=True))
    if not fits:
        shown = tuple("inf" if math.isinf(e) else int(e) for e in expected)
        raise ValueError(f"result of shape {data.shape} does not fit `result_shape`: each call "
                         f"has to return an array of shape {shown} (the stacking axis removed)")
    if data.dtype == object:
        raise TypeError(f"a stacked result must be numeric, not {type(value).__name__} of "
                        f"object dtype")
    if dtype is not None and data.dtype != dtype:
        if not np.can_cast(data.dtype, dtype, casting="same_kind") and data.size:
            # a float into an int array and the like: allowed (ACME casts), but only
            # where the values survive the cast unchanged
            cast = data.astype(dtype)
            if not np.array_equal(cast, data):
                raise ValueError(f"result of dtype {data.dtype} does not fit `result_dtype` "
                                 f"{dtype}: the values change when cast")
        data = data.astype(dtype)
    return data


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
    from acme_core.manifest import from_ranges

    return set(from_ranges(manifest.get("finished", [])))


def apply_mask(data: np.ndarray, stacking_dim: int, n_calls: int,
               written: Iterable[int]) -> np.ndarray:
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
    arr = apply_mask(arr, run.stacking_dim, run.n_calls, written)
    return with_extras(arr, extras)


def _extent(shape: tuple[float, ...]) -> tuple[tuple[int, ...], tuple[int | None, ...]]:
    """(initial shape, maxshape): an ``np.inf`` axis starts at 1 and is unlimited."""
    initial = tuple(1 if math.isinf(s) else int(s) for s in shape)
    maxshape = tuple(None if math.isinf(s) else int(s) for s in shape)
    return initial, maxshape


def write_virtual_container(container: Path, payload: Path, run: RunInfo,
                            locking: bool | None) -> None:
    """Create ``<fn>.h5`` with the virtual dataset ``result_0`` over every call's file."""
    import h5py

    assert run.result_shape is not None and run.stacking_dim is not None
    shape, maxshape = _extent(run.result_shape)
    dim = run.stacking_dim
    src_shape = tuple(s for k, s in enumerate(shape) if k != dim)
    src_max = tuple(s for k, s in enumerate(maxshape) if k != dim)
    layout = h5py.VirtualLayout(shape=shape, maxshape=maxshape, dtype=run.result_dtype)
    unlimited = None in src_max
    for i in range(run.n_calls):
        name = f"{payload.name}/{naming.call_name(run.func_name, i, '.h5')}"
        source = h5py.VirtualSource(name, "result_0", shape=src_shape, maxshape=src_max)
        if unlimited:
            src_sel = tuple(slice(0, h5py.h5s.UNLIMITED) if m is None else slice(None)
                            for m in src_max)
            index: list[Any] = list(src_sel)
            index.insert(dim, i)
            layout[tuple(index)] = source[src_sel]
        else:
            layout[slot(dim, len(shape), i)] = source
    kwargs = {} if locking is None else {"locking": locking}
    with atomic_path(container) as tmp:
        with h5py.File(tmp, "w", libver="latest", **kwargs) as h5f:
            h5f.create_virtual_dataset("result_0", layout, fillvalue=0)


def link_extra_returns(container: Path, payload: Path, run: RunInfo, locking: bool | None) -> None:
    """Link extra return values (``result_1``, ...) as ``comp_<i>/result_<k>``."""
    import h5py

    first = naming.call_file(payload, run.func_name, 0, ".h5")
    if not first.exists() or not container.exists():
        return
    with h5py.File(first, "r") as h5f:
        extra = sorted((k for k in h5f if k != "result_0"), key=naming.natural_key)
    if not extra:
        return
    kwargs = {} if locking is None else {"locking": locking}
    with h5py.File(container, "a", **kwargs) as h5f:
        for i in range(run.n_calls):
            group = h5f.require_group(f"comp_{i}")
            for k in extra:
                if k not in group:
                    group[k] = h5py.ExternalLink(
                        f"{payload.name}/{naming.call_name(run.func_name, i, '.h5')}", k)


def read_extras(group: Any) -> list[Any]:
    """A call's extra return values (``result_1``, ``result_2``, ...) from an h5py group."""
    from acme_storage.hdf5 import _decode

    names = sorted((k for k in group if k.startswith("result_") and k != "result_0"),
                   key=naming.natural_key)
    return [_decode(group[k][()]) for k in names]


def read_stacked(run_dir: Path, manifest: dict[str, Any]) -> Any:
    """The stacked ``result_0`` of an ``"hdf5"`` run, masked where calls are missing.

    A slot counts as written when the manifest records the call as finished and
    its payload file exists. Extra return values are read from the payload files.
    A run whose container was dropped by emergency pickling reads back per call.
    """
    import h5py

    fn = manifest["func_name"]
    container = naming.container(run_dir, fn)
    if not container.exists():
        from acme_storage.hdf5 import HDF5Store

        return HDF5Store.read(run_dir, {**manifest, "result_shape": None})
    with h5py.File(container, "r") as h5f:
        data = h5f["result_0"][()]
    n = int(manifest["n_calls"])
    payload = naming.payload_dir(run_dir, fn)
    written = []
    extras: list[list[Any]] = []
    for i in sorted(finished_ids(manifest)):
        path = naming.call_file(payload, fn, i, ".h5")
        if not path.exists():
            continue
        written.append(i)
        with h5py.File(path, "r") as h5f:
            extras.append(read_extras(h5f))
    data = apply_mask(data, int(manifest["stacking_dim"]), n, written)
    return with_extras(data, extras)
