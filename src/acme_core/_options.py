"""ParallelMap's keywords, each validated once, into one frozen :class:`RunOptions`.

ACME's messages are kept (tests and users rely on them); every error is an
:class:`~acme_core.errors.ArgumentError` naming the keyword, raised before any
cluster starts or any file is written.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from acme_core import validation
from acme_core.dryrun import validate as validate_dryrun
from acme_core.errors import ArgumentTypeError, ArgumentValueError, RunDirectoryError
from acme_core.prompts import can_ask

__all__ = ["BACKEND_KEYWORDS", "CLUSTER_KEYWORDS", "RESOURCE_NAMES", "RunOptions", "StackedShape", "validate_n_inputs",
           "validate_result_shape"]

#: ACME keywords that reach an executor class when its signature accepts them
CLUSTER_KEYWORDS = ("n_workers", "partition", "mem_per_worker", "setup_timeout",
                    "setup_interactive")

#: keywords beyond ACME's that only a backend can honour: it must name them in its
#: signature, or ParallelMap refuses them (they are never silently dropped)
BACKEND_KEYWORDS = ("resources", "retry_memory_factor")

#: the names ``resources`` accepts, and what each means
RESOURCE_NAMES = {
    "cores": "CPU cores per call's worker (an integer >= 1)",
    "gpus": "GPUs per call's worker (an integer >= 0)",
    "mem": "memory per call's worker, e.g. '8GB'",
}

def _auto_or(value: Any, name: str, check: Any, what: str, quote: bool = True) -> Any:
    """``"auto"``, or ``check(value)``; any other string names ``what`` is allowed.

    ``quote``: show the bad value as its repr (ACME shows ``n_workers`` bare).
    """
    if isinstance(value, str):
        if value != "auto":
            shown = repr(value) if quote else value
            raise ArgumentValueError(f"`{name}` has to be 'auto' or {what}, not {shown}",
                                     parameter=name)
        return value
    return check(value)


def _positive_int(name: str, low: int = 1) -> Any:
    return lambda value: int(validation.scalar(value, name, lims=(low, math.inf)))


def validate_n_inputs(n_inputs: Any) -> int | str:
    if isinstance(n_inputs, str):
        if n_inputs != "auto":
            raise ArgumentValueError(
                f"<ParallelMap> `n_inputs` has to be 'auto' or an integer >= 1, not {n_inputs}",
                parameter="n_inputs")
        return n_inputs
    return int(validation.scalar(n_inputs, "n_inputs", lims=(1, math.inf)))


def _path_or_none(value: Any, name: str, what: str) -> Path | None:
    if value is None:
        return None
    if not isinstance(value, (str, os.PathLike)):
        raise ArgumentTypeError(f"`{name}` has to be either `None` or {what}, not {value!r}",
                                parameter=name)
    if not os.fspath(value):  # "" would silently mean the current directory
        raise ArgumentValueError(f"`{name}` is empty; give a directory (\".\" for the current "
                                 "one) or None", parameter=name)
    _refuse_nul(value, name)
    return Path(os.path.abspath(os.path.expanduser(os.fspath(value))))


def _refuse_nul(value: str | os.PathLike[str], name: str) -> None:
    """No file name holds a NUL character (the OS would refuse it naming nothing)."""
    if "\x00" in str(os.fspath(value)):
        raise ArgumentValueError(f"`{name}` {str(os.fspath(value))!r} holds a NUL character, "
                                 "which no file name can hold", parameter=name)


def _validate_verbose(verbose: Any) -> bool | None:
    if verbose is not None and not isinstance(verbose, bool):
        raise ArgumentTypeError(
            f"<prepare_log> `verbose` has to be `True`, `False` or `None`, not {verbose}",
            parameter="verbose")
    return verbose


def _validate_logfile(logfile: Any) -> bool | Path | None:
    if logfile is None or isinstance(logfile, bool):
        return logfile
    if not isinstance(logfile, (str, os.PathLike)):
        raise ArgumentTypeError(f"`logfile` has to be `None`, `True`, `False` or a valid "
                                f"file-name, not {type(logfile)}", parameter="logfile")
    _refuse_nul(logfile, "logfile")
    path = Path(os.path.abspath(os.path.expanduser(os.fspath(logfile))))
    if path.is_dir():
        raise RunDirectoryError("`logfile` has to be `None`, `True`, `False` or a valid "
                                "file-name, not a directory")
    if not path.parent.is_dir():
        raise ArgumentValueError(f"`logfile` {str(logfile)!r}: the directory {path.parent} does "
                                 "not exist (acme-core does not create it for a log file)",
                                 parameter="logfile")
    return path


def _validate_stop_client(stop_client: Any) -> bool | str:
    if isinstance(stop_client, str):
        if stop_client != "auto":
            raise ArgumentValueError(f"`stop_client` has to be 'auto' or Boolean, not "
                                     f"{stop_client}", parameter="stop_client")
        return stop_client
    if not isinstance(stop_client, bool):
        raise ArgumentTypeError(f"`stop_client` has to be `True` or `False`, not "
                                f"{type(stop_client)}", parameter="stop_client")
    return stop_client


def _validate_partition(partition: Any) -> str:
    if not isinstance(partition, str):
        raise ArgumentTypeError(f"`partition` has to be 'auto' or a valid SLURM partition "
                                f"name, not {partition}", parameter="partition")
    return partition


def _validate_options_dict(value: Any, name: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
        raise ArgumentTypeError(f"`{name}` has to be a dict of keyword arguments or None, "
                                f"not {value!r}", parameter=name)
    return dict(value)


def _validate_progress(progress: Any) -> bool | str:
    if isinstance(progress, str) and progress == "auto":
        return progress
    if not isinstance(progress, bool):
        raise ArgumentValueError(f"`progress` has to be 'auto', True or False, not {progress!r}",
                                 parameter="progress")
    return progress


def _validate_timeout(timeout: Any) -> float | None:
    if timeout is None:
        return None
    return validation.scalar(timeout, "timeout", int_like=False, lims=(1e-3, math.inf))


def _validate_resources(resources: Any) -> dict[str, Any] | None:
    if resources is None:
        return None
    if not isinstance(resources, dict):
        raise ArgumentTypeError(f"`resources` has to be a dict such as {{'cores': 4, 'gpus': 1, "
                                f"'mem': '8GB'}} or None, not {resources!r}",
                                parameter="resources")
    unknown = sorted(set(resources) - set(RESOURCE_NAMES))
    if unknown:
        raise ArgumentValueError(f"`resources` has no {unknown}: it knows {RESOURCE_NAMES}",
                                 parameter="resources")
    out = dict(resources)
    if "cores" in out:
        out["cores"] = int(validation.scalar(out["cores"], "resources['cores']",
                                             lims=(1, math.inf)))
    if "gpus" in out:
        out["gpus"] = int(validation.scalar(out["gpus"], "resources['gpus']", lims=(0, math.inf)))
    if "mem" in out:
        validation.mem_spec(out["mem"], "resources['mem']")
    return out


def _validate_memory_factor(factor: Any) -> float | None:
    if factor is None:
        return None
    return validation.scalar(factor, "retry_memory_factor", int_like=False,
                             lims=(1.0, 64.0))


@dataclass(frozen=True)
class StackedShape:
    """A validated ``result_shape``: ``None`` replaced by the number of calls."""

    shape: tuple[float, ...]
    stacking_dim: int
    dtype: np.dtype[Any]


def validate_result_shape(result_shape: Any, result_dtype: Any, n_calls: int,
                          in_memory: bool) -> StackedShape | None:
    """ACME's checks, in ACME's order."""
    if result_shape is None:
        return None
    if not isinstance(result_shape, (list, tuple)):
        raise ArgumentTypeError(f"`result_shape` has to be either `None` or tuple, not "
                                f"{type(result_shape)}", parameter="result_shape")
    if not isinstance(result_dtype, str):
        raise ArgumentTypeError(f"`result_dtype` has to be a string, not {type(result_dtype)}",
                                parameter="result_dtype")
    if sum(1 for s in result_shape if s is None) != 1:
        raise ArgumentValueError("`result_shape` must contain exactly one `None` entry",
                                 parameter="result_shape")
    stacking_dim = list(result_shape).index(None)
    shape = list(result_shape)
    shape[stacking_dim] = n_calls
    _check_shape_entries(shape, in_memory)
    try:
        dtype = np.dtype(result_dtype)
    except TypeError as exc:
        raise ArgumentTypeError("`result_dtype` has to be a valid NumPy datatype "
                                f"specification. Original error message below:\n{exc}",
                                parameter="result_dtype") from None
    final = tuple(float(s) if math.isinf(s) else int(s) for s in shape)
    return StackedShape(final, stacking_dim, dtype)


def _check_shape_entries(shape: list[Any], in_memory: bool) -> None:
    def bad(message: str) -> ArgumentValueError:
        return ArgumentValueError(message, parameter="result_shape")

    infs = [s for s in shape if isinstance(s, float) and math.isinf(s)]
    if infs and in_memory:
        raise bad("using `np.inf` in `result_shape` is only valid if `write_worker_results` "
                  "is `True`")
    if len(infs) > 1:
        raise bad("cannot use more than one `np.inf` in `result_shape`")
    if any(isinstance(s, bool) or not isinstance(s, (int, float, np.integer, np.floating))
           for s in shape):
        raise bad("`result_shape` must only contain numerical values")
    for s in shape:
        if math.isinf(s):
            continue
        if math.isnan(s) or s < 0 or s != int(s):
            raise bad("`result_shape` must only contain non-negative integers")
    finite = [int(s) for s in shape if not math.isinf(s)]
    if math.prod(finite) >= 2 ** 63 or any(s >= 2 ** 63 for s in finite):
        # no file format or array holds more elements (h5py would fail with an OverflowError)
        raise bad(f"`result_shape` {tuple(shape)} is too large: a stacked result holds fewer "
                  "than 2**63 elements")


@dataclass(frozen=True)
class RunOptions:
    """Every ParallelMap keyword but the function's arguments, checked once.

    ``setup_interactive`` is already combined with whether anybody can answer
    (a terminal on stdin): it means nothing in a batch job or CI.
    """

    write_worker_results: bool = True
    output_dir: Path | None = None
    result_shape: Any = None
    result_dtype: Any = "float"
    single_file: bool = False
    write_pickle: bool = False
    partition: str = "auto"
    n_workers: int | str = "auto"
    mem_per_worker: str = "auto"
    setup_timeout: float = 60
    setup_interactive: bool = True
    stop_client: bool | str = "auto"
    verbose: bool | None = None
    dryrun: bool | str = False
    logfile: bool | Path | None = None
    cleanup_threshold_days: int | None = None
    backend: Any = "auto"
    store: Any = None
    backend_options: dict[str, Any] = field(default_factory=dict)
    store_options: dict[str, Any] = field(default_factory=dict)
    resume: bool = False
    retries: int = 0
    progress: bool | str = "auto"
    chunk_size: int | str = "auto"
    timeout: float | None = None
    resources: dict[str, Any] | None = None
    retry_memory_factor: float | None = None

    @classmethod
    def from_keywords(cls, **keywords: Any) -> RunOptions:
        """Validate ParallelMap's keywords (ACME's messages) and return them checked."""
        kw = {**{f: getattr(cls, f) for f in cls.__dataclass_fields__
                 if f not in ("backend_options", "store_options")}, **keywords}
        for name in ("write_worker_results", "single_file", "write_pickle", "resume",
                     "setup_interactive"):
            validation.boolean(kw[name], name)
        if kw["write_pickle"] and kw["single_file"]:
            raise ArgumentValueError("Pickling of results does not support single output file "
                                     "creation.", parameter="write_pickle")
        validation.scalar(kw["setup_timeout"], "setup_timeout", lims=(0, math.inf))
        validation.mem_spec(kw["mem_per_worker"])
        days = kw["cleanup_threshold_days"]
        return cls(**{
            **kw,
            "output_dir": _path_or_none(kw["output_dir"], "output_dir", "str"),
            "verbose": _validate_verbose(kw["verbose"]),
            "dryrun": validate_dryrun(kw["dryrun"]),
            "logfile": _validate_logfile(kw["logfile"]),
            "n_workers": _auto_or(kw["n_workers"], "n_workers", _positive_int("n_workers"),
                                  "an integer >= 1", quote=False),
            "stop_client": _validate_stop_client(kw["stop_client"]),
            "partition": _validate_partition(kw["partition"]),
            "backend_options": _validate_options_dict(kw.get("backend_options"),
                                                      "backend_options"),
            "store_options": _validate_options_dict(kw.get("store_options"), "store_options"),
            "retries": _positive_int("retries", 0)(kw["retries"]),
            "progress": _validate_progress(kw["progress"]),
            "chunk_size": _auto_or(kw["chunk_size"], "chunk_size", _positive_int("chunk_size"),
                                   "an integer >= 1"),
            "cleanup_threshold_days": None if days is None else
            _positive_int("cleanup_threshold_days", 0)(days),
            "setup_interactive": kw["setup_interactive"] and can_ask(),
            "timeout": _validate_timeout(kw["timeout"]),
            "resources": _validate_resources(kw["resources"]),
            "retry_memory_factor": _validate_memory_factor(kw["retry_memory_factor"]),
        })

    @property
    def cluster_keywords(self) -> dict[str, Any]:
        """ACME's cluster keywords, for executor classes whose signature names them."""
        return {name: getattr(self, name) for name in CLUSTER_KEYWORDS}

    @property
    def backend_requests(self) -> dict[str, Any]:
        """What the user asked of the backend beyond ACME's keywords (only what was given)."""
        return {name: getattr(self, name) for name in BACKEND_KEYWORDS
                if getattr(self, name) is not None}
