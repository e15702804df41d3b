"""Result-store plugins shipped with acme-core.

They register through :func:`~acme_core.hookspecs.acme_register_stores` in
:mod:`acme_storage.plugin`, the same hook third-party store plugins implement.
"""

from __future__ import annotations

__all__: list[str] = []
