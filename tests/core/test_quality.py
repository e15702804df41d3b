"""The sources stay readable and checked: short functions, typed packages, ruff and mypy clean."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SOURCES = [ROOT / "src", ROOT / "plugins" / "acme-esi" / "src"]
#: a function longer than this (without its docstring) is split, unless it is a table
MAX_FUNCTION_LINES = 60


def _files() -> list[Path]:
    return sorted(p for base in SOURCES for p in base.rglob("*.py"))


def _length(node: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    lines = (node.end_lineno or node.lineno) - node.lineno + 1
    first = node.body[0]
    if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) \
            and isinstance(first.value.value, str):
        lines -= (first.end_lineno or first.lineno) - first.lineno + 1
    return lines


def test_no_function_is_longer_than_a_screen():
    long = []
    for path in _files():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) \
                    and _length(node) > MAX_FUNCTION_LINES:
                long.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name} "
                            f"({_length(node)} lines)")
    assert long == []


def test_every_package_is_typed_and_says_what_it_exports():
    packages = sorted({p.parent for p in _files() if p.name == "__init__.py"})
    assert len(packages) >= 5
    top_level = [p for p in packages if p.parent in SOURCES]
    assert [p.name for p in top_level if not (p / "py.typed").is_file()] == []
    without_all = [str(p.relative_to(ROOT)) for p in packages
                   if "__all__" not in (p / "__init__.py").read_text(encoding="utf-8")]
    assert without_all == []


def _tool(name: str) -> list[str]:
    if shutil.which(name) is None and subprocess.run(
            [sys.executable, "-m", name, "--version"], capture_output=True).returncode != 0:
        pytest.fail(f"{name} is not installed: pip install 'acme-core[test]'")
    return [sys.executable, "-m", name]


def test_ruff_is_clean():
    out = subprocess.run([*_tool("ruff"), "check", "src", "tests", "examples", "plugins"],
                         cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr


@pytest.mark.slow
def test_mypy_strict_is_clean():
    # the configuration (strict, the files) is in pyproject.toml
    out = subprocess.run([*_tool("mypy")], cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stdout + out.stderr
