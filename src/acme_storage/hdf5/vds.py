"""The ``"hdf5"`` store with ``result_shape``: a virtual dataset over every call's file.

::

    <out>/<fn>.h5        result_0: virtual dataset, call i's slot -> <fn>_payload/<fn>_<i>.h5:result_0
                         comp_<i>/result_<k>: ExternalLinks to extra return values (k >= 1)

The sources are **relative** paths (``<fn>_payload/<fn>_<i>.h5``), resolved by
HDF5 against the container's own directory, so a run directory can be moved or
copied and still reads. An ``np.inf`` axis is unlimited in the layout and
starts at 1 (ACME's initial extent); HDF5 sizes the view to the longest source.
Slots of files that do not exist read back as the fill value 0, so
:func:`read_stacked` masks the slots the manifest does not record as finished
or whose file is missing (:mod:`acme_storage.stacking`).

A stacked run in shards has a container over the shards' blocks instead
(:mod:`acme_storage.hdf5.stacked`). Used by :mod:`acme_storage.hdf5.links` only; what happens when emergency
pickling dropped the container is that store's business.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from acme_core.fileio import atomic_path
from acme_core.store import RunInfo
from acme_storage import _layout, _trust, stacking
from acme_storage.hdf5._h5 import h5py, open_file, read_extras

__all__ = ["link_extra_returns", "read_stacked", "write_virtual_container"]


def _source_name(payload: Path, func_name: str, i: int) -> str:
    """Call ``i``'s file relative to the container: ``<fn>_payload/<fn>_<i>.h5``."""
    return f"{payload.name}/{_layout.call_name(func_name, i, '.h5')}"


def write_virtual_container(container: Path, payload: Path, run: RunInfo,
                            locking: bool | None) -> None:
    """Create ``<fn>.h5`` with the virtual dataset ``result_0`` over every call's file."""
    h5 = h5py()
    assert run.result_shape is not None and run.stacking_dim is not None
    shape, maxshape = stacking.initial_extent(run.result_shape)
    dim = run.stacking_dim
    src_shape = tuple(s for k, s in enumerate(shape) if k != dim)
    src_max = tuple(s for k, s in enumerate(maxshape) if k != dim)
    layout = h5.VirtualLayout(shape=shape, maxshape=maxshape, dtype=run.result_dtype)
    unlimited = None in src_max
    for i in range(run.n_calls):
        source = h5.VirtualSource(_source_name(payload, run.func_name, i), "result_0",
                                  shape=src_shape, maxshape=src_max)
        if unlimited:
            src_sel = tuple(slice(0, h5.h5s.UNLIMITED) if m is None else slice(None)
                            for m in src_max)
            index: list[Any] = list(src_sel)
            index.insert(dim, i)
            layout[tuple(index)] = source[src_sel]
        else:
            layout[stacking.slot(dim, len(shape), i)] = source
    with atomic_path(container) as tmp, open_file(tmp, "w", locking, libver="latest") as h5f:
        h5f.create_virtual_dataset("result_0", layout, fillvalue=0)


def link_extra_returns(container: Path, payload: Path, run: RunInfo, locking: bool | None) -> None:
    """Link extra return values (``result_1``, ...) as ``comp_<i>/result_<k>``.

    Which extras exist is read from call 0's file: with ``result_shape`` every
    call returns the same number of values.
    """
    first = _layout.call_file(payload, run.func_name, 0, ".h5")
    if not first.exists() or not container.exists():
        return
    with open_file(first, "r") as h5f:
        extra = _layout.result_keys(h5f, extras_only=True)
    if not extra:
        return
    external_link = h5py().ExternalLink
    with open_file(container, "a", locking) as h5f:
        for i in range(run.n_calls):
            group = h5f.require_group(_layout.comp_name(i))
            for k in extra:
                if k not in group:
                    group[k] = external_link(_source_name(payload, run.func_name, i), k)


def read_stacked(run_dir: Path, manifest: dict[str, Any]) -> Any:
    """The stacked ``result_0`` of an ``"hdf5"`` run, masked where calls are missing.

    A slot counts as written when the manifest records the call as finished and
    its payload file exists. Extra return values are read from the payload files.
    The container must exist. HDF5 resolves the virtual dataset's sources itself,
    so every source name is checked first: none may be a symbolic link (out of
    the run directory).
    """
    run = _trust.listed(run_dir, manifest)
    fn = run.func_name
    payload = _layout.payload_dir(Path(), fn).name
    sources = [_trust.inside(run_dir, payload, _layout.call_name(fn, i, ".h5"))
               for i in range(run.n_calls)]
    container = _trust.inside(run_dir, _layout.container(Path(), fn).name)
    assert container is not None
    with open_file(container, "r") as h5f:
        data = h5f["result_0"][()]
    written = []
    extras: list[list[Any]] = []
    for i in sorted(run.finished):
        path = sources[i]
        if path is None:
            continue
        written.append(i)
        with open_file(path, "r") as h5f:
            extras.append(read_extras(h5f))
    data = stacking.apply_mask(data, int(manifest["stacking_dim"]), run.n_calls, written)
    return stacking.with_extras(data, extras)
