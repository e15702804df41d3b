"""ACME's result flags and the store names they mean: one table, one module.

``write_worker_results``, ``single_file`` and ``write_pickle`` are ACME's public
API, and each combination *is* a store name; this is the one place in the core
that names built-in stores, as ACME-compatibility data.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from acme_core.errors import ArgumentValueError

__all__ = ["Flags", "warn_ignored_flags"]

log = logging.getLogger("acme")

#: (write_worker_results, write_pickle, single_file) -> store; the first match wins
FLAG_STORES: tuple[tuple[tuple[bool | None, bool | None, bool | None], str], ...] = (
    ((False, None, None), "memory"),
    ((True, True, None), "pickle"),
    ((True, False, True), "hdf5-single"),
    ((True, False, False), "hdf5"),
)

#: store -> store_options ACME's rules add when the function declares ``taskID``
#: (ACME: such a function handles its own output, so nothing is collected)
TASK_ID_STORE_OPTIONS: dict[str, dict[str, Any]] = {"memory": {"collect": False}}


@dataclass(frozen=True)
class Flags:
    """ACME's three result flags."""

    write_worker_results: bool = True
    single_file: bool = False
    write_pickle: bool = False

    def store(self) -> str:
        """The store name the flags mean."""
        values = (self.write_worker_results, self.write_pickle, self.single_file)
        for pattern, name in FLAG_STORES:
            if all(p is None or p == v for p, v in zip(pattern, values, strict=True)):
                return name
        raise AssertionError(f"no store for flags {values}")  # the table covers every case

    def check_store(self, store: str | None) -> None:
        """Refuse a ``store`` that contradicts the flags the user set."""
        contradictions = []
        if not self.write_worker_results and store != "memory":
            contradictions.append("write_worker_results=False")
        if self.write_pickle and store != "pickle":
            contradictions.append("write_pickle=True")
        if self.single_file and self.write_worker_results and store != "hdf5-single":
            contradictions.append("single_file=True")
        if contradictions:
            raise ArgumentValueError(
                f"`store` {store!r} contradicts {', '.join(contradictions)} (that means store "
                f"{self.store()!r}); give one or the other", parameter="store")


def warn_ignored_flags(flags: Flags, output_dir: Any, result_shape: Any) -> Any:
    """ACME's warnings for flags without effect; returns ``result_shape`` as it applies.

    A pickle store cannot stack results: ACME warns and drops ``result_shape``.
    """
    if flags.write_pickle and result_shape is not None and flags.write_worker_results:
        log.warning("Pickling of results does not support output array shape specification.")
        result_shape = None
    if not flags.write_worker_results:
        if flags.write_pickle:
            log.warning("Pickling of results only possible if `write_worker_results` is `True`")
        if flags.single_file:
            log.warning("Generating a single output file only possible if "
                        "`write_worker_results` is `True`.")
        if output_dir is not None:
            log.warning("Output directory specification has no effect if "
                        "`write_worker_results` is `False`.")
    return result_shape
