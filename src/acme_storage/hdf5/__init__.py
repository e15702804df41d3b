"""The HDF5 stores: ``"hdf5"`` (a file per call, or a shard file per task) and
``"hdf5-single"`` (one file).

============================  =====================================================
module                        what it holds
============================  =====================================================
:mod:`.links`                 the ``"hdf5"`` store: a file per call, a container of
                              ExternalLinks
:mod:`.vds`                   ... with ``result_shape``: the virtual dataset and the
                              links to extra return values
:mod:`.template`              ... its fast path: files from an image h5py made once
:mod:`.shards`                ... with ``shard_calls``: a shard file per task, its
                              calls as rows of a block (``"rows"``) or as groups
                              linked ``comp_<i>`` by ``comp_<i>`` (``"groups"``)
:mod:`.rows`                  ... the ``"rows"`` layout's container (a virtual
                              dataset over the shards' rows) and stacked reader
:mod:`.stacked`               ... with ``result_shape`` and shards: the block
                              stacked along the stacking axis, the container's
                              ``result_0`` of shape ``result_shape`` over the
                              shards' hyperslabs, and the stacked reader
:mod:`.single`                the ``"hdf5-single"`` store: staged per call, merged
                              into one file by the driver
:mod:`._h5`                   the h5py seam both stores share: lazy import, locking,
                              a call's group written and read back
============================  =====================================================

h5py is imported on first use, not with this package.
"""

from __future__ import annotations

from acme_storage.hdf5.links import HDF5Store, HDF5Writer
from acme_storage.hdf5.single import HDF5SingleStore, HDF5SingleWriter

__all__ = ["HDF5SingleStore", "HDF5SingleWriter", "HDF5Store", "HDF5Writer"]
