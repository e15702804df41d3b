"""Conformance tests for plugins (ours and third parties'), after zarr's ``StoreTests``.

Subclass in your own test suite and say what to test; pytest collects the
inherited tests::

    from acme_core.testing import ExecutorTests, PluginTests, StoreTests

    class TestMyExecutor(ExecutorTests):
        def make_executor(self):
            return MyExecutor(workers=2)

    class TestMyStore(StoreTests):
        store_cls = MyStore

    class TestMyPlugin(PluginTests):
        plugin = my_package.acme_plugin   # the module your entry point names

:class:`AttachingExecutorTests` adds the tests for executors that can run on
resources they did not start (a client the user brought). These classes use
pytest fixtures, so this package needs pytest; the rest of acme-core does not.
"""

from __future__ import annotations

from acme_core.testing.executor import AttachingExecutorTests, ExecutorTests
from acme_core.testing.plugin import PluginTests
from acme_core.testing.store import StoreTests

__all__ = ["AttachingExecutorTests", "ExecutorTests", "PluginTests", "StoreTests"]
