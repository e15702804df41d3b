"""The ``"rows"`` shard layout's container and reader (``shard_calls="rows"``).

::

    <out>/<fn>.h5         result_<k>: virtual dataset (n_calls, *shape), call i's row ->
                                      <fn>_payload/<shard>:/acme_block/result_<k>
                          comp_<i>:  ExternalLink -> <shard>:/comp_<i> (calls stored as groups)
    <out>/<fn>_payload/<fn>_<t>.shard.h5
                          acme_ids, acme_block/result_<k>: the task's calls, one row each
                          comp_<i>: calls the block cannot hold (other shape or dtype than
                                    the shard's first call, text, empty arrays)

A ``"rows"`` shard writes no HDF5 object per call, which is what made the
``"groups"`` layout slow (``benchmarks/README.md``). The container maps each
shard's rows onto the calls' ids, one mapping per shard (per run of consecutive
ids, which a task's calls are), for every ``result_<k>`` that has the same dtype
and shape in every shard; slots of calls that did not finish, or that are groups,
read as the fill value (NaN for floating-point results, 0 for the rest).
``h5py.File(container)["result_0"][7]`` then reads call 7. The sources are relative
to the container, so a moved run directory still reads.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from acme_core.fileio import atomic_path
from acme_storage import _layout, stacking
from acme_storage.hdf5 import shards
from acme_storage.hdf5 import stacked as _stacked
from acme_storage.hdf5._h5 import H5Group, h5py, open_file

__all__ = ["read_stacked", "write_rows_container"]

#: a shard's block: its ids, and (dtype, row shape) per result
_Block = tuple[list[int], dict[str, tuple[str, tuple[int, ...]]]]


def _block_of(h5f: H5Group) -> _Block:
    """A shard's block ids and the signature of each result, without reading its rows."""
    if shards.BLOCK_IDS not in h5f or shards.BLOCK not in h5f:
        return [], {}
    ids = [int(i) for i in h5f[shards.BLOCK_IDS][()].tolist()]
    block = h5f[shards.BLOCK]
    signature = {}
    for key in _layout.result_keys(block):
        dataset = block[key]
        if dataset.shape[:1] == (len(ids),):
            signature[key] = (dataset.dtype.str, tuple(dataset.shape[1:]))
    return ids, signature


def _runs(pairs: list[tuple[int, int]]) -> list[tuple[int, int, int]]:
    """``(row, id)`` pairs as runs ``(first row, first id, length)`` of consecutive both."""
    runs: list[tuple[int, int, int]] = []
    for j, i in pairs:
        if runs and runs[-1][0] + runs[-1][2] == j and runs[-1][1] + runs[-1][2] == i:
            runs[-1] = (runs[-1][0], runs[-1][1], runs[-1][2] + 1)
        else:
            runs.append((j, i, 1))
    return runs


def _fill(dtype: np.dtype[Any]) -> Any:
    return np.nan if dtype.kind in "fc" else 0


