"""ACME's argument distribution: how ``ParallelMap(func, *args, **kwargs)`` becomes calls.

Rules (ACME's, see the user guide):

* the number of calls ``n_inputs`` is inferred from the lengths of list, tuple
  and 1-D array arguments (``range`` counts as a list); candidates of different
  lengths are ambiguous and need an explicit ``n_inputs``;
* a list/tuple of length N, or an array whose first axis has length N and that
  squeezes to 1-D, is split: call *i* gets element *i*;
* everything else (scalars, strings, dicts, other arrays, lists of another
  length) is shared by every call and sent to each worker once;
* a positional parameter given by name is moved into place;
* a keyword argument whose default is an array is always shared.
"""

from __future__ import annotations

import inspect
import itertools
import logging
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from acme_core.errors import ArgumentTypeError, ArgumentValueError
from acme_core.task import TASK_ID, Call, Chunk, Shared

log = logging.getLogger("acme")

#: arguments bigger than this (in MB) get a warning: every worker receives them
MAX_ARG_SIZE_MB = 1024


@dataclass
class Distribution:
    """The outcome of distributing ``args``/``kwargs`` over ``n_calls`` calls."""

    n_calls: int
    n_args: int
    shared: Shared
    #: positional index -> per-call values (length n_calls)
    split_args: dict[int, list[Any]] = field(default_factory=dict)
    #: keyword -> per-call values (length n_calls)
    split_kwargs: dict[str, list[Any]] = field(default_factory=dict)
    pass_task_id: bool = False

    def call(self, task_id: int) -> Call:
        """The per-call arguments of call ``task_id``."""
        return Call(
            task_id,
            {i: values[task_id] for i, values in self.split_args.items()},
            {k: values[task_id] for k, values in self.split_kwargs.items()},
        )

    def chunk(self, task_ids: list[int], budget: float | None = None) -> Chunk:
        """The calls ``task_ids`` as one :class:`Chunk`: each split argument as a column.

        A run of consecutive ids (the usual case) is sliced out of the argument
        lists in one step; no per-call object is built in the driver.
        """
        if not task_ids:
            return Chunk([], {i: [] for i in self.split_args}, {k: [] for k in self.split_kwargs},
                         budget)
        first, last = task_ids[0], task_ids[-1]
        if last - first == len(task_ids) - 1 and task_ids == list(range(first, last + 1)):
            def take(values: list[Any]) -> list[Any]:
                return values[first:last + 1]
        else:
            def take(values: list[Any]) -> list[Any]:
                return [values[i] for i in task_ids]
        return Chunk(list(task_ids), {i: take(v) for i, v in self.split_args.items()},
                     {k: take(v) for k, v in self.split_kwargs.items()}, budget)

    def iter_arguments(self) -> Iterator[tuple[list[Any], dict[str, Any]]]:
        """Every call's full ``(args, kwargs)``, in task order (for in-process runs)."""
        from acme_core.task import assemble

        for i in range(self.n_calls):
            yield assemble(self.n_args, self.shared, self.call(i), self.pass_task_id)


class shared:  # noqa: N801 - used like a function: ParallelMap(f, xs, shared(ys))
    """Pass ``value`` whole to every call, whatever its length.

    ACME's rules split a list, tuple or 1-D array whose length is the number of
    calls; wrapped in ``shared``, such a value goes to every call as it is (and it
    does not count when ``n_inputs`` is inferred).

    Examples
    --------
    >>> from acme_core import ParallelMap, shared
    >>> def f(x, freqs):
    ...     return x * sum(freqs)
    >>> with ParallelMap(f, [1, 2], shared([30, 50]), write_worker_results=False,
    ...                  progress=False) as pmap:
    ...     pmap.compute()
    [80, 160]
    """

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value

    def __repr__(self) -> str:
        return f"shared({self.value!r})"


def _unwrap(value: Any) -> Any:
    return value.value if isinstance(value, shared) else value


