"""Result-store plugins shipped with acme-core.

They register through :func:`~acme_core.hookspecs.acme_register_stores` in
:mod:`acme_storage.plugin`, the same hook third-party store plugins implement.

=========================  ======================================================
module                     what it holds
=========================  ======================================================
:mod:`.hdf5`               ``"hdf5"`` (a file per call, or per task: shards) and
                           ``"hdf5-single"``
:mod:`.zarr`               ``"zarr"`` (one zarr v3 group)
:mod:`.pickled`            ``"pickle"`` (a pickle per call)
:mod:`.memory`             ``"memory"`` (values back to the caller)
:mod:`.stacking`           ``result_shape`` for every format: slots, masks, extras
:mod:`._layout`            every file, group and dataset name of ACME's layout
:mod:`._values`            ACME's element and collapse rules, read-back decoding
:mod:`._trust`             what readers trust: checked manifests, confined names,
                           complete files, no other run's leftovers
:mod:`._emergency`         the pickle fallback of the HDF5 and zarr stores
:mod:`.plugin`             the hook implementation
=========================  ======================================================

Stores share code only through the modules without a store in them (the
underscored ones and :mod:`.stacking`) and import nothing private of each
other. h5py and zarr are imported on first use, so importing this package and
listing the stores needs neither.
"""

from __future__ import annotations

from acme_storage.hdf5 import HDF5SingleStore, HDF5Store
from acme_storage.memory import MemoryStore
from acme_storage.pickled import PickleStore
from acme_storage.zarr import ZarrStore

__all__ = ["HDF5SingleStore", "HDF5Store", "MemoryStore", "PickleStore", "ZarrStore"]
