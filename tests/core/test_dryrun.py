"""The in-process modes: ``compute(debug=True)`` and the dry run (``dryrun=True`` / ``"stop"``)."""

from __future__ import annotations

import io
import logging
import os
import pdb
import subprocess
import sys
import textwrap
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

import acme_core._options as options_module
import acme_core.dryrun as dryrun_module
import acme_core.prompts as prompts_module
from acme_core import ParallelMap, ParallelMapError, open_results
from acme_core.dryrun import (
    approx_size,
    format_bytes,
    format_duration,
    suggest_mem_per_worker,
)
from acme_core.manifest import MANIFEST_NAME, Manifest

STORES = ["hdf5", "hdf5-single", "pickle", "zarr", "memory"]


class Threads(ThreadPoolExecutor):
    """A backend without dask: the tests that need a real run but no cluster use it."""

    name = "test-threads"


class UsersOwnError(Exception):
    """An exception type only the user's code knows; it records where it was raised."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.pid = os.getpid()


def explodes(x):
    secret = x * 7  # noqa: F841 - pdb should see this local
    raise UsersOwnError(f"cannot handle {x}")


def pid_of_call(x):
    return np.array([x, os.getpid()])


def nap(x):
    time.sleep(0.05)
    return float(x)


def hungry(x):
    block = np.ones(6_250_000)  # 50 MB
    return float(block.sum()) + x


def fails_unless_fixed(x, marker):
    if x == 2 and not os.path.exists(marker):
        raise ValueError("two")
    return float(x)


def fails_on_two(x):
    if x == 2:
        raise ValueError("two")
    return float(x)


@pytest.fixture
def acme_logs(caplog):
    caplog.set_level(logging.DEBUG, logger="acme")
    return caplog


# ----------------------------------------------------------------- debug=True
def test_debug_raises_the_users_own_exception_from_this_process(in_tmp):
    with ParallelMap(explodes, [1, 2, 3], output_dir="run") as pmap:
        with pytest.raises(UsersOwnError, match="cannot handle 1") as info:
            pmap.compute(debug=True)
        assert pmap.executor is None  # no cluster was started
    assert type(info.value) is UsersOwnError  # not wrapped, not a stand-in
    assert info.value.pid == os.getpid()  # raised in the caller's process
    assert info.traceback[-1].name == "explodes"


def test_debug_pdb_post_mortem_lands_in_the_users_frame(in_tmp):
    with ParallelMap(explodes, [4, 5], write_worker_results=False) as pmap:
        try:
            pmap.compute(debug=True)
        except UsersOwnError as exc:
            tb = exc.__traceback__
    out = io.StringIO()
    debugger = pdb.Pdb(stdin=io.StringIO("p secret\np x\nquit\n"), stdout=out)
    debugger.use_rawinput = False
    debugger.reset()
    debugger.interaction(None, tb)
    text = out.getvalue()
    assert "explodes()" in text  # pdb stopped in the user's function
    assert "(Pdb) 28" in text and "(Pdb) 4" in text  # and sees its locals (secret = 4 * 7)


def test_debug_writes_results_like_a_real_run(in_tmp):
    with ParallelMap(pid_of_call, [1, 2, 3], output_dir="run") as pmap:
        paths = pmap.compute(debug=True)
    assert len(paths) == 3 and all(os.path.isfile(p) for p in paths)
    values = open_results("run")
    assert [int(v[0]) for v in values] == [1, 2, 3]
    assert {int(v[1]) for v in values} == {os.getpid()}
    assert Manifest.load(in_tmp / "run")["complete"] is True


# ----------------------------------------------------------------- dry run
def test_dryrun_stop_reports_the_estimate_and_leaves_nothing(in_tmp, acme_logs):
    with ParallelMap(nap, list(range(20)), n_workers=4, dryrun="stop") as pmap:
        estimate = pmap.dryrun_estimate
        assert pmap.compute() is None
    text = acme_logs.text
    assert "Performing a single dry-run of nap" in text
    assert "Estimated run time" in text and "20 calls on 4 workers (n_workers)" in text
    assert "Suggested mem_per_worker=" in text
    m = estimate.measurement
    assert 0 <= m.task_id < 20
    assert m.seconds >= 0.05
    assert estimate.workers == 4 and estimate.n_calls == 20
    assert estimate.total_seconds == pytest.approx(20 * m.seconds / 4)
    assert os.listdir(in_tmp) == []  # the auto-named run directory is gone


@pytest.mark.parametrize("store", STORES)
def test_dryrun_stop_leaves_no_result_files_in_any_store(in_tmp, acme_logs, store):
    kwargs = {"store": store} if store != "memory" else {"write_worker_results": False}
    with ParallelMap(pid_of_call, [1, 2, 3, 4], dryrun="stop", **kwargs) as pmap:
        assert pmap.compute() is None
    assert os.listdir(in_tmp) == []
    assert "Estimated run time" in acme_logs.text
    if store == "memory":
        assert "gathered in this process" in acme_logs.text


def test_dryrun_true_when_nobody_can_answer_goes_on(in_tmp, acme_logs):
    with ParallelMap(pid_of_call, [1, 2, 3, 4], output_dir="run", dryrun=True, backend=Threads,
                     backend_options={"max_workers": 2}, progress=False) as pmap:
        assert pmap.interactive is False
        assert pmap.dryrun_estimate.workers == 2
        # the dry run wrote nothing a real run would take for a result
        assert Manifest.load(in_tmp / "run").finished == set()
        assert os.listdir(in_tmp / "run" / "pid_of_call_payload") == []
        paths = pmap.compute()
    assert "Nobody to ask (not interactive): continuing" in acme_logs.text
    assert len(paths) == 4
    assert sorted(os.listdir(in_tmp / "run" / "pid_of_call_payload")) == \
        [f"pid_of_call_{i}.h5" for i in range(4)]
    assert [int(v[0]) for v in open_results("run")] == [1, 2, 3, 4]
    assert Manifest.load(in_tmp / "run").finished == {0, 1, 2, 3}


def test_dryrun_asks_when_interactive(in_tmp, monkeypatch, acme_logs):
    questions = []
    answers = iter([False, True])

    def answer(question, default):
        questions.append((question, default))
        return next(answers)

    monkeypatch.setattr(options_module, "can_ask", lambda: True)
    monkeypatch.setattr(prompts_module, "yes_no", answer)
    # declined: no run, no files; entering the context later recreates nothing
    with ParallelMap(nap, [1, 2, 3], n_workers=3, dryrun=True, progress=False) as pmap:
        assert pmap.compute() is None
    assert os.listdir(in_tmp) == []
    question, default = questions[0]
    assert default is True
    assert "for 3 calls on 3 workers" in question and "mem_per_worker=" in question
    assert "Do you want to continue executing nap" in question
    # accepted: the run goes on
    with ParallelMap(nap, [1, 2, 3], write_worker_results=False, dryrun=True,
                     backend=Threads, progress=False) as pmap:
        assert pmap.compute() == [1.0, 2.0, 3.0]
    assert len(questions) == 2


def test_dryrun_measures_memory(in_tmp, acme_logs):
    pmap = ParallelMap(hungry, [1, 2], write_worker_results=False, dryrun="stop")
    m = pmap.dryrun_estimate.measurement
    assert m.traced_peak >= 50e6  # tracemalloc sees NumPy's allocations
    assert m.peak >= m.traced_peak
    assert m.rss_peak is not None
    assert "tracemalloc 5" in acme_logs.text  # "tracemalloc 50.0 MB" (or a bit more)
    # the suggestion holds the peak, the worker and the margin
    assert pmap.dryrun_estimate.mem_per_worker == suggest_mem_per_worker(m.peak, 0)


def test_dryrun_failing_call_raises_and_leaves_nothing(in_tmp, acme_logs, monkeypatch):
    monkeypatch.setattr(dryrun_module.random, "choice", lambda todo: 2)
    with pytest.raises(ValueError, match="two"):
        ParallelMap(fails_on_two, [0, 1, 2, 3], dryrun=True)
    assert os.listdir(in_tmp) == []
    assert "The dry-run call #2 of fails_on_two failed" in acme_logs.text


def test_dryrun_keeps_what_others_put_in_output_dir(in_tmp):
    (in_tmp / "mine").mkdir()
    (in_tmp / "mine" / "notes.txt").write_text("keep me")
    ParallelMap(nap, [1, 2], output_dir="mine", dryrun="stop")
    assert os.listdir(in_tmp / "mine") == ["notes.txt"]


def test_dryrun_on_resume_touches_nothing(in_tmp):
    marker = str(in_tmp / "fixed")
    with ParallelMap(fails_unless_fixed, [0, 1, 2, 3], marker, output_dir="run",
                     backend=Threads, progress=False) as pmap:
        with pytest.raises(ParallelMapError):
            pmap.compute()
    before = sorted(str(p) for p in (in_tmp / "run").rglob("*"))
    manifest = (in_tmp / "run" / MANIFEST_NAME).read_text()
    open(marker, "w").close()
    pmap = ParallelMap(fails_unless_fixed, [0, 1, 2, 3], marker, output_dir="run", resume=True,
                       dryrun="stop")
    assert pmap.dryrun_estimate.measurement.task_id == 2  # only missing calls are tried
    assert pmap.dryrun_estimate.n_calls == 1
    assert sorted(str(p) for p in (in_tmp / "run").rglob("*")) == before
    assert (in_tmp / "run" / MANIFEST_NAME).read_text() == manifest


@pytest.mark.parametrize("value", ["no", 1, None])
def test_dryrun_validation(value):
    with pytest.raises(TypeError, match="`dryrun` has to be `True` or `False`"):
        ParallelMap(nap, [1, 2], dryrun=value)


def test_dryrun_stop_in_a_batch_job(tmp_path):
    """A script, no terminal: the estimate goes to stderr and nothing stays on disk."""
    script = tmp_path / "job.py"
    script.write_text(textwrap.dedent("""
        from acme_core import ParallelMap

        def f(x):
            return x * 2

        if __name__ == "__main__":
            with ParallelMap(f, list(range(100)), dryrun="stop") as pmap:
                print("computed:", pmap.compute())
    """))
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                         cwd=tmp_path, stdin=subprocess.DEVNULL, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "computed: None" in out.stdout
    assert "Estimated run time" in out.stderr and "for 100 calls" in out.stderr
    assert "Suggested mem_per_worker=" in out.stderr
    assert sorted(os.listdir(tmp_path)) == ["job.py"]


# ----------------------------------------------------------------- helpers
def test_formatting_and_sizes():
    assert format_bytes(1_234_567) == "1.2 MB"
    assert format_bytes(12) == "12 B"
    assert format_duration(0.0123) == "12.3 ms"
    assert format_duration(75) == "1 min 15 s"
    assert format_duration(7300) == "2 h 1 min"
    assert approx_size(np.zeros(1000)) == 8000
    assert approx_size([np.zeros(100)] * 3) >= 2400
    assert suggest_mem_per_worker(0, 0) == "400MB"
    assert suggest_mem_per_worker(2 * 10**9, 0) == "4GB"


def test_approx_size_samples_long_containers_by_their_items():
    kb = b"x" * 1000
    many = 10_000  # beyond the sample: the first items are scaled up
    for container in ([kb] * many, tuple([kb] * many), {i: kb for i in range(many)},
                      np.array([kb] * many, dtype=object)):
        assert 10_000_000 <= approx_size(container) < 11_000_000, type(container)
