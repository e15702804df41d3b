"""The rules of ``acme_storage``'s layout, checked on its source (imports inside functions count).

* no module imports ``acme_backends``, nor a private module of ``acme_core``;
* a private module (``_x``) is imported only from inside the package that holds
  it, and no private *name* is imported from another module: stores share code
  only through modules made for it (``_layout``, ``_values``, ``_emergency``,
  ``stacking``, a package's own ``_h5`` / ``_zarr`` / ``_fast``);
* no import cycle between modules (``from pkg import submodule`` is an edge to
  the submodule, not to the package's ``__init__``);
* every module is typed (``py.typed``) and says what it exports (``__all__``).
"""

from __future__ import annotations

import ast
import importlib.util
from pathlib import Path

import pytest

import acme_storage

ROOT = Path(acme_storage.__file__).parent


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(ROOT.rglob("*.py"))}


def is_module(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:
        return False


def imports(name: str) -> list[tuple[str, str | None]]:
    """``(module, imported name or None)`` of every import statement in module ``name``."""
    path = MODULES[name]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: list[tuple[str, str | None]] = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.extend((alias.name, None) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join([*package.split(".")[:len(package.split(".")) - node.level + 1],
                                 *([base] if base else [])])
            found.extend((base, alias.name) for alias in node.names)
    return found


def targets(name: str) -> set[str]:
    """The acme_storage modules ``name`` imports (a submodule, else the module itself)."""
    out = set()
    for module, imported in imports(name):
        full = f"{module}.{imported}" if imported else module
        if full in MODULES:
            out.add(full)
        elif module in MODULES:
            out.add(module)
    return out


def private_part(module: str) -> str | None:
    """The package that owns ``module`` when it is private (``a.b._c`` -> ``a.b``)."""
    parts = module.split(".")
    for k, part in enumerate(parts):
        if part.startswith("_") and not part.startswith("__"):
            return ".".join(parts[:k])
    return None


@pytest.mark.parametrize("name", sorted(MODULES))
def test_imports_stay_inside_their_boundaries(name):
    for module, imported in imports(name):
        full = f"{module}.{imported}" if imported and is_module(f"{module}.{imported}") else module
        assert not full.startswith("acme_backends"), f"{name} imports {full}"
        if full.startswith("acme_core"):
            assert private_part(full) is None, f"{name} imports acme_core's private {full}"
        if full.startswith("acme_storage"):
            owner = private_part(full)
            assert owner is None or name == owner or name.startswith(owner + "."), \
                f"{name} imports {full}, private to {owner}"
        private_name = bool(imported and imported.startswith("_")) and full == module
        assert not private_name, f"{name} imports the private name {imported} from {module}"


def test_no_import_cycles():
    graph = {name: targets(name) - {name} for name in MODULES}
    done: set[str] = set()

    def visit(name: str, path: list[str]) -> None:
        assert name not in path, "import cycle: " + " -> ".join([*path, name])
        if name in done:
            return
        for target in sorted(graph[name]):
            visit(target, [*path, name])
        done.add(name)

    for name in sorted(graph):
        visit(name, [])


def test_every_module_is_typed_and_says_what_it_exports():
    assert (ROOT / "py.typed").is_file()
    for name, path in MODULES.items():
        tree = ast.parse(path.read_text())
        assert ast.get_docstring(tree), f"{name} has no docstring"
        names = {t.id for node in tree.body if isinstance(node, ast.Assign)
                 for t in node.targets if isinstance(t, ast.Name)}
        assert "__all__" in names, f"{name} has no __all__"
