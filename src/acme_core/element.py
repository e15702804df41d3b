"""The program every element of a detached run executes: ``python -m acme_core.element``.

::

    python -m acme_core.element [--cwd DIR] RUN_DIR RUN_ID BATCH ELEMENT

An element reads the run's context (function, result writer, shared arguments)
and its own chunk of calls from the run directory, **verifying** both against the
run's key (:mod:`acme_core.signed`) before unpickling them, runs the calls
through the same worker-side code as every other backend
(:func:`acme_core.task.run_chunk_calls`: each call its own result, failure and
timeout) and the same store writer, and reports what happened as **JSON lines**
(never pickle) in ``.acme_detached/outcomes/BATCH-ELEMENT.jsonl``:

``{"start": {...}}``
    The element started (host, process id, job id).
``{"ok": [ids], "refs": [...], "failed": [...], "seconds": s}``
    A piece of the chunk finished; one line about every second, so the driver's
    progress bar moves while long elements run. A failure is
    ``{"id", "type", "message", "traceback", "binding"}``.
``{"fatal": text}``
    The element could not run its calls at all (a file that failed
    authentication, a context that cannot be unpickled).
``{"end": true}``
    The element finished. An element that ended without this line was killed
    (cancelled, out of memory or time, node lost): its unfinished calls run again.

With ``ACME_ELEMENT_MEMORY`` (bytes) in its environment, an element stops itself
when its resident memory passes 95% of it, saying so in its job log
(:mod:`acme_core._memory_guard`).

The layout names are derived from integers only (:func:`chunk_name`,
:func:`outcome_name`), never read from a file.
"""

from __future__ import annotations

import json
import os
import pickle
import socket
import sys
import time
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from acme_core._memory_guard import ENV as MEMORY_ENV
from acme_core._memory_guard import MemoryGuard
from acme_core.errors import CallTimeoutError
from acme_core.run_directory import confined
from acme_core.signed import RunKey
from acme_core.task import Chunk, ChunkResult, run_chunk_calls

__all__ = ["CONTEXT_NAME", "DETACHED_DIR", "MEMORY_ENV", "OUTCOMES_DIR", "PIECE_SECONDS", "chunk_name",
           "load_chunk", "main", "outcome_name", "run_element"]

#: the detached run's own directory inside the run directory
DETACHED_DIR = ".acme_detached"
#: the signed, cloudpickled context (function, writer, shared arguments)
CONTEXT_NAME = f"{DETACHED_DIR}/context.bin"
OUTCOMES_DIR = f"{DETACHED_DIR}/outcomes"
#: an element reports its finished calls about this often (seconds of work per piece)
PIECE_SECONDS = 1.0
#: calls per piece at most (bounds one JSON line)
MAX_PIECE_CALLS = 5000


def chunk_name(batch: int, element: int) -> str:
    """The signed chunk file of ``element`` of ``batch`` (relative to the run directory)."""
    return f"{DETACHED_DIR}/chunks/{int(batch)}-{int(element)}.bin"


def outcome_name(batch: int, element: int) -> str:
    """The JSON-lines outcome file of ``element`` of ``batch``."""
    return f"{OUTCOMES_DIR}/{int(batch)}-{int(element)}.jsonl"


def load_chunk(key: RunKey, base: Path, batch: int, element: int) -> Chunk:
    """The element's chunk: pickled calls, or (resubmitted calls) a JSON list of the
    calls to take from earlier elements' chunks, ``[[batch, element, [ids]], ...]``."""
    data = key.read(base, chunk_name(batch, element))
    if data[:1] == b"P":
        chunk: Chunk = pickle.loads(data[1:])
        return chunk
    parts = []
    for b, e, ids in json.loads(data[1:]):
        source = load_chunk(key, base, int(b), int(e))
        wanted = {int(i) for i in ids}
        keep = [j for j, i in enumerate(source.task_ids) if i in wanted]
        parts.append(Chunk([source.task_ids[j] for j in keep],
                           {k: [v[j] for j in keep] for k, v in source.args.items()},
                           {k: [v[j] for j in keep] for k, v in source.kwargs.items()},
                           None, source.timeout))
    merged = parts[0]
    for part in parts[1:]:
        merged.task_ids += part.task_ids
        for index, values in part.args.items():
            merged.args[index] += values
        for name, more in part.kwargs.items():
            merged.kwargs[name] += more
    return merged


