"""The ResultStore protocol: where results go and how they come back.

A store has two halves, because results are written where the call ran:

* the **driver-side store** (:class:`ResultStore`) lives in the process that
  called ``ParallelMap``. It prepares the run directory, hands out a writer,
  turns the per-call references into what ``compute()`` returns, and reads a
  finished run back for :func:`acme_core.open_results`;
* the **worker-side writer** (:class:`ResultWriter`) is small and picklable; it
  travels with every task and writes one call's return value, returning a
  *reference* (a file path, or the value itself for in-memory stores).

Writers must be atomic: a result is complete under its final name or absent
(write to a temporary name in the same directory, then ``os.replace``). A call
may be written twice (a retried call, or a chunk rerun after its worker died);
the second write must replace the first.

Optional capabilities
---------------------
A store class may also define

* ``check_run(run: RunInfo) -> None`` (:class:`ChecksRun`; a class method, or a
  method when the store's options matter): refuse, before anything is written
  or started, a run the store could not hold: a ``result_shape``/``result_dtype``
  its format has no equivalent for, options that do not fit them, a run
  directory holding files of another run. It raises an
  :class:`~acme_core.errors.ArgumentError` naming the keyword. ``ParallelMap``
  calls it at construction, after the store's options were checked and before
  the run directory is created; ``run.output_dir`` is None for a run directory
  that will be named automatically (it does not exist yet).

* ``begin_chunk(task_ids) -> None`` and ``end_chunk() -> None`` on the *writer*
  (:class:`WritesChunks`): a writer that keeps the calls of one task together
  (a shard file per task instead of a file per call). A worker calls
  ``begin_chunk`` with the task's call ids before its first call, ``write`` for
  each call as usual (which may only buffer the value, yet returns the call's
  reference), and ``end_chunk`` after the last call, before the task's results
  leave the worker. ``end_chunk`` makes every reference handed out since
  ``begin_chunk`` valid, atomically (complete or absent), or raises: then every
  call of the task that had succeeded is reported failed with that error and
  runs again like any failed call. A killed worker loses only its unfinished
  task. ``write`` outside ``begin_chunk``/``end_chunk`` (``debug=True``, the
  conformance tests) must store the call at once.

* ``block_calls(run: RunInfo) -> int | None`` on the *store* (:class:`WritesBlocks`):
  a store whose writers share files between the calls of one *block* (a zarr
  shard of ``B`` calls), blocks being ``range(k * B, (k + 1) * B)``. It returns
  ``B``, or None when this run has no blocks (then nothing below applies).
  The dispatcher (:mod:`acme_core.dispatch`) then keeps one rule: **no two tasks
  in flight hold calls of the same block**. A call whose block a task in flight
  holds waits in the queue until that task came back; this holds for every
  call, first runs, retries, a chunk's unfinished remainder, calls of a lost
  worker run one by one, resumed calls. Auto-sized chunks are cut at a block
  boundary when they would otherwise end inside a block whose next calls are
  queued (so those do not wait). So a writer may read, modify and replace a
  block's file at ``end_chunk`` without a lock: nobody else writes it
  meanwhile. Why a rule in the dispatcher and not locks: locks on shared
  file systems are unreliable or absent (NFS, Lustre without flock), and a
  killed worker would hold them; the dispatcher already knows every task in
  flight. Detached runs (job arrays) keep the same rule with their elements
  (:mod:`acme_core.detached`: elements cut at block boundaries, reruns waiting
  for their blocks).

What a reader trusts: ``read`` and ``existing`` derive every name from the
manifest's ``func_name`` and task ids (:func:`acme_core.run_directory.confined`),
``read`` returns a value only for calls the manifest lists as finished, and
unpickles only those it lists in ``pickled`` (see :mod:`acme_core.manifest`);
``resume`` adopts from ``existing`` only the calls the manifest lists, and
``existing`` reports a result only after opening it (an empty or truncated file
is not a result).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Protocol, runtime_checkable

import numpy as np

from acme_core.errors import PluginError, UsageError


@dataclass(frozen=True)
class RunInfo:
    """What a store is told about the run it prepares."""

    func_name: str
    n_calls: int
    #: the run directory; None for stores that write nothing
    output_dir: Path | None
    #: ACME's result_shape with ``None`` replaced by ``n_calls`` (or None)
    result_shape: tuple[float, ...] | None = None
    result_dtype: np.dtype | None = None
    stacking_dim: int | None = None
    #: True when finishing an earlier run in ``output_dir``: keep what is there
    resume: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class ResultWriter(Protocol):
    """Worker-side half of a store. Must be picklable."""

    def write(self, task_id: int, value: Any) -> Any:
        """Store ``value`` (what call ``task_id`` returned); return its reference."""
        ...


@runtime_checkable
class WritesChunks(ResultWriter, Protocol):
    """A writer that stores the calls of one task together (see the module docstring)."""

    def begin_chunk(self, task_ids: list[int]) -> None:
        """The calls ``task_ids`` are about to run in this process, in this order."""
        ...

    def end_chunk(self) -> None:
        """Make every call written since :meth:`begin_chunk` durable, or raise."""
        ...


@runtime_checkable
class WritesBlocks(Protocol):
    """A store whose calls share files per block (see the module docstring)."""

    def block_calls(self, run: RunInfo) -> int | None:
        """Calls per block of ``run`` (blocks are ``range(k * B, (k + 1) * B)``), or None."""
        ...


def block_calls_of(store: Any, run: RunInfo) -> int | None:
    """``store.block_calls(run)`` for a :class:`WritesBlocks` store (None otherwise).

    Raises
    ------
    acme_core.errors.PluginError
        The store answered something other than None or a positive integer.
    """
    if not isinstance(store, WritesBlocks):
        return None
    size = store.block_calls(run)
    if size is None:
        return None
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise PluginError(f"{type(store).__name__}.block_calls() returned {size!r}, not a "
                         "positive integer or None")
    return size


@runtime_checkable
class ChecksRun(Protocol):
    """A store class that checks a run before anything is written (see the module docstring)."""

    @classmethod
    def check_run(cls, run: RunInfo) -> None:
        """Raise an :class:`~acme_core.errors.ArgumentError` naming the keyword at fault."""
        ...


@runtime_checkable
class ResultStore(Protocol):
    """Driver-side half of a store (see the module docstring)."""

    #: registry name, e.g. ``"hdf5"``
    name: ClassVar[str]
    #: whether the store needs a run directory
    writes_files: ClassVar[bool]
    #: the aggregate container's path after ``finalize`` (or None)
    results_container: str | None

    def prepare(self, run: RunInfo) -> None:
        """Create directories and containers before any call runs."""
        ...

    def writer(self) -> ResultWriter:
        """Return the picklable writer that tasks use."""
        ...

    def finalize(self, references: list[Any], failed: set[int]) -> Any:
        """Turn per-call references (task order) into what ``compute()`` returns.

        ``references[i]`` is None for a call in ``failed``.
        """
        ...

    def existing(self) -> dict[int, Any]:
        """For resume: task id -> reference of every complete result on disk."""
        ...

    @classmethod
    def read(cls, run_dir: Path, manifest: dict[str, Any]) -> Any:
        """Read a finished run back as numpy values in task order."""
        ...


class BaseStore:
    """Convenience base with the defaults most stores want."""

    name: ClassVar[str] = ""
    writes_files: ClassVar[bool] = True
    #: optional dependencies, module -> pip extra (checked before a run starts)
    requires: ClassVar[dict[str, str]] = {}

    def __init__(self) -> None:
        self.results_container: str | None = None
        self.run: RunInfo | None = None

    @property
    def out(self) -> Path:
        """The run directory (once :meth:`prepare` was called)."""
        if self.run is None or self.run.output_dir is None:
            raise UsageError(f"{type(self).__name__} has no run directory before prepare()")
        return self.run.output_dir

    def prepare(self, run: RunInfo) -> None:
        self.run = run

    def existing(self) -> dict[int, Any]:
        return {}

    def finalize(self, references: list[Any], failed: set[int]) -> Any:
        return references

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"
