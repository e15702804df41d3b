"""Validation of ParallelMap's keywords (ACME's messages), kept apart from the run logic."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from acme_core import validation


def validate_n_inputs(n_inputs: Any) -> int | str:
    if isinstance(n_inputs, str):
        if n_inputs != "auto":
            raise ValueError(
                f"<ParallelMap> `n_inputs` has to be 'auto' or an integer >= 2, not {n_inputs}")
        return n_inputs
    return int(validation.scalar(n_inputs, "n_inputs", lims=(1, math.inf)))


def validate_output_dir(output_dir: Any) -> Path | None:
    if output_dir is None:
        return None
    if not isinstance(output_dir, (str, os.PathLike)):
        raise TypeError(f"`output_dir` has to be either `None` or str, not {output_dir}")
    return Path(os.path.abspath(os.path.expanduser(os.fspath(output_dir))))


def validate_verbose(verbose: Any) -> bool | None:
    if verbose is not None and not isinstance(verbose, bool):
        raise TypeError(f"<prepare_log> `verbose` has to be `True`, `False` or `None`, not {verbose}")
    return verbose


def validate_logfile(logfile: Any) -> bool | Path | None:
    if logfile is None or isinstance(logfile, bool):
        return logfile
    if not isinstance(logfile, (str, os.PathLike)):
        raise TypeError(
            f"`logfile` has to be `None`, `True`, `False` or a valid file-name, not {type(logfile)}")
    path = Path(os.path.abspath(os.path.expanduser(os.fspath(logfile))))
    if path.is_dir():
        raise OSError("`logfile` has to be `None`, `True`, `False` or a valid file-name, not a directory")
    return path


def validate_result_shape(result_shape: Any, result_dtype: Any, n_calls: int, in_memory: bool
                          ) -> tuple[tuple[float, ...] | None, int | None, np.dtype | None]:
    """ACME's checks, in ACME's order; returns (shape with N filled in, stacking dim, dtype)."""
    if result_shape is None:
        return None, None, None
    if not isinstance(result_shape, (list, tuple)):
        raise TypeError(f"`result_shape` has to be either `None` or tuple, not {type(result_shape)}")
    if not isinstance(result_dtype, str):
        raise TypeError(f"`result_dtype` has to be a string, not {type(result_dtype)}")
    if sum(1 for s in result_shape if s is None) != 1:
        raise ValueError("`result_shape` must contain exactly one `None` entry")
    stacking_dim = list(result_shape).index(None)
    shape = list(result_shape)
    shape[stacking_dim] = n_calls
    infs = [s for s in shape if isinstance(s, float) and math.isinf(s)]
    if infs and in_memory:
        raise ValueError("using `np.inf` in `result_shape` is only valid if `write_worker_results` is `True`")
    if len(infs) > 1:
        raise ValueError("cannot use more than one `np.inf` in `result_shape`")
    if any(isinstance(s, bool) or not isinstance(s, (int, float, np.integer, np.floating)) for s in shape):
        raise ValueError("`result_shape` must only contain numerical values")
    for s in shape:
        if math.isinf(s):
            continue
        if math.isnan(s) or s < 0 or s != int(s):
            raise ValueError("`result_shape` must only contain non-negative integers")
    try:
        dtype = np.dtype(result_dtype)
    except TypeError as exc:
        raise TypeError("`result_dtype` has to be a valid NumPy datatype specification. Original "
                        f"error message below:\n{exc}") from None
    final = tuple(float(s) if math.isinf(s) else int(s) for s in shape)
    return final, stacking_dim, dtype


def validate_n_workers(n_workers: Any) -> int | str:
    if isinstance(n_workers, str):
        if n_workers != "auto":
            raise ValueError(f"`n_workers` has to be 'auto' or an integer >= 1, not {n_workers}")
        return n_workers
    return int(validation.scalar(n_workers, "n_workers", lims=(1, math.inf)))


def validate_stop_client(stop_client: Any) -> bool | str:
    if isinstance(stop_client, str):
        if stop_client != "auto":
            raise ValueError(f"`stop_client` has to be 'auto' or Boolean, not {stop_client}")
        return stop_client
    if not isinstance(stop_client, bool):
        raise TypeError(f"`stop_client` has to be `True` or `False`, not {type(stop_client)}")
    return stop_client


def validate_partition(partition: Any) -> str:
    if not isinstance(partition, str):
        raise TypeError(f"`partition` has to be 'auto' or a valid SLURM partition name, not {partition}")
    return partition


def validate_options_dict(value: Any, name: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
        raise TypeError(f"`{name}` has to be a dict of keyword arguments or None, not {value!r}")
    return dict(value)


def validate_progress(progress: Any) -> bool | str:
    if progress == "auto" and isinstance(progress, str):
        return progress
    if not isinstance(progress, bool):
        raise ValueError(f"`progress` has to be 'auto', True or False, not {progress!r}")
    return progress


def validate_chunk_size(chunk_size: Any) -> int | str:
    if isinstance(chunk_size, str):
        if chunk_size != "auto":
            raise ValueError(f"`chunk_size` has to be 'auto' or an integer >= 1, not {chunk_size!r}")
        return chunk_size
    return int(validation.scalar(chunk_size, "chunk_size", lims=(1, math.inf)))


def validate_cleanup_days(days: Any) -> int | None:
    if days is None:
        return None
    return int(validation.scalar(days, "cleanup_threshold_days", lims=(0, math.inf)))
