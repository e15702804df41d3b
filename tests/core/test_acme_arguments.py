"""ACME code's ways with arguments: ``shared(value)``, ``pmap.kwargv`` edits, and functions
whose module does main-thread-only things when a worker imports it."""

from __future__ import annotations

import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from acme_core import ParallelMap, cluster_cleanup, local_cluster_setup, shared


class Threads(ThreadPoolExecutor):
    name = "threads"

    def __init__(self):
        super().__init__(max_workers=2)


def band(x, freqs=None, order=2):
    return (x, freqs, order)


def test_shared_passes_a_list_of_length_n_whole():
    with ParallelMap(band, [1, 2], freqs=shared([30, 50]), write_worker_results=False,
                     backend=Threads, progress=False) as pmap:
        assert pmap.compute() == [(1, [30, 50], 2), (2, [30, 50], 2)]
    with ParallelMap(total, [1, 2], shared([1.0, 2.0]), write_worker_results=False,
                     backend=Threads, progress=False) as pmap:  # positional, too
        assert pmap.compute() == [3.0, 6.0]


def total(x, weights):
    return float(x * np.sum(weights))
    # without it, ACME's rule splits the list: one value per call
    with ParallelMap(band, [1, 2], freqs=[30, 50], write_worker_results=False,
                     backend=Threads, progress=False) as pmap:
        assert [r[1] for r in pmap.compute()] == [30, 50]


def scale(x, weights=None):
    return float(x * np.sum(weights))


def test_shared_values_do_not_count_for_n_inputs():
    weights = np.array([1.0, 2.0])
    with ParallelMap(scale, [1, 2, 3], weights=shared(weights), write_worker_results=False,
                     backend=Threads, progress=False) as pmap:
        assert pmap.compute() == [3.0, 6.0, 9.0]
    with ParallelMap(scale, [1, 2], weights=shared(weights), write_worker_results=False,
                     backend=Threads, progress=False) as pmap:  # length 2 == N: still whole
        assert pmap.compute() == [3.0, 6.0]


def test_kwargv_is_acmes_view_and_its_edits_are_honoured():
    pmap = ParallelMap(band, [1, 2], freqs=[30, 50], order=4, write_worker_results=False,
                       backend=Threads, progress=False)
    assert pmap.kwargv == {"freqs": [30, 50], "order": [4]}
    pmap.kwargv["freqs"] = [[30, 50]]  # Syncopy's way of keeping a list of length N whole
    with pmap:
        assert pmap.compute() == [(1, [30, 50], 4), (2, [30, 50], 4)]
    assert pmap.kwargv == {"freqs": [[30, 50]], "order": [4]}


def test_kwargv_edits_that_cannot_be_meant_are_refused():
    pmap = ParallelMap(band, [1, 2, 3], freqs=[30, 50], n_inputs=3, write_worker_results=False,
                       backend=Threads, progress=False)
    pmap.kwargv["freqs"] = [1, 2]  # neither 1 (shared) nor 3 (one per call)
    with pytest.raises(ValueError, match=r"`kwargv\['freqs'\]` has to be a list of 1 \(shared\) "
                                         r"or 3") as err:
        pmap.compute()
    assert err.value.parameter == "kwargv"
    pmap.kwargv = {"freqs": [[30, 50]], "bogus": [1]}
    with pytest.raises(ValueError, match=r"keywords the ParallelMap was not given: \['bogus'\]"):
        pmap.compute()


def test_kwargv_edits_are_recorded_for_resume(in_tmp):
    pmap = ParallelMap(scale, [1, 2], weights=[1.0, 2.0], output_dir="run", backend=Threads,
                       progress=False)
    pmap.kwargv["weights"] = [np.array([1.0, 2.0])]
    with pmap:
        pmap.compute()
    # the same edit on resume: the arguments are the same, nothing runs again
    again = ParallelMap(scale, [1, 2], weights=shared(np.array([1.0, 2.0])), output_dir="run",
                        resume=True, backend=Threads, progress=False)
    with again:
        assert len(again.compute()) == 2


SIGMOD = textwrap.dedent("""
    import signal

    # what dask_jobqueue (and so Syncopy) does on import: only the main thread may
    signal.signal(signal.SIGINT, signal.default_int_handler)


    def f(x, s):
        return x
""")


@pytest.mark.parametrize("shared_value", ["plain", np.arange(3)], ids=["inline", "broadcast"])
def test_a_module_that_sets_a_signal_handler_on_import_runs_on_fresh_workers(
        tmp_path, monkeypatch, shared_value):
    (tmp_path / "acme_sigmod.py").write_text(SIGMOD)
    monkeypatch.syspath_prepend(str(tmp_path))
    import acme_sigmod

    client = local_cluster_setup(n_workers=1, interactive=False)  # fresh: never imported it
    try:
        with ParallelMap(acme_sigmod.f, [1, 2, 3, 4], shared_value, n_inputs=4,
                         write_worker_results=False, progress=False) as pmap:
            assert pmap.compute() == [1, 2, 3, 4]
        imported = client.run(lambda: "acme_sigmod" in sys.modules)
        assert list(imported.values()) == [True]  # the workers did import it
    finally:
        cluster_cleanup(client)
        sys.modules.pop("acme_sigmod", None)
