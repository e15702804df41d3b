"""A call that kills its worker fails alone, with the cause; a frozen worker stalls nothing.

Real local dask clusters started by acme-core (their nannies report how a worker
ended); the calls really exit, really allocate beyond the memory limit, and a worker
really stops (SIGSTOP).
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import time

import numpy as np
import pytest

from acme_core import ParallelMap, ParallelMapError, cluster_cleanup, local_cluster_setup
from acme_core.errors import WorkerLostError


def exits_at(x, bad):
    if x == bad:
        os._exit(1)
    return np.array([float(x)])


def test_a_call_that_exits_its_worker_fails_alone_naming_the_exit(in_tmp):
    client = local_cluster_setup(n_workers=2, interactive=False)
    try:
        with ParallelMap(exits_at, list(range(300)), 17, output_dir="run",
                         progress=False) as pmap:
            with pytest.raises(ParallelMapError, match=r"1/300 calls .*\(task ids: 17\)") as err:
                pmap.compute()
    finally:
        cluster_cleanup(client)
    error = err.value.failed[17]
    assert isinstance(error, WorkerLostError)
    assert "worker exited with exit code 1" in str(error), str(error)
    assert sum(r is not None for r in err.value.results) == 299


def hogs_at(x, bad):
    if x == bad:
        hog = np.ones(200_000_000)  # 1.6 GB against a limit of 400 MB
        return np.array([hog.sum()])
    return np.array([float(x)])


def test_a_call_over_its_workers_memory_fails_alone_saying_so(in_tmp):
    client = local_cluster_setup(n_workers=2, mem_per_worker="400MB", interactive=False)
    try:
        with ParallelMap(hogs_at, list(range(20)), 5, output_dir="run",
                         progress=False) as pmap:
            with pytest.raises(ParallelMapError, match=r"1/20 calls .*\(task ids: 5\)") as err:
                pmap.compute()
    finally:
        cluster_cleanup(client)
    message = str(err.value.failed[5])
    assert "exceeded its memory limit" in message or "killed by signal" in message, message
    assert sum(r is not None for r in err.value.results) == 19


def naps(x):
    time.sleep(0.05)
    return np.array([float(x)])


def test_a_frozen_worker_stalls_nothing_and_is_named(in_tmp, caplog):
    # a short time to live for the test; acme-core's local clusters use a minute
    client = local_cluster_setup(n_workers=2, interactive=False,
                                 scheduler_kwargs={"worker_ttl": "4s"})
    frozen = None
    try:
        pids = client.run(os.getpid)
        address, frozen = sorted(pids.items())[0]
        with caplog.at_level(logging.WARNING, logger="acme"):
            with ParallelMap(naps, list(range(200)), output_dir="run", progress=False) as pmap:
                os.kill(frozen, signal.SIGSTOP)
                paths = pmap.compute()
        assert len(paths) == 200
        assert f"Worker {address}" in caplog.text and "is gone" in caplog.text
    finally:
        if frozen is not None:
            with contextlib.suppress(ProcessLookupError):  # the scheduler had it killed
                os.kill(frozen, signal.SIGCONT)
        cluster_cleanup(client)
