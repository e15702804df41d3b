"""The conformance tests of acme-core, applied to the example plugin (docs: plugins)."""

from my_acme_plugin import NpyStore, Threads

from acme_core.testing import ExecutorTests, StoreTests


class TestThreads(ExecutorTests):
    def make_executor(self):
        return Threads(n_workers=2)


class TestNpyStore(StoreTests):
    store_cls = NpyStore
