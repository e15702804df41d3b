"""The conformance tests every executor passes (ours and third parties').

They check the contract of :mod:`acme_core.executor`: ``submit`` and its
futures, ``shutdown`` safe to call twice, use as a context manager, and a real
``ParallelMap`` run on the executor.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest

from acme_core.executor import Executor


def _square(x: int) -> int:
    return x * x


def _fail(x: int) -> int:
    raise ValueError(f"bad input {x}")


def _add(x: int, y: int, z: int = 3) -> int:
    return (x + y) * z


class ExecutorTests:
    """Tests every executor must pass. Implement :meth:`make_executor`.

    One executor serves the tests of a class (starting a cluster is slow) and is
    released after the last of them (:meth:`release`); the tests of the lifecycle
    make their own.
    """

    def make_executor(self) -> Any:
        """Return a fresh executor (subclasses implement this)."""
        raise NotImplementedError("subclasses return a fresh executor here")

    def release(self, executor: Any) -> None:
        """Free what :meth:`make_executor` started (default: ``shutdown()``)."""
        executor.shutdown()

    def tidy_up(self) -> None:
        """Called after each test that made and shut down its own executor.

        Default: nothing. Override it when ``make_executor`` starts something its
        executor does not own (and so leaves running after ``shutdown()``).
        """

    @pytest.fixture(scope="class")
    @classmethod
    def executor(cls) -> Iterator[Any]:
        tests = cls()
        executor = tests.make_executor()
        yield executor
        tests.release(executor)

    def test_follows_the_protocol(self, executor: Any) -> None:
        assert isinstance(executor, Executor)
        assert isinstance(type(executor).name, str) and type(executor).name

    def test_submit_returns_result(self, executor: Any) -> None:
        assert executor.submit(_square, 7).result(timeout=60) == 49

    def test_submit_propagates_exception(self, executor: Any) -> None:
        future = executor.submit(_fail, 3)
        with pytest.raises(ValueError, match="bad input 3"):
            future.result(timeout=60)

    def test_done_callback_fires(self, executor: Any) -> None:
        fired = threading.Event()
        future = executor.submit(_square, 2)
        future.add_done_callback(lambda f: fired.set())
        assert fired.wait(60)
        assert future.done()

    def test_identical_submissions_each_run(self, executor: Any) -> None:
        futures = [executor.submit(_square, 3) for _ in range(4)]
        assert len({id(f) for f in futures}) == 4
        assert [f.result(timeout=60) for f in futures] == [9, 9, 9, 9]

    def test_runs_parallel_map(self, executor: Any) -> None:
        from acme_core.parallel_map import ParallelMap

        with ParallelMap(_add, [2, 4, 6, 8], 4, write_worker_results=False,
                         backend=executor, progress=False) as pmap:
            assert pmap.compute() == [18, 24, 30, 36]
        # an executor the caller brought survives the run (stop_client="auto")
        assert executor.submit(_square, 5).result(timeout=60) == 25

    def test_shutdown_twice_is_safe(self) -> None:
        executor = self.make_executor()
        assert executor.submit(_square, 4).result(timeout=60) == 16
        try:
            executor.shutdown()
            executor.shutdown()  # concurrent.futures: "safe to call several times"
        finally:
            self.tidy_up()

    def test_context_manager_shuts_down(self) -> None:
        try:
            with self.make_executor() as executor:
                assert executor.submit(_square, 3).result(timeout=60) == 9
            executor.shutdown()  # and once more after the block
        finally:
            self.tidy_up()


class AttachingExecutorTests(ExecutorTests):
    """For executors that can run on resources they did not start (a user's client).

    Implement :meth:`start_resource` (start what the user would bring),
    :meth:`attach` (an executor on it), :meth:`resource_alive` and
    :meth:`stop_resource`. The executor must leave the resource running.
    """

    def start_resource(self) -> Any:
        raise NotImplementedError

    def attach(self, resource: Any) -> Any:
        raise NotImplementedError

    def resource_alive(self, resource: Any) -> bool:
        raise NotImplementedError

    def stop_resource(self, resource: Any) -> None:
        raise NotImplementedError

    @pytest.fixture(scope="class")
    @classmethod
    def resource(cls) -> Iterator[Any]:
        tests = cls()
        resource = tests.start_resource()
        yield resource
        tests.stop_resource(resource)

    def test_borrowed_resource_survives_the_context_manager(self, resource: Any) -> None:
        with self.attach(resource) as executor:
            assert executor.submit(_square, 3).result(timeout=60) == 9
        assert self.resource_alive(resource)

    def test_borrowed_resource_survives_shutdown_twice(self, resource: Any) -> None:
        executor = self.attach(resource)
        executor.shutdown()
        executor.shutdown()
        assert self.resource_alive(resource)
        assert self.attach(resource).submit(_square, 5).result(timeout=60) == 25
