"""The ``"pickle"`` store: one ``<fn>_<i>.pickle`` per call in the run directory."""

from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import Any, ClassVar

from acme_core.fileio import remove_partials, write_bytes_atomic
from acme_core.store import BaseStore, RunInfo
from acme_storage import naming


def write_emergency(path: str | os.PathLike[str], value: Any) -> None:
    """ACME's emergency pickling of a value a container cannot hold, atomically.

    The file holds the value as a list of its elements (``[value]``, a list or
    tuple as it is), as ACME writes it.
    """
    wrapped = value if isinstance(value, (list, tuple)) else [value]
    write_bytes_atomic(path, pickle.dumps(wrapped, protocol=pickle.HIGHEST_PROTOCOL))


def read_emergency(path: str | os.PathLike[str]) -> Any:
    """The value an emergency pickle holds (a single element unwrapped)."""
    with open(path, "rb") as fh:
        value = pickle.load(fh)
    return value[0] if isinstance(value, list) and len(value) == 1 else value


class PickleWriter:
    def __init__(self, directory: str, func_name: str, protocol: int) -> None:
        self.directory = directory
        self.func_name = func_name
        self.protocol = protocol

    def write(self, task_id: int, value: Any) -> str:
        path = naming.call_file(Path(self.directory), self.func_name, task_id, ".pickle")
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
        self.protocol = protocol

    def prepare(self, run: RunInfo) -> None:
        super().prepare(run)
        assert run.output_dir is not None
        os.makedirs(run.output_dir, exist_ok=True)

    def writer(self) -> PickleWriter:
        assert self.run is not None and self.run.output_dir is not None
        return PickleWriter(str(self.run.output_dir), self.run.func_name, self.protocol)

    def finalize(self, references: list[Any], failed: set[int]) -> list[Any]:
        assert self.run is not None and self.run.output_dir is not None
        fn = self.run.func_name
        # this run's temporaries only: others may share the output directory
        remove_partials(self.run.output_dir,
                        match=lambda name: naming.is_call_temporary(name, fn, ".pickle"))
        return references

    def existing(self) -> dict[int, Any]:
        assert self.run is not None and self.run.output_dir is not None
        found = {}
        for entry in os.scandir(self.run.output_dir):
            i = naming.task_id_of(entry.name, self.run.func_name, ".pickle")
            if i is not None and i < self.run.n_calls:
                found[i] = entry.path
        return found

    @classmethod
    def read(cls, run_dir: Path, manifest: dict[str, Any]) -> list[Any]:
        out = []
        for i in range(int(manifest["n_calls"])):
            path = naming.call_file(run_dir, manifest["func_name"], i, ".pickle")
            if path.exists():
                with open(path, "rb") as fh:
                    out.append(pickle.load(fh))
            else:
                out.append(None)
        return out
