"""Stacked results (``result_shape``): the in-memory array and the HDF5 virtual dataset.

The virtual dataset's sources are **relative** paths (``<fn>_payload/<fn>_<i>.h5``),
resolved by HDF5 against the container's own directory, so a run directory can be
moved or copied and still reads.
"""

from __future__ import annotations

import math
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


def _elements(value: Any) -> list[Any]:
    return list(value) if isinstance(value, (list, tuple)) else [value]


def stack_in_memory(references: list[Any], failed: set[int], run: RunInfo) -> Any:
    """ACME's in-memory result: the stacked array, plus extra returns as a flat list."""
    assert run.result_shape is not None and run.stacking_dim is not None
    shape = tuple(int(s) for s in run.result_shape)
    arr = np.zeros(shape, dtype=run.result_dtype)
    extras: list[Any] = []
    multi = False
    for i, ref in enumerate(references):
        if i in failed or ref is None and i in failed:
            continue
        items = _elements(ref)
        arr[slot(run.stacking_dim, len(shape), i)] = items[0]
        if len(items) > 1:
            multi = True
            extras.extend(items[1:])
    if failed:
        mask = np.zeros(shape, dtype=bool)
        for i in failed:
            mask[slot(run.stacking_dim, len(shape), i)] = True
        arr = np.ma.MaskedArray(arr, mask=mask)
    return [arr, *extras] if multi else arr


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
        name = f"{payload.name}/{run.func_name}_{i}.h5"
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
                    group[k] = h5py.ExternalLink(f"{payload.name}/{run.func_name}_{i}.h5", k)


def read_stacked(run_dir: Path, manifest: dict[str, Any]) -> Any:
    """The stacked ``result_0`` of an HDF5 run; slots of unfinished calls are masked."""
    import h5py

    from acme_core.manifest import from_ranges

    container = naming.container(run_dir, manifest["func_name"])
    with h5py.File(container, "r") as h5f:
        data = h5f["result_0"][()]
    n = int(manifest["n_calls"])
    finished = set(from_ranges(manifest.get("finished", [])))
    missing = [i for i in range(n) if i not in finished]
    if not missing:
        return data
    dim = int(manifest["stacking_dim"])
    mask = np.zeros(data.shape, dtype=bool)
    for i in missing:
        mask[slot(dim, data.ndim, i)] = True
    return np.ma.MaskedArray(data, mask=mask)
