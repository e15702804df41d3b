"""Checks of user input, with ACME's error messages.

Every check raises before any cluster starts or any file is written, and its
message names the parameter, the value and what is allowed.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

from acme_core.errors import ArgumentTypeError, ArgumentValueError

__all__ = ["boolean", "mem_spec", "one_of", "scalar"]


def scalar(value: Any, name: str, *, int_like: bool = True,
           lims: tuple[float, float] = (-math.inf, math.inf)) -> float:
    """Check that ``value`` is a number (an integer if ``int_like``) within ``lims``.

    Raises
    ------
    TypeError
        ``value`` is not a number (booleans are not numbers here).
    ValueError
        ``value`` is out of range or not an integer.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Number):
        raise ArgumentTypeError(f"<_scalar_parser> `{name}` has to be a scalar, not {type(value)}",
                                parameter=name)
    number = float(value)  # type: ignore[arg-type]
    # an infinite or NaN "integer" would only fail later, as an OverflowError naming nothing
    bad_int = int_like and not (math.isfinite(number) and number == round(number))
    if bad_int or not (lims[0] <= number <= lims[1]):
        kind = "an integer" if int_like else "a number"
        raise ArgumentValueError(
            f"<_scalar_parser> `{name}` has to be {kind} between {_fmt(lims[0])} and "
            f"{_fmt(lims[1])}, not {value}", parameter=name)
    return number


def _fmt(limit: float) -> str:
    if math.isinf(limit):
        return "-inf" if limit < 0 else "inf"
    return str(int(limit)) if limit == int(limit) else str(limit)


def boolean(value: Any, name: str) -> bool:
    """Check that ``value`` is ``True`` or ``False`` (ACME prints the value)."""
    if not isinstance(value, bool):
        raise ArgumentTypeError(f"`{name}` has to be `True` or `False`, not {value}",
                                parameter=name)
    return value


def one_of(value: Any, name: str, allowed: list[Any]) -> Any:
    """Check ``value in allowed``."""
    if value not in allowed:
        raise ArgumentValueError(f"`{name}` has to be one of {allowed}, not {value!r}",
                                 parameter=name)
    return value


def mem_spec(value: Any, name: str = "mem_per_worker") -> str:
    """Check a memory specification such as ``"2GB"`` or ``"500MB"`` (or ``"auto"``)."""
    if not isinstance(value, str):
        raise ArgumentTypeError(
            f"Memory specification `{name}` has to be a string, not {type(value)}", parameter=name)
    if value == "auto":
        return value
    from dask.utils import parse_bytes

    try:
        size = parse_bytes(value)
    except (ValueError, TypeError):
        size = 0
    if size <= 0:
        raise ArgumentValueError(
            f"`{name}` has to be a valid memory specifier (e.g., '8GB', '12000MB'), not {value!r}",
            parameter=name)
    return value