def _piece(chunk: Chunk, start: int, stop: int) -> Chunk:
    return Chunk(chunk.task_ids[start:stop], {k: v[start:stop] for k, v in chunk.args.items()},
                 {k: v[start:stop] for k, v in chunk.kwargs.items()}, None, chunk.timeout)


def _pieces(chunk: Chunk, per_call: list[float]) -> Iterator[Chunk]:
    """The chunk in pieces of about :data:`PIECE_SECONDS` (the first is one call)."""
    start, n = 0, len(chunk)
    while start < n:
        size = 1 if not per_call else int(PIECE_SECONDS / max(per_call[-1], 1e-6))
        stop = min(n, start + max(1, min(size, MAX_PIECE_CALLS)))
        yield _piece(chunk, start, stop)
        start = stop


def _jsonable(reference: Any) -> Any:
    """A store reference as JSON (paths and numbers); anything else is dropped."""
    return reference if isinstance(reference, (str, int, float, bool, type(None))) else None


def _limit(error: BaseException | None) -> dict[str, float]:
    """A time limit's seconds, so the driver rebuilds the :class:`CallTimeoutError`."""
    return {"limit": error.limit} if isinstance(error, CallTimeoutError) else {}


def _record(result: ChunkResult) -> dict[str, Any]:
    failed = [{"id": o.task_id, "type": type(o.error).__name__ if o.error else "Error",
               "message": str(o.error)[:2000], "traceback": o.traceback[-20000:],
               "binding": o.binding_error, **_limit(o.error)} for o in result.failed]
    return {"ok": result.ok_ids, "refs": [_jsonable(r) for r in result.references],
            "failed": failed, "seconds": result.seconds}


def _line(fh: IO[str], record: dict[str, Any]) -> None:
    fh.write(json.dumps(record) + "\n")
    fh.flush()
    os.fsync(fh.fileno())  # the driver may read from another node


def run_element(run_dir: str | os.PathLike[str], run_id: str, batch: int, element: int) -> int:
    """Run one element's calls (see the module docstring); the process's exit code."""
    base = Path(run_dir)
    job = os.environ.get("SLURM_JOB_ID") or os.environ.get("JOB_ID") or ""
    with open(confined(base, outcome_name(batch, element)), "a", encoding="utf-8") as fh:
        _line(fh, {"start": {"host": socket.gethostname(), "pid": os.getpid(), "job": job}})
        try:
            key = RunKey.load(run_id)
            context = pickle.loads(key.read(base, CONTEXT_NAME))
            chunk = load_chunk(key, base, batch, element)
        except Exception as exc:  # nothing can run: say why, once, for every call
            _line(fh, {"fatal": f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}"})
            _line(fh, {"end": True})
            return 1
        per_call: list[float] = []
        stuck = 0
        guard = MemoryGuard.from_environment()
        for piece in _pieces(chunk, per_call):
            started = time.perf_counter()
            result = run_chunk_calls(context.func, context.writer, context.n_args,
                                     context.pass_task_id, context.shared, piece)
            per_call.append((time.perf_counter() - started) / len(piece))
            stuck += result.stuck
            _line(fh, _record(result))
        if guard is not None:
            guard.stop()
        _line(fh, {"end": True})
    return 0 if not stuck else 3


def main(argv: list[str] | None = None) -> int:
    """``python -m acme_core.element [--cwd DIR] RUN_DIR RUN_ID BATCH ELEMENT``.

    ``--cwd``: the driver's directory, where the calls run (relative paths and the
    imports of the user's modules resolve as in the driver).
    """
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["--cwd"] and len(args) > 1:
        os.chdir(args[1])
        args = args[2:]
    if len(args) != 4:
        print("usage: python -m acme_core.element [--cwd DIR] RUN_DIR RUN_ID BATCH ELEMENT",
              file=sys.stderr)
        return 2
    return run_element(args[0], args[1], int(args[2]), int(args[3]))


if __name__ == "__main__":  # pragma: no cover - run by the batch jobs
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    # a call stuck past its timeout keeps a thread busy: end the element anyway
    os._exit(code)
