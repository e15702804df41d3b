"""ACME's emergency pickling: a value a container cannot hold is pickled per call instead.

The ``"hdf5"`` and ``"zarr"`` stores (without ``result_shape``) write such a
value as ``<fn>_<i>.pickle`` holding ``[value]``, as ACME does, log one warning
(its text is ACME's) and return the pickle's path for that call. Both write,
read and warn through this module, so the file format and the message exist once.
"""

from __future__ import annotations

import logging
import os
import pickle
from typing import Any

from acme_core.fileio import write_bytes_atomic

__all__ = ["read_emergency", "warn_pickled", "write_emergency"]

log = logging.getLogger("acme")


def write_emergency(path: str | os.PathLike[str], value: Any) -> None:
    """Pickle ``value`` to ``path`` atomically, as a list of its elements.

    ``[value]`` for a single value, a list or tuple as it is (ACME's format).
    """
    wrapped = value if isinstance(value, (list, tuple)) else [value]
    write_bytes_atomic(path, pickle.dumps(wrapped, protocol=pickle.HIGHEST_PROTOCOL))


def read_emergency(path: str | os.PathLike[str]) -> Any:
    """The value an emergency pickle holds (a single element unwrapped)."""
    with open(path, "rb") as fh:
        value = pickle.load(fh)
    return value[0] if isinstance(value, list) and len(value) == 1 else value


def warn_pickled(target: str | os.PathLike[str], error: object, container: str) -> None:
    """Log ACME's warning that ``target`` was pickled because a ``container`` could not hold it.

    ``error`` is what the library said (an exception, or its text).
    """
    log.warning("Could not write %s results have been pickled instead. Return values are most "
                "likely not suitable for storage in %s containers. Original error message: %s",
                target, container, error)
