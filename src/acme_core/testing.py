"""Conformance tests for executor and store plugins (ours and third parties').

Subclass in your own test suite and say what to test; pytest collects the
inherited tests::

    from acme_core.testing import ExecutorTests, StoreTests

    class TestMyExecutor(ExecutorTests):
        def make_executor(self):
            return MyExecutor(workers=2)

    class TestMyStore(StoreTests):
        store_cls = MyStore

The classes need pytest (they use its ``tmp_path`` fixture); importing this
module does not.
"""

from __future__ import annotations

import pickle
import threading
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from acme_core.fileio import is_partial
from acme_core.store import RunInfo


def _square(x: int) -> int:
    return x * x


def _fail(x: int) -> int:
    raise ValueError(f"bad input {x}")


def _add(x: int, y: int, z: int = 3) -> int:
    return (x + y) * z


class ExecutorTests:
    """Tests every executor must pass. Implement :meth:`make_executor`.

    One executor is shared by the tests of a class (starting a cluster is slow)
    and shut down after the last of them; the context-manager test makes its own.
    """

    _shared: ClassVar[Any] = None

    def make_executor(self) -> Any:
        raise NotImplementedError("subclasses return a fresh executor here")

    @property
    def executor(self) -> Any:
        cls = type(self)
        if cls._shared is None:
            cls._shared = self.make_executor()
        return cls._shared

    @classmethod
    def teardown_class(cls) -> None:
        if cls._shared is not None:
            cls._shared.shutdown()
            cls._shared = None

    def test_has_name(self) -> None:
        assert isinstance(self.executor.name, str) and self.executor.name

    def test_submit_returns_result(self) -> None:
        assert self.executor.submit(_square, 7).result(timeout=60) == 49

    def test_submit_propagates_exception(self) -> None:
        import pytest

        future = self.executor.submit(_fail, 3)
        with pytest.raises(ValueError, match="bad input 3"):
            future.result(timeout=60)

    def test_done_callback_fires(self) -> None:
        fired = threading.Event()
        future = self.executor.submit(_square, 2)
        future.add_done_callback(lambda f: fired.set())
        assert fired.wait(60)
        assert future.done()

    def test_identical_submissions_each_run(self) -> None:
        futures = [self.executor.submit(_square, 3) for _ in range(4)]
        assert len({id(f) for f in futures}) == 4
        assert [f.result(timeout=60) for f in futures] == [9, 9, 9, 9]

    def test_map_keeps_order(self) -> None:
        assert list(self.executor.map(_square, range(6))) == [0, 1, 4, 9, 16, 25]

    def test_runs_parallel_map(self) -> None:
        from acme_core import ParallelMap

        with ParallelMap(_add, [2, 4, 6, 8], 4, write_worker_results=False,
                         backend=self.executor, progress=False) as pmap:
            assert pmap.compute() == [18, 24, 30, 36]
        # an executor the caller brought survives the run (stop_client="auto")
        assert self.executor.submit(_square, 5).result(timeout=60) == 25

    def test_context_manager_shuts_down(self) -> None:
        with self.make_executor() as ex:
            assert ex.submit(_square, 3).result(timeout=60) == 9


class StoreTests:
    """Tests every result store must pass. Set :attr:`store_cls` (and options)."""

    store_cls: ClassVar[Any] = None
    store_options: ClassVar[dict[str, Any]] = {}
    n_calls: ClassVar[int] = 12

    def make_store(self) -> Any:
        return self.store_cls(**self.store_options)

    def value(self, i: int) -> Any:
        """What call ``i`` returns in these tests."""
        return np.arange(5, dtype=float) + i

    def assert_read_back(self, read: Any, i: int) -> None:
        """Compare what ``read()`` gave for call ``i`` with :meth:`value`."""
        np.testing.assert_array_equal(np.asarray(read), self.value(i))

    def _run(self, tmp_path: Path, n: int | None = None) -> RunInfo:
        return RunInfo(func_name="func", n_calls=n or self.n_calls, output_dir=tmp_path / "run")

    def _prepared(self, tmp_path: Path) -> tuple[Any, RunInfo]:
        store = self.make_store()
        run = self._run(tmp_path)
        if store.writes_files:
            assert run.output_dir is not None
            run.output_dir.mkdir(parents=True, exist_ok=True)
        else:
            run = RunInfo(func_name="func", n_calls=run.n_calls, output_dir=None)
        store.prepare(run)
        return store, run

    def _write_all(self, store: Any) -> list[Any]:
        # the writer travels to workers: use it after a pickle round trip
        writer = pickle.loads(pickle.dumps(store.writer()))
        return [writer.write(i, self.value(i)) for i in range(self.n_calls)]

    def _manifest(self, run: RunInfo, store: Any) -> dict[str, Any]:
        return {"func_name": run.func_name, "n_calls": run.n_calls, "store": store.name,
                "finished": [[0, run.n_calls - 1]], "result_shape": None}

    def test_has_name(self) -> None:
        assert isinstance(self.store_cls.name, str) and self.store_cls.name
        assert isinstance(self.store_cls.writes_files, bool)

    def test_writer_is_picklable(self, tmp_path: Path) -> None:
        store, _ = self._prepared(tmp_path)
        pickle.loads(pickle.dumps(store.writer()))

    def test_round_trip(self, tmp_path: Path) -> None:
        store, run = self._prepared(tmp_path)
        refs = self._write_all(store)
        final = store.finalize(refs, set())
        assert final is not None
        if store.writes_files:
            assert run.output_dir is not None
            values = self.store_cls.read(run.output_dir, self._manifest(run, store))
            assert len(values) == self.n_calls
            for i, value in enumerate(values):
                self.assert_read_back(value, i)
        else:
            for i, value in enumerate(final):
                self.assert_read_back(value, i)

    def test_rewrite_replaces_earlier_result(self, tmp_path: Path) -> None:
        store, run = self._prepared(tmp_path)
        writer = store.writer()
        writer.write(0, self.value(99))
        refs = [writer.write(i, self.value(i)) for i in range(self.n_calls)]
        final = store.finalize(refs, set())
        if store.writes_files:
            assert run.output_dir is not None
            values = self.store_cls.read(run.output_dir, self._manifest(run, store))
        else:
            values = final
        self.assert_read_back(values[0], 0)

    def test_no_partial_files_left(self, tmp_path: Path) -> None:
        store, run = self._prepared(tmp_path)
        store.finalize(self._write_all(store), set())
        if run.output_dir is not None:
            leftovers = [p for p in run.output_dir.rglob("*") if is_partial(p.name)]
            assert leftovers == []

    def test_existing_reports_written_calls(self, tmp_path: Path) -> None:
        store, run = self._prepared(tmp_path)
        writer = store.writer()
        for i in (0, 3, 5):
            writer.write(i, self.value(i))
        if store.writes_files:
            assert set(store.existing()) == {0, 3, 5}
        else:
            assert store.existing() == {}