def _length(value: Any) -> int | None:
    """The length a value contributes to ``n_inputs`` inference, or None."""
    if isinstance(value, (list, tuple)):
        return len(value)
    if isinstance(value, np.ndarray) and value.squeeze().ndim == 1:
        return int(value.squeeze().size)
    return None


def _splittable(value: Any, n: int) -> bool:
    if isinstance(value, (list, tuple)):
        return len(value) == n
    if isinstance(value, np.ndarray) and value.ndim >= 1:
        return value.squeeze().ndim == 1 and value.shape[0] == n
    return False


def _split(value: Any) -> list[Any]:
    return list(value)


def describe_func(func: Any) -> str:
    return getattr(func, "__name__", type(func).__name__)


def check_callable(func: Any) -> inspect.Signature:
    """Check that ``func`` is a callable with an inspectable signature."""
    if not callable(func):
        raise ArgumentTypeError(f"<ParallelMap> first input has to be a callable function, not "
                                f"{type(func)}", parameter="func")
    try:
        return inspect.signature(func)
    except (TypeError, ValueError) as exc:
        raise ArgumentTypeError(
            f"<ParallelMap> cannot inspect the signature of {describe_func(func)!r} ({exc}); "
            "wrap it in a Python function", parameter="func") from None


@dataclass(frozen=True)
class _Params:
    """What the distribution rules need to know about ``func``'s parameters."""

    name: str
    #: positional parameters without a default, in order
    positional: tuple[inspect.Parameter, ...]
    #: parameters with a default that may be given by keyword
    keyword: dict[str, inspect.Parameter]
    required_kwonly: tuple[str, ...]
    has_varargs: bool
    has_varkw: bool

    @classmethod
    def of(cls, func: Callable[..., Any]) -> _Params:
        params = list(check_callable(func).parameters.values())
        return cls(
            name=describe_func(func),
            positional=tuple(p for p in params if p.kind in (
                p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.default is p.empty),
            keyword={p.name: p for p in params if p.kind in (
                p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.default is not p.empty},
            required_kwonly=tuple(p.name for p in params
                                  if p.kind is p.KEYWORD_ONLY and p.default is p.empty),
            has_varargs=any(p.kind is p.VAR_POSITIONAL for p in params),
            has_varkw=any(p.kind is p.VAR_KEYWORD for p in params))

    @property
    def pass_task_id(self) -> bool:
        return TASK_ID in self.keyword or TASK_ID in self.required_kwonly

    def default(self, key: str) -> Any:
        return self.keyword[key].default if key in self.keyword else inspect.Parameter.empty


def _bind(params: _Params, args: tuple[Any, ...],
          kwargs: dict[str, Any]) -> tuple[list[Any], dict[str, Any]]:
    """ACME's binding: ranges become lists, positional parameters given by name move into place.

    ACME inserts them at their index: ``ParallelMap(f, 4, x=[...])`` means
    ``f(x=[...][i], y=4)``.
    """
    args_list = [list(a) if isinstance(a, range) else a for a in args]
    kwargs = {k: (list(v) if isinstance(v, range) else v) for k, v in kwargs.items()}
    kwargs.pop(TASK_ID, None)  # filled in per call when func declares it
    for index, param in enumerate(params.positional):
        if param.name in kwargs and param.kind is not param.POSITIONAL_ONLY:
            args_list.insert(index, kwargs.pop(param.name))
    _check_arity(params, args_list, kwargs)
    return args_list, kwargs


def _check_arity(params: _Params, args_list: list[Any], kwargs: dict[str, Any]) -> None:
    name, positional = params.name, params.positional
    names = tuple(p.name for p in positional)
    if len(args_list) < len(positional) or (len(args_list) > len(positional)
                                            and not params.has_varargs):
        raise ArgumentValueError(
            f"<ParallelMap> {name} expects {len(positional)} positional arguments "
            f"{_tuple(names)}, found {len(args_list)}", parameter="args")
    missing = [k for k in params.required_kwonly if k not in kwargs and k != TASK_ID]
    if missing:
        raise ArgumentValueError(f"<ParallelMap> {name} requires the keyword arguments "
                                 f"{missing}, found none for them", parameter="kwargs")
    unknown = [k for k in kwargs if k not in params.keyword and k not in params.required_kwonly]
    if unknown and not params.has_varkw:
        raise ArgumentValueError(
            f"<ParallelMap> {name} accepts at maximum {len(params.keyword)} keyword arguments "
            f"{_tuple(tuple(params.keyword))}, found {len(kwargs)} (unknown: "
            f"{', '.join(map(repr, unknown))})", parameter="kwargs")


def _infer_n_calls(params: _Params, args_list: list[Any], kwargs: dict[str, Any],
                   n_inputs: int | str) -> int:
    """ACME's ``n_inputs`` rules: the one length of the list/tuple/1-D array arguments."""
    lengths = [n for n in (_length(a) for a in args_list) if n is not None]
    for key, value in kwargs.items():
        default = params.default(key)
        if isinstance(value, (list, tuple)):
            if isinstance(default, (list, tuple)) and len(default) == len(value):
                continue
            lengths.append(len(value))
        elif isinstance(value, np.ndarray) and not isinstance(default, np.ndarray):
            n = _length(value)
            if n is not None:
                lengths.append(n)
    if n_inputs == "auto":
        if len(set(lengths)) != 1:
            raise ArgumentValueError(
                f"<ParallelMap> automatic input distribution failed: found {len(lengths)} "
                f"objects containing {min(lengths, default=0)} to {max(lengths, default=0)} "
                "elements. Please specify `n_inputs` manually. ", parameter="n_inputs")
        return lengths[0]
    n_calls = int(n_inputs)
    if n_calls not in set(lengths) and not all(n == 1 for n in lengths):
        raise ArgumentValueError(
            f"<ParallelMap> No object has required length of {n_calls} matching `n_inputs`. ",
            parameter="n_inputs")
    return n_calls


def _share(value: Any, what: str, key: str | None = None) -> Any:
    """A shared argument: warn when it is a callable (ACME's wording) or very large."""
    if callable(value):
        where = "positional arguments" if key is None else f"keyword arguments: {key}"
        log.warning("Found a single callable object in %s. It will be executed just once and "
                    "shared by all workers", where)
    _check_size(value, what)
    return value


def distribute(func: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any],
               n_inputs: int | str = "auto") -> Distribution:
    """Apply the distribution rules (module docstring); raise an ArgumentError on bad input."""
    params = _Params.of(func)
    args_list, kwargs = _bind(params, args, kwargs)
    n_calls = _infer_n_calls(params, args_list, kwargs, n_inputs)
    dist = Distribution(n_calls=n_calls, n_args=len(args_list), shared=Shared(),
                        pass_task_id=params.pass_task_id)
    for index, value in enumerate(args_list):
        if _splittable(value, n_calls):
            dist.split_args[index] = _split(value)
        else:
            dist.shared.args[index] = _share(_unwrap(value), f"positional argument {index}")
    for key, value in kwargs.items():
        if not isinstance(params.default(key), np.ndarray) and _splittable(value, n_calls):
            dist.split_kwargs[key] = _split(value)
        else:
            dist.shared.kwargs[key] = _share(_unwrap(value), f"keyword argument {key!r}", key)
    return dist


def kwargv_of(dist: Distribution) -> dict[str, list[Any]]:
    """ACME's ``pmap.kwargv``: keyword -> per-call values (N of them) or ``[shared value]``."""
    view = {key: list(values) for key, values in dist.split_kwargs.items()}
    view.update({key: [value] for key, value in dist.shared.kwargs.items()})
    return view


def apply_kwargv(dist: Distribution, kwargv: dict[str, list[Any]]) -> bool:
    """Apply edits of an ACME ``kwargv`` view to ``dist``, as ACME honours them.

    ``kwargv[key] = [value]`` shares ``value`` whole with every call (what Syncopy does to
    keep a list of length N together); a list of N values splits. Returns whether
    anything changed.
    """
    if kwargv == kwargv_of(dist):
        return False
    unknown = sorted(set(kwargv) - set(dist.split_kwargs) - set(dist.shared.kwargs))
    if unknown:
        raise ArgumentValueError(f"`kwargv` got keywords the ParallelMap was not given: "
                                 f"{unknown}", parameter="kwargv")
    for key, values in kwargv.items():
        if not isinstance(values, list) or len(values) not in (1, dist.n_calls):
            raise ArgumentValueError(
                f"`kwargv[{key!r}]` has to be a list of 1 (shared) or {dist.n_calls} (one per "
                f"call) values, not {type(values).__name__} of length "
                f"{len(values) if isinstance(values, list) else '?'}", parameter="kwargv")
        dist.split_kwargs.pop(key, None)
        dist.shared.kwargs.pop(key, None)
        if len(values) == dist.n_calls and dist.n_calls > 1:
            dist.split_kwargs[key] = list(values)
        else:
            dist.shared.kwargs[key] = values[0]
    return True


class _Discard:
    """A file that forgets what is written to it (pickling only to see whether it works)."""

    def write(self, data: bytes) -> int:
        return len(data)


def _out_of_band(buffer: Any) -> None:
    """Keep array buffers out of the pickle (protocol 5): nothing is copied."""


def _picklable(value: Any) -> Exception | None:
    """None when ``value`` pickles (as it will travel to the workers), else why not.

    Array buffers go out of band (protocol 5) and are never copied, so checking a
    large argument costs little more than walking it.
    """
    import cloudpickle

    try:
        cloudpickle.CloudPickler(_Discard(), protocol=5, buffer_callback=_out_of_band).dump(value)
    except Exception as exc:
        return exc
    return None


def check_picklable(func: Callable[..., Any], dist: Distribution,
                    sendable: Callable[[Any], None] | None = None) -> None:
    """Refuse, naming it, a function or argument that cannot travel to the workers.

    ``sendable``: the executor's own check for shared arguments, which it
    broadcasts with serializers of its own (dask sends a read-only ``h5py.Dataset``
    by reference); without it, shared arguments must pickle too.
    """
    candidates: list[tuple[str, str, Any, Callable[[Any], Exception | None]]] = [
        ("func", "the function", func, _picklable)]
    check_shared = _picklable if sendable is None else _checked_by(sendable)
    candidates += [("args", f"positional argument {i} (shared)", v, check_shared)
                   for i, v in dist.shared.args.items()]
    candidates += [("kwargs", f"keyword argument {k!r} (shared)", v, check_shared)
                   for k, v in dist.shared.kwargs.items()]
    for i, values in dist.split_args.items():
        candidates += [("args", f"positional argument {i}, element {j}", v, _picklable)
                       for j, v in enumerate(values)]
    for k, values in dist.split_kwargs.items():
        candidates += [("kwargs", f"keyword argument {k!r}, element {j}", v, _picklable)
                       for j, v in enumerate(values)]
    for parameter, what, value, check in candidates:
        problem = check(value)
        if problem is not None:
            raise ArgumentTypeError(
                f"<ParallelMap> {what} cannot be sent to the workers: it cannot be pickled "
                f"({type(problem).__name__}: {problem}). Pass what it is made from instead "
                "(a file name rather than an open file, no locks or connections), or run on "
                "threads of this process (a ThreadPoolExecutor backend)", parameter=parameter)


def _checked_by(sendable: Callable[[Any], None]) -> Callable[[Any], Exception | None]:
    def check(value: Any) -> Exception | None:
        try:
            sendable(value)
        except Exception as exc:
            return exc
        return None

    return check


def _tuple(names: tuple[str, ...]) -> str:
    return "(" + ", ".join(repr(n) for n in names) + ")"


def approx_size(obj: Any, _depth: int = 0) -> int:
    """Approximate memory of ``obj`` in bytes: arrays by their data, containers by content.

    Large containers are sampled (the first 1000 items, scaled up), so this stays
    cheap for any argument.
    """
    if isinstance(obj, np.ndarray) and obj.dtype != object:
        return int(obj.nbytes)
    if isinstance(obj, (bytes, bytearray, memoryview)):
        return len(obj)
    if isinstance(obj, str):
        return sys.getsizeof(obj)
    nbytes = getattr(obj, "nbytes", None)  # array-likes (dask, xarray, zarr, h5py datasets)
    if (isinstance(nbytes, (int, np.integer)) and not isinstance(obj, type)
            and not isinstance(obj, np.ndarray)):
        return int(nbytes)
    if _depth < 4:
        sample: list[Any] | None = None
        # the first items only, without copying a long container first
        if isinstance(obj, dict):
            sample = [x for pair in itertools.islice(obj.items(), 500) for x in pair]
            total = 2 * len(obj)
        elif isinstance(obj, np.ndarray):  # object arrays: their items' sizes
            sample, total = list(itertools.islice(obj.flat, 1000)), obj.size
        elif isinstance(obj, (list, tuple, set, frozenset)):
            sample, total = list(itertools.islice(obj, 1000)), len(obj)
        if sample is not None:
            inner = sum(approx_size(item, _depth + 1) for item in sample)
            scale = total / len(sample) if sample else 1.0
            return sys.getsizeof(obj) + int(inner * scale)
    try:
        return sys.getsizeof(obj)
    except TypeError:  # pragma: no cover - objects that refuse to say
        return 0


def _check_size(value: Any, what: str) -> None:
    size = approx_size(value) / 1024**2
    if size > MAX_ARG_SIZE_MB:
        log.warning("%s: argument size %4.2f MB exceeds recommended limit of %d MB. Distributing "
                    "large variables across workers may result in poor performance. ",
                    what, size, MAX_ARG_SIZE_MB)


#: arrays bigger than this are fingerprinted from a sample, not every byte
FINGERPRINT_FULL_BYTES = 64 * 1024**2


def _array_digest(value: np.ndarray) -> tuple[Any, ...]:
    """Shape, dtype and a strided sample: a cheap stand-in for hashing a huge array."""
    import hashlib

    flat = value.reshape(-1)
    step = max(1, flat.size // 1_000_000)
    sample = np.ascontiguousarray(flat[::step])
    return ("ndarray", value.shape, str(value.dtype), hashlib.sha1(sample.tobytes()).hexdigest())


def fingerprint(dist: Distribution) -> str | None:
    """A digest of every call's arguments, so ``resume`` can refuse different inputs.

    Huge arrays (> 64 MiB) are summarised by shape, dtype and a strided sample so
    that fingerprinting stays fast. Returns None when an argument cannot be
    tokenised deterministically (resume then skips this check, with a warning).
    """
    import dask
    from dask.base import tokenize

    def norm(value: Any) -> Any:
        if isinstance(value, np.ndarray) and value.nbytes > FINGERPRINT_FULL_BYTES:
            return _array_digest(value)
        return value

    parts = (dist.n_calls, dist.n_args,
             {i: [norm(v) for v in vs] for i, vs in dist.split_args.items()},
             {k: [norm(v) for v in vs] for k, vs in dist.split_kwargs.items()},
             {i: norm(v) for i, v in dist.shared.args.items()},
             {k: norm(v) for k, v in dist.shared.kwargs.items()})
    try:
        with dask.config.set({"tokenize.ensure-deterministic": True}):
            return str(tokenize(*parts))
    except Exception as exc:
        log.debug("arguments cannot be fingerprinted deterministically: %s", exc)
        return None
