"""Reading a finished run back: :func:`open_results`."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from acme_core.errors import NoRunError
from acme_core.manifest import MANIFEST_NAME, Manifest
from acme_core.plugins import list_stores, lookup


def find_run_dir(path: str | os.PathLike[str]) -> Path:
    """The run directory of ``path`` (a run directory, or a file inside one)."""
    p = Path(path).expanduser().resolve()
    for candidate in (p, p.parent, p.parent.parent):
        if candidate.is_dir() and (candidate / MANIFEST_NAME).is_file():
            return candidate
    raise NoRunError(f"{path} holds no acme-core run: no {MANIFEST_NAME} in it or next to it")


def open_results(path: str | os.PathLike[str]) -> Any:
    """Read a finished run back as numpy values in task order.

    Parameters
    ----------
    path : str or path-like
        A run directory, or its results container (e.g. ``<out>/<fn>.h5``).

    Returns
    -------
    list or numpy.ndarray
        One entry per call in task order (natural order: call 2 before call 10):
        an array for a single return value, a tuple for several, the unpickled
        object for pickled results, None for a call that did not finish. With
        ``result_shape``, the stacked array; so for an ``"hdf5"`` run in the
        ``shard_calls="rows"`` layout (the default from 10,000 calls) whose calls all
        return the same shapes and dtypes: ``(n_calls, *shape)``, masked where calls
        did not finish, a tuple of such arrays when each call returns several values.

    Raises
    ------
    NoRunError
        ``path`` holds no acme-core run (a ``ValueError``).
    """
    run_dir = find_run_dir(path)
    manifest = Manifest.load(run_dir)
    cls = lookup("store", manifest["store"], list_stores(), "store")
    return cls.read(run_dir, manifest.data)
