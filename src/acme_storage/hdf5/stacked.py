"""A stacked run's shards (``result_shape`` with ``shard_calls``): the container's
``result_0`` over the shards' blocks, and the stacked reader.

::

    <out>/<fn>.h5         result_0:  virtual dataset of shape result_shape; each run of
                                     consecutive ids of a shard -> a hyperslab of the
                                     stacking axis <- <shard>:/acme_block/result_0
                          result_<k>: (k >= 1) virtual dataset (n_calls, *shape) over
                                     the rows, as in the "rows" layout
                          comp_<i>:  ExternalLink -> <shard>:/comp_<i> or the call's
                                     own file (calls that are no row of a block)
    <out>/<fn>_payload/<fn>_<t>.shard.h5
                          acme_ids; acme_block/result_0 stacked along the stacking
                          axis (block shape: result_shape with that axis the number of
                          rows); acme_block/result_<k> one row per call; attributes
                          acme_layout = "rows", acme_stacking_dim

This is the ``"rows"`` shard layout (:mod:`acme_storage.hdf5.rows`) with the block's
``result_0`` laid out as ``result_shape`` stacks it, so one hyperslab per run of ids
maps a shard into the container. Each call's first value was checked against its
slot and cast to ``result_dtype`` on the worker
(:func:`acme_storage.stacking.check_slot_value`); a call whose extra return values
differ from the block's first call's (shape, dtype, text) is a group ``comp_<i>``
of its shard, a value no array holds its own file or emergency pickle, and both
are mapped into ``result_0`` slot by slot. Slots of calls that did not finish read
as the fill value 0, as in the per-call layout (:mod:`acme_storage.hdf5.vds`).

The reader takes the shard names from task ids (:class:`~acme_storage.hdf5.shards.ShardIndex`),
never from the container, and reads the blocks itself.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import Any

import numpy as np

from acme_core.errors import ManifestError
from acme_storage import _layout, stacking
from acme_storage._values import decoded, elements
from acme_storage.hdf5 import shards
from acme_storage.hdf5._h5 import H5Group, h5py, open_file

__all__ = ["read_stacked", "virtual_result_0"]

#: a stacked run's ``result_shape`` (finite), stacking axis and dtype
Stacked = tuple[tuple[int, ...], int, np.dtype[Any]]


def _slab(dim: int, ndim: int, start: int, length: int) -> tuple[Any, ...]:
    """``[start:start + length]`` along ``dim``, everything along the other axes."""
    index: list[Any] = [slice(None)] * ndim
    index[dim] = slice(start, start + length)
    return tuple(index)


def virtual_result_0(h5f: H5Group, stacked: Stacked, rel: str,
                     blocks: dict[str, tuple[int, list[tuple[int, int]]]],
                     references: list[Any], runs: Callable[..., list[tuple[int, int, int]]]) -> None:
    """The container's ``result_0``: every shard's block by runs of ids, and every other
    call with an HDF5 result (a group of its shard, or its own file) by its slot.

    ``blocks``: shard name -> (rows of its block, (row, id) pairs mapped);
    ``runs`` groups those pairs into runs (:func:`acme_storage.hdf5.rows._runs`).
    """
    h5 = h5py()
    shape, dim, dtype = stacked
    ndim = len(shape)
    layout = h5.VirtualLayout(shape=shape, dtype=dtype)
    for name, (rows, pairs) in blocks.items():
        if not pairs:
            continue
        block_shape = tuple(rows if k == dim else s for k, s in enumerate(shape))
        source = h5.VirtualSource(f"{rel}/{name}", f"{shards.BLOCK}/result_0", shape=block_shape)
        for j, i, length in runs(pairs):
            layout[_slab(dim, ndim, i, length)] = source[_slab(dim, ndim, j, length)]
    in_rows = {i for _, pairs in blocks.values() for _, i in pairs}
    slot_shape = tuple(int(s) for s in stacking.slot_shape(shape, dim))
    for i, reference in enumerate(references):
        if i in in_rows or not isinstance(reference, str) or not reference.endswith(".h5"):
            continue
        name = reference.rsplit("/", 1)[-1]
        inner = (f"{_layout.comp_name(i)}/result_0" if name.endswith(shards.SHARD_SUFFIX)
                 else "result_0")
        source = h5.VirtualSource(f"{rel}/{name}", inner, shape=slot_shape)
        layout[stacking.slot(dim, ndim, i)] = source
    h5f.create_virtual_dataset("result_0", layout, fillvalue=0)


def read_stacked(index: shards.ShardIndex, manifest: dict[str, Any], finished: set[int],
                 own: set[int], read_one: Callable[[int], Any]) -> Any:
    """A sharded stacked run's ``open_results``: as :func:`acme_storage.hdf5.vds.read_stacked`
    gives it for the per-call layout (masked where calls are missing, extras flat).

    ``own``: calls with a file of their own, read by ``read_one``. None when a finished
    call was pickled (its value fits no slot: the caller reads per call).

    Raises
    ------
    acme_core.errors.ManifestError
        The manifest's ``result_shape``, ``stacking_dim`` or ``result_dtype`` is not
        a stacked run's.
    """
    n = int(manifest["n_calls"])
    shape, dim, dtype = _geometry(manifest, n)
    data = np.zeros(shape, dtype=dtype)
    along = np.moveaxis(data, dim, 0)  # a view: call i's slot is along[i]
    extras: dict[int, list[Any]] = {}
    in_rows = {i for i in finished if i in index.rows and i not in own}
    by_shard: dict[str, set[int]] = {}
    for i in in_rows:
        by_shard.setdefault(index.where[i], set()).add(i)
    for members in by_shard.values():
        path = index.path(next(iter(members)))
        if path is None:
            continue
        with open_file(path, "r") as h5f:
            ids, columns = shards.block_columns(h5f)
        _put(along, extras, ids, columns, members)
    rest = sorted(finished - in_rows)
    held = index.read([i for i in rest if i not in own])
    for i in rest:
        value = held[i] if i in held else read_one(i)
        if value is None:
            continue
        items = elements(value)
        first = np.asarray(items[0])
        if first.dtype == object or first.shape != along.shape[1:]:
            return None
        along[i] = first
        extras[i] = items[1:]
    written = sorted(extras)
    data = stacking.apply_mask(data, dim, n, written)
    return stacking.with_extras(data, [extras[i] for i in written])


def _geometry(manifest: dict[str, Any], n: int) -> Stacked:
    """The manifest's ``result_shape`` (N filled in), stacking axis and dtype, checked:
    a reader allocates the array from them, and anybody may have written the manifest.

    Raises
    ------
    acme_core.errors.ManifestError
        Not a finite shape with N along a valid stacking axis, or not a numeric dtype.
    """
    try:
        shape = tuple(operator.index(s) if isinstance(s, (int, np.integer)) else int(s)
                      for s in stacking.manifest_shape(manifest))
        dim = operator.index(manifest["stacking_dim"])
        dtype = np.dtype(str(manifest.get("result_dtype") or "float64"))
    except (TypeError, ValueError, KeyError, OverflowError) as exc:
        raise ManifestError(f"the manifest's result_shape, stacking_dim or result_dtype is "
                            f"not a stacked run's: {exc}") from exc
    if not (0 <= dim < len(shape) and shape[dim] == n and min(shape) >= 0
            and dtype.kind in stacking.NUMERIC_KINDS and dtype.fields is None
            and dtype.subdtype is None):
        raise ManifestError(f"the manifest's result_shape {shape}, stacking_dim {dim} or "
                            f"result_dtype {dtype} is not a stacked run's")
    return shape, dim, dtype


def _put(along: np.ndarray[Any, Any], extras: dict[int, list[Any]], ids: list[int],
         columns: list[tuple[str, np.ndarray[Any, Any]]], members: set[int]) -> None:
    """A shard's rows of ``members`` into their slots (``along[i]``) and ``extras``."""
    if not columns or columns[0][0] != "result_0" or columns[0][1].shape[1:] != along.shape[1:]:
        return
    rows = np.array([j for j, i in enumerate(ids) if i in members], dtype=np.int64)
    if not len(rows):
        return
    targets = np.array(ids, dtype=np.int64)[rows]
    along[targets] = columns[0][1][rows]
    others = [column for _, column in columns[1:]]
    for j, i in zip(rows.tolist(), targets.tolist(), strict=True):
        extras[i] = [decoded(column[j], text=False) for column in others]
