"""The conformance tests of a plugin module: known hooks, free names, classes that fit.

Set :attr:`PluginTests.plugin` to the object your entry point names (usually a
module with ``@hookimpl`` functions).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, ClassVar

import pluggy

from acme_core import hookspecs
from acme_core.plugins import PROJECT, Registry, registries

#: what the core may call on a store class and on its instances
STORE_MEMBERS = ("prepare", "writer", "finalize", "existing", "read")


def _registered(plugin: Any, hook_name: str, kind: str) -> dict[str, Any]:
    """What ``plugin``'s registration hook ``hook_name`` registers (name -> object)."""
    hook = getattr(plugin, hook_name, None)
    if hook is None:
        return {}
    registry: Registry[Any] = Registry(kind)
    hook(register=registry.register_for("under-test", "under-test"))
    return registry.as_dict()


class PluginTests:
    """Tests every plugin module must pass. Set :attr:`plugin`."""

    plugin: ClassVar[Any] = None

    def _manager(self) -> pluggy.PluginManager:
        pm = pluggy.PluginManager(PROJECT)
        pm.add_hookspecs(hookspecs)
        pm.register(self.plugin, name="under-test")
        return pm

    def test_every_hook_is_an_acme_hook(self) -> None:
        """A misspelt hook (``acme_register_executor``) would never be called."""
        self._manager().check_pending()

    def test_registration_hooks_succeed(self) -> None:
        for hook_name, kind in (("acme_register_executors", "backend"),
                                ("acme_register_stores", "store"),
                                ("acme_register_cluster_setups", "cluster setup")):
            _registered(self.plugin, hook_name, kind)

    def test_names_are_not_taken_by_other_plugins(self) -> None:
        """A name another installed plugin registers first would silently not be ours."""
        installed = registries()
        for hook_name, kind, registry in (
                ("acme_register_executors", "backend", installed.executors),
                ("acme_register_stores", "store", installed.stores),
                ("acme_register_cluster_setups", "cluster setup", installed.cluster_setups)):
            for name, obj in _registered(self.plugin, hook_name, kind).items():
                if name in registry:
                    assert registry.get(name) is obj, (
                        f"the {kind} name {name!r} is taken by {registry.entry(name)}")

    def test_executors_have_the_required_members(self) -> None:
        for name, cls in _registered(self.plugin, "acme_register_executors", "backend").items():
            assert inspect.isclass(cls), f"backend {name!r} is registered as {cls!r}, not a class"
            for member in ("submit", "shutdown"):
                assert callable(getattr(cls, member, None)), f"backend {name!r} has no {member}()"

    def test_stores_have_the_required_members(self) -> None:
        for name, cls in _registered(self.plugin, "acme_register_stores", "store").items():
            assert inspect.isclass(cls), f"store {name!r} is registered as {cls!r}, not a class"
            assert isinstance(getattr(cls, "writes_files", None), bool), (
                f"store {name!r} has no boolean `writes_files`")
            for member in STORE_MEMBERS:
                assert callable(getattr(cls, member, None)), f"store {name!r} has no {member}()"

    def test_cluster_setups_are_callable(self) -> None:
        setups: dict[str, Callable[..., Any]] = _registered(
            self.plugin, "acme_register_cluster_setups", "cluster setup")
        for name, func in setups.items():
            assert callable(func), f"cluster setup {name!r} is not callable"
