"""The shape of ``acme_backends`` (and of the ESI plugin), read from the source.

Every import counts, including those inside functions: a function-level import
that closes a cycle hides it only until that function runs.
"""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BACKENDS = ROOT / "src" / "acme_backends"
ESI = ROOT / "plugins" / "acme-esi" / "src" / "acme_esi"


def module_name(path: Path, top: Path) -> str:
    parts = [top.name, *path.relative_to(top).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules(top: Path) -> dict[str, ast.Module]:
    return {module_name(p, top): ast.parse(p.read_text()) for p in sorted(top.rglob("*.py"))}


def imported(tree: ast.Module, known: set[str]) -> set[str]:
    """The modules ``tree`` imports anywhere; ``from pkg import mod`` counts as ``pkg.mod``."""
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                found.add(sub if sub in known else node.module)
    return found


BACKEND_MODULES = modules(BACKENDS)
ALL = {**BACKEND_MODULES, **modules(ESI)}


def test_backends_never_import_storage_and_only_public_core_modules():
    for name, tree in ALL.items():
        for target in imported(tree, set(ALL)):
            assert not target.startswith("acme_storage"), (name, target)
            if target.startswith("acme_core"):
                assert not any(part.startswith("_") for part in target.split(".")), (name, target)


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of ``graph`` with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in sorted(graph[node]):
            if target not in index:
                connect(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            connect(node)
    return found


def test_cycles_are_found():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_import_cycles_through_the_backends():
    """Core modules are in the graph too: a cycle back through acme_core counts."""
    everything = {**modules(ROOT / "src" / "acme_core"), **ALL}
    graph = {name: {t for t in imported(tree, set(everything)) if t in everything} - {name}
             for name, tree in everything.items()}
    ours = [c for c in cycles(graph) if any(not m.startswith("acme_core") for m in c)]
    assert ours == []


def _code_lines(node: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    """Lines of a function without its docstring."""
    lines = node.end_lineno - node.lineno + 1
    body = node.body
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
            and isinstance(body[0].value.value, str):
        lines -= body[0].end_lineno - body[0].lineno + 1
    return lines


def test_functions_are_short():
    long = [(name, node.name, _code_lines(node))
            for name, tree in BACKEND_MODULES.items() for node in ast.walk(tree)
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
            and _code_lines(node) > 60]
    assert long == []


@pytest.mark.parametrize("name", sorted(ALL))
def test_public_modules_say_what_they_export(name):
    """``__all__`` in every package and module (private ones too), naming only what is there."""
    module = importlib.import_module(name)
    assert isinstance(getattr(module, "__all__", None), list), name
    for exported in module.__all__:
        assert hasattr(module, exported), (name, exported)


def test_public_names_have_docstrings():
    missing = []
    for name in sorted(ALL):
        module = importlib.import_module(name)
        for exported in getattr(module, "__all__", []):
            obj = getattr(module, exported)
            if callable(obj) and not (obj.__doc__ or "").strip():
                missing.append(f"{name}.{exported}")
    assert missing == []
