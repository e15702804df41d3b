"""Questions to the user, asked only when someone can answer them."""

from __future__ import annotations

import select
import sys
import time

__all__ = ["ask", "can_ask", "yes_no"]


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


def ask(question: str, choices: str, default: str, timeout: float) -> str:
    """Ask for one letter of ``choices``; the default after ``timeout`` seconds or on Enter."""
    prompt = f"{question} [{'/'.join(choices)}] (default {default}, in {int(timeout)} s) "
    sys.stdout.write(prompt)
    sys.stdout.flush()
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            sys.stdout.write("\n")
            return default
        ready, _, _ = select.select([sys.stdin], [], [], left)
        if not ready:
            continue
        answer = sys.stdin.readline().strip().lower()
        if not answer:
            return default
        if answer[0] in choices:
            return answer[0]
        sys.stdout.write(prompt)
        sys.stdout.flush()
