"""Questions to the user, asked only when someone can answer them."""

from __future__ import annotations

import sys


def can_ask() -> bool:
    """True when stdin is an interactive terminal (not CI, a batch job or a kernel)."""
    try:
        return sys.stdin is not None and sys.stdin.isatty()
    except (AttributeError, ValueError):
        return False


def yes_no(question: str, default: bool) -> bool:
    """Ask a yes/no question; an empty answer takes ``default``."""
    hint = " [Y/n] " if default else " [y/N] "
    while True:
        answer = input(question + hint).strip().lower()
        if not answer:
            return default
        if answer in {"y", "yes"}:
            return True
        if answer in {"n", "no"}:
            return False
