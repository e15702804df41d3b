"""Executor plugins shipped with acme-core.

They register through the hooks in :mod:`acme_backends.plugin`, the same hooks
third-party backends implement.
"""

from __future__ import annotations

__all__: list[str] = []
