"""The failure report: the :class:`~acme_core.errors.ParallelMapError` of a run."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from acme_core._format import format_id_list
from acme_core.errors import ParallelMapError
from acme_core.task import CallOutcome

__all__ = ["failure_error", "storage_error"]

log = logging.getLogger("acme")


def failure_error(failures: dict[int, CallOutcome], results: list[Any], n_calls: int,
                  func_name: str, output_dir: Path | None) -> ParallelMapError:
    """The error ``compute()`` raises: how many failed, which, and the first traceback.

    The message is logged too, so the log file tells the whole story.
    """
    ids = sorted(failures)
    first = failures[ids[0]]
    where = (f" Finished results are kept in {output_dir}; rerun with resume=True and "
             f"output_dir={str(output_dir)!r} to run only the failed calls."
             if output_dir is not None else "")
    message = (f"Parallel computation failed: {len(ids)}/{n_calls} calls of `{func_name}` "
               f"failed (task ids: {format_id_list(ids)}).{where}\n"
               f"First failure, task {ids[0]} ({type(first.error).__name__}: {first.error}):\n"
               f"{first.traceback}")
    log.error(message)
    return ParallelMapError(
        message, failed={i: failures[i].error or RuntimeError("unknown error") for i in ids},
        results=results, tracebacks={i: failures[i].traceback for i in ids})


def storage_error(cause: OSError, failures: dict[int, CallOutcome], results: list[Any],
                  func_name: str, output_dir: Path | None) -> ParallelMapError:
    """The error when the run directory could not be written (a full or read-only disk,
    a removed directory): which calls finished, which failed, and the cause."""
    finished = [i for i, r in enumerate(results) if r is not None and i not in failures]
    ids = sorted(failures)
    message = (f"The run directory {output_dir} could not be written ({type(cause).__name__}: "
               f"{cause}). {len(finished)}/{len(results)} calls of `{func_name}` finished "
               f"(task ids: {format_id_list(finished)}), {len(ids)} failed"
               f"{f' (task ids: {format_id_list(ids)})' if ids else ''}. Free the disk or make "
               f"it writable, then rerun with resume=True and output_dir={str(output_dir)!r}: "
               "results that reached the disk are kept.")
    log.error(message)
    failed: dict[int, BaseException] = {i: failures[i].error or RuntimeError("unknown error")
                                        for i in ids}
    return ParallelMapError(message, failed=failed, results=results,
                            tracebacks={i: failures[i].traceback for i in ids})