def write_rows_container(container: Path, payload: Path, references: list[Any],
                         locking: bool | None, stacked: _stacked.Stacked | None = None) -> None:
    """``<fn>.h5`` of a ``"rows"`` run (see the module docstring); rewritten as a whole.

    Which shard holds a call is the call's reference (the driver's, or on resume
    what ``existing()`` found), so a row of a shard that another shard superseded
    is not mapped. ``stacked``: a run with ``result_shape`` (shape, stacking axis,
    dtype), whose ``result_0`` has that shape (:mod:`acme_storage.hdf5.stacked`).
    """
    members: dict[str, list[int]] = {}
    for i, reference in enumerate(references):
        if isinstance(reference, str) and reference.endswith(shards.SHARD_SUFFIX):
            members.setdefault(os.path.basename(reference), []).append(i)
    blocks: dict[str, tuple[int, list[tuple[int, int]]]] = {}
    signatures: list[dict[str, tuple[str, tuple[int, ...]]]] = []
    for name, ids in members.items():
        with open_file(payload / name, "r") as h5f:
            block_ids, signature = _block_of(h5f)
        held = set(ids)
        pairs = [(j, i) for j, i in enumerate(block_ids) if i in held]
        blocks[name] = (len(block_ids), pairs)
        if pairs:
            signatures.append(signature)
    in_rows = {i for _, pairs in blocks.values() for _, i in pairs}
    links = [None if i in in_rows else r for i, r in enumerate(references)]
    with atomic_path(container) as tmp, \
            open_file(tmp, "w", locking, libver="latest") as h5f:
        shards.link_calls(h5f, payload, links)
        if stacked is not None:
            _stacked.virtual_result_0(h5f, stacked, payload.name, blocks, references, _runs)
        common = signatures[0] if signatures else {}
        for key, (dtype, shape) in common.items():
            if stacked is not None and key == "result_0":
                continue
            if all(s.get(key) == (dtype, shape) for s in signatures):
                _virtual(h5f, key, np.dtype(dtype), shape, payload.name, blocks, len(references))


def _virtual(h5f: H5Group, key: str, dtype: np.dtype[Any], shape: tuple[int, ...], rel: str,
             blocks: dict[str, tuple[int, list[tuple[int, int]]]], n_calls: int) -> None:
    """The virtual dataset ``key`` over every shard's rows (one mapping per run of ids)."""
    h5 = h5py()
    layout = h5.VirtualLayout(shape=(n_calls, *shape), dtype=dtype)
    for name, (rows, pairs) in blocks.items():
        if not pairs:
            continue
        source = h5.VirtualSource(f"{rel}/{name}", f"{shards.BLOCK}/{key}", shape=(rows, *shape))
        for j, i, length in _runs(pairs):
            layout[i:i + length] = source[j:j + length]
    h5f.create_virtual_dataset(key, layout, fillvalue=_fill(dtype))


def read_stacked(index: shards.ShardIndex, finished: set[int], n_calls: int) -> Any:
    """Every finished call stacked (``(n_calls, *shape)`` per result, masked where not
    written), or None when not every finished call is a row of one signature.

    One result per call gives the array, several a tuple of arrays. Each shard is
    opened once and its block read whole.
    """
    if not finished or not finished <= index.rows:
        return None
    by_shard: dict[str, set[int]] = {}
    for i in finished:
        by_shard.setdefault(index.where[i], set()).add(i)
    stacks: dict[str, np.ndarray[Any, Any]] = {}
    written: list[int] = []
    for members in by_shard.values():
        path = index.path(next(iter(members)))
        if path is None:
            return None
        with open_file(path, "r") as h5f:
            ids, columns = shards.block_columns(h5f)
        if not _put(stacks, ids, columns, members, n_calls, written):
            return None
    arrays = [stacking.apply_mask(stacks[key], 0, n_calls, written) for key in stacks]
    return arrays[0] if len(arrays) == 1 else tuple(arrays)


def _put(stacks: dict[str, np.ndarray[Any, Any]], ids: list[int],
         columns: list[tuple[str, np.ndarray[Any, Any]]], members: set[int], n_calls: int,
         written: list[int]) -> bool:
    """Copy a shard's rows of ``members`` into ``stacks``; False when its signature differs."""
    if stacks and [key for key, _ in columns] != list(stacks):
        return False
    rows = np.array([j for j, i in enumerate(ids) if i in members], dtype=np.int64)
    targets = np.array(ids, dtype=np.int64)[rows] if len(rows) else rows
    for key, column in columns:
        stack = stacks.get(key)
        if stack is None:
            stack = stacks[key] = np.zeros((n_calls, *column.shape[1:]), dtype=column.dtype)
        if stack.shape[1:] != column.shape[1:] or stack.dtype != column.dtype:
            return False
        stack[targets] = column[rows]
    written.extend(targets.tolist())
    return True
