"""The conformance tests of acme-core, applied to the example plugin (docs: plugins)."""

import my_acme_plugin
from my_acme_plugin import NpyStore, Processes, Threads

from acme_core.testing import ExecutorTests, PluginTests, StoreTests


class TestPlugin(PluginTests):
    plugin = my_acme_plugin


class TestThreads(ExecutorTests):
    def make_executor(self):
        return Threads(n_workers=2)


class TestProcesses(ExecutorTests):
    def make_executor(self):
        return Processes(n_workers=2)


class TestNpyStore(StoreTests):
    store_cls = NpyStore
