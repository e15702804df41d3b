"""The toy third-party plugin passes every conformance class, using documented members only.

Their sources are loaded from ``tests/data`` by file path, not put on ``sys.path``: a
source tree that pip built in place holds ``*.egg-info`` metadata, and its entry points
would then load in every later test (the plugin tests pip-install them separately). The
rival plugin's mistakes make the plugin conformance tests fail, as they should.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pluggy
import pytest

from acme_core.testing import ExecutorTests, PluginTests, StoreTests

DATA = Path(__file__).resolve().parents[1] / "data"


def _load(name: str, path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


toy_acme_plugin = _load("toy_acme_plugin_under_test",
                        DATA / "toy-plugin" / "src" / "toy_acme_plugin" / "__init__.py")
misspelt = _load("rival_misspelt_under_test",
                 DATA / "rival-plugin" / "src" / "rival_acme_plugin" / "misspelt.py")
shadow = _load("rival_shadow_under_test",
               DATA / "rival-plugin" / "src" / "rival_acme_plugin" / "shadow.py")


class TestToyPlugin(PluginTests):
    plugin = toy_acme_plugin


class TestToyThreads(ExecutorTests):
    def make_executor(self):
        return toy_acme_plugin.ToyThreads(max_workers=2)


class TestToyJSONStore(StoreTests):
    store_cls = toy_acme_plugin.JSONStore

    def value(self, i):
        return {"call": i, "squares": [k * k for k in range(i)]}

    def assert_read_back(self, read, i):
        assert read == self.value(i)


def test_a_misspelt_hook_fails_the_plugin_conformance_tests():
    class TestMisspelt(PluginTests):
        plugin = misspelt

    with pytest.raises(pluggy.PluginValidationError, match="acme_register_executor"):
        TestMisspelt().test_every_hook_is_an_acme_hook()


def test_a_taken_name_fails_the_plugin_conformance_tests():
    class TestShadow(PluginTests):
        plugin = shadow

    with pytest.raises(AssertionError, match="the store name 'hdf5' is taken"):
        TestShadow().test_names_are_not_taken_by_other_plugins()
