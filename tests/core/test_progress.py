"""The progress bar (fed by completion events) and the dashboard link."""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from acme_core import ParallelMap, ParallelMapError


def plus_one(x):
    return x + 1


def fails_on_two(x):
    if x == 2:
        raise ValueError("two")
    return x


def last_bar_line(err: str) -> str:
    """The final state of the bar (tqdm redraws with carriage returns)."""
    lines = [part for part in re.split(r"[\r\n]", err) if "plus_one" in part
             or "fails_on_two" in part]
    return lines[-1] if lines else ""


def test_progress_true_shows_done_failed_running(in_tmp, client, capsys):
    with ParallelMap(plus_one, list(range(20)), write_worker_results=False,
                     progress=True) as pmap:
        assert pmap.compute() == list(range(1, 21))
    final = last_bar_line(capsys.readouterr().err)
    assert "20/20" in final
    assert "done=20" in final and "failed=0" in final and "running=0" in final


def test_progress_counts_failures(in_tmp, client, capsys):
    with ParallelMap(fails_on_two, list(range(6)), write_worker_results=False,
                     progress=True) as pmap:
        with pytest.raises(ParallelMapError):
            pmap.compute()
    final = last_bar_line(capsys.readouterr().err)
    assert "6/6" in final and "done=5" in final and "failed=1" in final


def test_progress_false_and_auto_without_a_terminal_show_nothing(in_tmp, client, capsys):
    for progress in (False, "auto"):  # pytest's captured stderr is not a terminal
        with ParallelMap(plus_one, list(range(5)), write_worker_results=False,
                         progress=progress) as pmap:
            pmap.compute()
        err = capsys.readouterr().err
        assert "call/s" not in err and "done=" not in err, progress


def test_auto_shows_the_bar_on_a_terminal(in_tmp, client, capsys, monkeypatch):
    import acme_core._progress as pm

    monkeypatch.setattr(pm, "_stderr_is_terminal", lambda: True)
    with ParallelMap(plus_one, list(range(5)), write_worker_results=False) as pmap:
        pmap.compute()
    assert "done=5" in last_bar_line(capsys.readouterr().err)


def test_debug_mode_has_the_bar_too(in_tmp, capsys):
    with ParallelMap(plus_one, list(range(4)), write_worker_results=False,
                     progress=True) as pmap:
        pmap.compute(debug=True)
    assert "done=4" in last_bar_line(capsys.readouterr().err)


def test_dashboard_link_is_printed(in_tmp, client, caplog):
    with caplog.at_level("INFO", logger="acme"):
        with ParallelMap(plus_one, [1, 2], write_worker_results=False, progress=False) as pmap:
            pmap.compute()
    said = [r.getMessage() for r in caplog.records if r.name == "acme"]
    assert any("dashboard" in m.lower() and client.dashboard_link in m for m in said), said


class CountingFuture:
    """Wraps a future and counts how often anybody asks whether it is done."""

    polls = 0

    def __init__(self, future: Any) -> None:
        self.future = future

    def done(self) -> bool:
        CountingFuture.polls += 1
        return bool(self.future.done())

    def result(self, timeout: float | None = None) -> Any:
        return self.future.result(timeout)

    def cancel(self) -> bool:
        return bool(self.future.cancel())

    def add_done_callback(self, fn: Any) -> None:
        self.future.add_done_callback(lambda _: fn(self))


class CountingExecutor(ThreadPoolExecutor):
    name = "counting-threads"

    def submit(self, fn: Any, /, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        return CountingFuture(super().submit(fn, *args, **kwargs))


def test_progress_and_results_never_poll_futures(in_tmp, capsys):
    CountingFuture.polls = 0
    with CountingExecutor(2) as executor:
        with ParallelMap(plus_one, list(range(200)), write_worker_results=False, progress=True,
                         backend=executor, chunk_size=3) as pmap:
            assert pmap.compute() == list(range(1, 201))
    assert CountingFuture.polls == 0  # everything came from completion callbacks
    assert "done=200" in last_bar_line(capsys.readouterr().err)
