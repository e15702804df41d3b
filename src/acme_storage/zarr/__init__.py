"""The ``"zarr"`` store: every result in one zarr v3 group, written by workers without locks.

=====================  ==========================================================
module                 what it holds
=====================  ==========================================================
:mod:`.store`          ``ZarrStore``: the layout (module docstring), ``prepare``,
                       ``finalize``, reading back
:mod:`.writer`         ``ZarrWriter``: one call into the group, on a worker
:mod:`.shards`         ``shard_calls``: ``result_0`` in zarr v3 shards, a task's
                       slots written per shard (``ZarrShardWriter``), the
                       written mask from the shard index
:mod:`.rows`           ``shard_calls`` without ``result_shape`` (and extra
                       values): a zip shard per task (``ZarrRowsWriter``,
                       ``RowsIndex``)
:mod:`.zips`           a zarr v3 group in one zip file: entries by hand or
                       through zarr-python, read back
:mod:`._zarr`          the seam over zarr-python: import, codecs, arrays, chunk
                       keys, a call's group
:mod:`._fast`          the one place that makes chunk bytes itself, and why
=====================  ==========================================================

zarr is imported on first use, not with this package. (Inside this package,
``import zarr`` still means zarr-python: imports are absolute.)
"""

from __future__ import annotations

from acme_storage.zarr.store import ZarrStore
from acme_storage.zarr.writer import ZarrWriter

__all__ = ["ZarrStore", "ZarrWriter"]
