"""The ``"pickle"`` store (ACME's ``write_pickle=True``): one ``<fn>_<i>.pickle`` per call.

::

    <out>/<fn>_<i>.pickle      the call's raw return value, pickled

The module is called ``pickled`` rather than ``pickle`` so that its own
``import pickle`` (the standard library) reads unambiguously. ACME's emergency
pickles of the HDF5 and zarr stores share the file names but not the format
(they wrap the value in a list): see :mod:`acme_storage._emergency`.
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import Any, ClassVar

from acme_core.errors import ArgumentValueError
from acme_core.fileio import remove_partials, write_bytes_atomic
from acme_core.store import BaseStore, RunInfo
from acme_storage import _layout, _trust

__all__ = ["PickleStore", "PickleWriter"]


class PickleWriter:
    """Worker side: pickles call ``i``'s return value to ``<dir>/<fn>_<i>.pickle`` atomically."""

    def __init__(self, directory: str, func_name: str, protocol: int) -> None:
        self.directory = directory
        self.func_name = func_name
        self.protocol = protocol

    def write(self, task_id: int, value: Any) -> str:
        """Write call ``task_id``'s value; return the file's path."""
        path = _layout.call_file(Path(self.directory), self.func_name, task_id, ".pickle")
        write_bytes_atomic(path, pickle.dumps(value, protocol=self.protocol))
        return str(path)


class PickleStore(BaseStore):
    """Pickle each call's raw return value (``write_pickle=True``).

    Parameters
    ----------
    protocol : int
        Pickle protocol (default: :data:`pickle.HIGHEST_PROTOCOL`).
    """

    name: ClassVar[str] = "pickle"

    def __init__(self, protocol: int = pickle.HIGHEST_PROTOCOL) -> None:
        super().__init__()
        if isinstance(protocol, bool) or not isinstance(protocol, int) \
                or not 0 <= protocol <= pickle.HIGHEST_PROTOCOL:
            raise ArgumentValueError(f"`protocol` has to be a pickle protocol from 0 to "
                                     f"{pickle.HIGHEST_PROTOCOL}, not {protocol!r}",
                                     parameter="store_options")
        self.protocol = protocol

    @classmethod
    def check_run(cls, run: RunInfo) -> None:
        """Refuse a fresh run in a directory holding another run's pickles.

        Raises
        ------
        acme_core.errors.ArgumentValueError
            ``parameter="output_dir"``.
        """
        if not run.resume:
            _trust.refuse_leftovers(run.output_dir, (), run.func_name, (".pickle",))

    def prepare(self, run: RunInfo) -> None:
        """Create the run directory."""
        super().prepare(run)
        os.makedirs(self.out, exist_ok=True)

    def writer(self) -> PickleWriter:
        """The picklable writer the tasks use."""
        assert self.run is not None
        return PickleWriter(str(self.out), self.run.func_name, self.protocol)

    def finalize(self, references: list[Any], failed: set[int]) -> list[Any]:
        """Remove this run's temporaries a killed worker left; return the paths."""
        assert self.run is not None
        fn = self.run.func_name
        # this run's temporaries only: others may share the output directory
        remove_partials(self.out, match=lambda name: _layout.is_call_temporary(name, fn, ".pickle"))
        return references

    def existing(self) -> dict[int, Any]:
        """Task id -> path of every call's complete pickle in the run directory."""
        assert self.run is not None
        found = {}
        for entry in os.scandir(self.out):
            i = _layout.task_id_of(entry.name, self.run.func_name, ".pickle")
            if i is not None and i < self.run.n_calls and not entry.is_symlink() \
                    and _trust.whole_pickle(entry.path):  # a truncated file is no result
                found[i] = entry.path
        return found

    @classmethod
    def read(cls, run_dir: Path, manifest: dict[str, Any]) -> list[Any]:
        """Every finished call's unpickled value in task order (None for the others).

        A pickle is opened only for a call the manifest lists as finished (every
        finished call of a ``"pickle"`` run is a pickle), never through a symbolic link.
        """
        run = _trust.listed(run_dir, manifest)
        out = []
        for i in range(run.n_calls):
            path = _trust.inside(run_dir, _layout.call_name(run.func_name, i, ".pickle")) \
                if i in run.finished else None
            if path is not None:
                with open(path, "rb") as fh:
                    out.append(pickle.load(fh))
            else:
                out.append(None)
        return out
