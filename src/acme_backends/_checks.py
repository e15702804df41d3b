"""Keyword checks of the backends, raising :mod:`acme_core.errors`' argument errors.

The checks themselves (and ACME's messages) are :mod:`acme_core.validation`'s,
which raise :class:`~acme_core.errors.ArgumentTypeError`/
:class:`~acme_core.errors.ArgumentValueError` naming the keyword; what else the
checks call (dask's memory parser, say) raises plain ``TypeError``/``ValueError``,
which is turned into those too. Both subclass the built-ins, so ``except
ValueError`` in user code keeps working.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from acme_core import validation
from acme_core.errors import ArgumentError, ArgumentTypeError, ArgumentValueError

__all__ = ["boolean", "count", "instance_of", "mem_spec", "number", "workers"]


@contextmanager
def _naming(parameter: str) -> Iterator[None]:
    try:
        yield
    except ArgumentError:
        raise
    except TypeError as exc:
        raise ArgumentTypeError(str(exc), parameter=parameter) from None
    except ValueError as exc:
        raise ArgumentValueError(str(exc), parameter=parameter) from None


def boolean(value: Any, name: str) -> bool:
    """``value`` if it is ``True`` or ``False``."""
    with _naming(name):
        return validation.boolean(value, name)


def count(value: Any, name: str, minimum: int = 1) -> int:
    """``value`` as an int if it is an integer ``>= minimum`` (booleans are not)."""
    with _naming(name):
        return int(validation.scalar(value, name, lims=(minimum, math.inf)))


def number(value: Any, name: str, minimum: float = 0) -> float:
    """``value`` as a float if it is a number ``>= minimum``."""
    with _naming(name):
        return validation.scalar(value, name, int_like=False, lims=(minimum, math.inf))


def mem_spec(value: Any, name: str = "mem_per_worker") -> str:
    """``value`` if it is a memory size such as ``"2GB"`` (or ``"auto"``)."""
    with _naming(name):
        return validation.mem_spec(value, name)


def workers(value: Any, name: str = "n_workers") -> int | None:
    """A worker count: an integer ``>= 1``, or None for ``"auto"`` (and None)."""
    if value is None or value == "auto":
        return None
    if isinstance(value, str):
        raise ArgumentTypeError(f"`{name}` has to be 'auto' or an integer >= 1, not {value!r}",
                                parameter=name)
    return count(value, name)


def instance_of(value: Any, name: str, types: type | tuple[type, ...], what: str) -> Any:
    """``value`` if it is an instance of ``types``; ``what`` says in words what is allowed."""
    if isinstance(value, bool) and bool not in (types if isinstance(types, tuple) else (types,)):
        ok = False  # True is an int, but not a port number or a worker count
    else:
        ok = isinstance(value, types)
    if not ok:
        raise ArgumentTypeError(f"`{name}` has to be {what}, not {value!r}", parameter=name)
    return value
