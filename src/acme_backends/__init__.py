"""Executor plugins shipped with acme-core.

They register through the hooks in :mod:`acme_backends.plugin`, the same hooks
third-party backends implement:

- :mod:`acme_backends.dask`: attach to a dask client (``"dask"``) or start a local
  cluster (``"dask-local"``, ``local_cluster_setup``);
- :mod:`acme_backends.jobqueue`: dask workers as SLURM, PBS or SGE jobs
  (``"slurm"``, ``"pbs"``, ``"sge"`` and their cluster setups);
- :mod:`acme_backends.schedulers`: the schedulers' command-line tools and parsers.

Importing this package imports none of them (nor dask).
"""

from __future__ import annotations

__all__: list[str] = []
