"""What an element of the futures path runs: ``python -m acme_backends.arrays.task_element``.

::

    python -m acme_backends.arrays.task_element DIR RUN_ID BASE ELEMENT

Runs task ``BASE + ELEMENT`` of :class:`~acme_backends.arrays.tasks.TaskArrays`:
the signed task file is verified before it is unpickled, and the result (or the
exception) is written back signed, so the driver verifies it before unpickling.
"""

from __future__ import annotations

import pickle
import sys
from pathlib import Path

from acme_backends.arrays.tasks import result_name, task_name
from acme_core.signed import RunKey
from acme_core.task import portable_exception

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    """Run one task; 0 when its outcome (a value or an exception) was written."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 4:
        print("usage: python -m acme_backends.arrays.task_element DIR RUN_ID BASE ELEMENT",
              file=sys.stderr)
        return 2
    base = Path(args[0])
    key = RunKey.load(args[1])
    index = int(args[2]) + int(args[3])
    fn, fn_args, fn_kwargs = pickle.loads(key.read(base, task_name(index)))
    try:
        outcome = (True, fn(*fn_args, **fn_kwargs))
    except Exception as exc:  # the task's failure travels back as its outcome
        outcome = (False, portable_exception(exc))
    import cloudpickle

    key.write(base, result_name(index), cloudpickle.dumps(outcome))
    return 0


if __name__ == "__main__":  # pragma: no cover - run by the batch jobs
    sys.exit(main())
