"""Every built-in executor passes the conformance classes of ``acme_core.testing``.

Third-party plugins subclass the same classes; the toy plugin's test does so too.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import ClassVar

from acme_backends.dask import DaskClientExecutor, DaskLocalExecutor
from acme_core.testing import AttachingExecutorTests, ExecutorTests


class TestDaskLocalExecutor(ExecutorTests):
    def make_executor(self):
        return DaskLocalExecutor(n_workers=1)


class TestDaskClientExecutor(AttachingExecutorTests):
    """On a client the user started: the executor never stops it."""

    started: ClassVar[list] = []

    def make_executor(self):
        client = self.start_resource()
        self.started.append(client)
        return DaskClientExecutor(client)

    def release(self, executor):
        executor.shutdown()
        self.tidy_up()

    def tidy_up(self):
        while self.started:
            self.stop_resource(self.started.pop())

    def start_resource(self):
        from acme_core import local_cluster_setup

        return local_cluster_setup(n_workers=1, interactive=False)

    def attach(self, resource):
        return DaskClientExecutor(resource)

    def resource_alive(self, resource):
        return resource.status == "running" and resource.submit(abs, -3).result(timeout=60) == 3

    def stop_resource(self, resource):
        from acme_core import cluster_cleanup

        cluster_cleanup(resource)


class Threads(ThreadPoolExecutor):
    """The contract's simplest case: a thread pool with a name."""

    name = "threads"

    def __init__(self):
        super().__init__(max_workers=2)


class TestThreadPoolExecutor(ExecutorTests):
    def make_executor(self):
        return Threads()
