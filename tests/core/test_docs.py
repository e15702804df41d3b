"""The documentation: it builds without warnings, and every example in it runs.

- ``>>>`` examples in the pages run as doctests, page by page, on the session's dask
  cluster, each page in a scratch directory;
- ``$ acme ...`` lines of ``console`` blocks run in the same directory after the page's
  doctests, their output compared with the page (``...`` matches anything);
- files the pages include (``literalinclude``) are run here or by the named tests;
- no page holds Python code that is not run (``code-block:: python`` is not allowed).
"""

from __future__ import annotations

import doctest
import importlib.util
import os
import re
import runpy
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
EXAMPLES = DOCS / "examples"
PAGES = sorted(DOCS.rglob("*.rst"))
FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE

#: every file a page includes, and the test that runs it
INCLUDED_AND_RUN = {
    "examples/walkthrough.py": "tests/test_newcomer.py::test_walkthrough_prints_results_and_tree",
    "docs/examples/local_cluster.py": "test_local_cluster_example",
    "docs/examples/slurm_run.py": "test_slurm_example",
    "docs/examples/array_run.py": "test_array_example",
    "docs/examples/plugin/my_acme_plugin.py": "test_plugin_example_passes_the_conformance_tests",
    "docs/examples/plugin/test_my_acme_plugin.py":
        "test_plugin_example_passes_the_conformance_tests",
    "plugins/acme-esi/src/acme_esi/plugin.py": "plugins/acme-esi/tests",
}


def _page_id(page: Path) -> str:
    return str(page.relative_to(DOCS))


def console_examples(text: str) -> list[tuple[str, str]]:
    """``(command, expected output)`` of every ``$ acme ...`` line in ``console`` blocks."""
    found: list[tuple[str, str]] = []
    for block in re.findall(r"^\.\. code-block:: console\n\n((?:(?:   .*)?\n)+)", text, re.M):
        current: list[str] | None = None
        for line in block.splitlines():
            line = line[3:]
            if line.startswith("$ "):
                current = [line[2:]]
                found.append(("", ""))
            elif current is not None:
                current.append(line)
            if current is not None:
                found[-1] = (current[0], "\n".join(current[1:]).strip() + "\n")
    return [(cmd, out) for cmd, out in found if cmd.startswith("acme ")]


# ------------------------------------------------------------------ the build
def test_docs_build_without_warnings(tmp_path):
    if importlib.util.find_spec("sphinx") is None:
        pytest.skip("sphinx is not installed (pip install 'acme-core[docs]')")
    out = subprocess.run([sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b",
                          "html", "-d", str(tmp_path / "doctrees"), str(DOCS),
                          str(tmp_path / "html")], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stderr.strip() == "", out.stderr
    html = (tmp_path / "html" / "plugins.html").read_text(encoding="utf-8")
    assert "acme_register_executors" in html and "ExecutorTests" in html


# ------------------------------------------------------------------ the examples
@pytest.mark.parametrize("page", PAGES, ids=_page_id)
def test_page_examples_run(page, client, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(EXAMPLES / "plugin"))
    text = page.read_text(encoding="utf-8")
    parser = doctest.DocTestParser()
    test = parser.get_doctest(text, {"__name__": "__main__"}, page.name, str(page), 0)
    report: list[str] = []
    runner = doctest.DocTestRunner(optionflags=FLAGS)
    try:
        runner.run(test, out=report.append)
    finally:
        test.globs.clear()
    assert runner.failures == 0, "".join(report)

    checker = doctest.OutputChecker()
    for command, expected in console_examples(text):
        env = {k: v for k, v in os.environ.items() if not k.startswith("ACME_")}
        done = subprocess.run([sys.executable, "-m", "acme_core.cli", *shlex.split(command)[1:]],
                              capture_output=True, text=True, timeout=120, env=env,
                              stdin=subprocess.DEVNULL)
        assert done.returncode in (0, 1), done.stderr
        assert checker.check_output(expected, done.stdout, FLAGS), (
            f"`{command}` in {page.name} printed\n{done.stdout}\nthe page says\n{expected}")


def test_local_cluster_example(tmp_path):
    """docs/examples/local_cluster.py (a one-worker cluster of its own, in a subprocess)."""
    out = subprocess.run([sys.executable, str(EXAMPLES / "local_cluster.py"),
                          str(tmp_path / "run")], capture_output=True, text=True, timeout=180,
                         cwd=tmp_path, stdin=subprocess.DEVNULL)
    assert out.returncode == 0, out.stderr
    assert "in memory: [33, 36]" in out.stdout
    assert "on disk: [18, 24, 30, 36]" in out.stdout


@pytest.mark.slurm
def test_slurm_example(tmp_path):
    from jobqueue_util import LOOPBACK, slurm_status

    running, why = slurm_status()
    if not running:
        pytest.skip(why)
    example = runpy.run_path(str(EXAMPLES / "slurm_run.py"), run_name="slurm_example")
    assert example["main"](str(tmp_path / "run"), **LOOPBACK) == [18, 24, 30, 36]
    assert (tmp_path / "run" / "job-logs").is_dir()


@pytest.mark.slurm
def test_array_example(tmp_path):
    """docs/examples/array_run.py: submit in one process, collect in another."""
    from jobqueue_util import slurm_status

    running, why = slurm_status()
    if not running:
        pytest.skip(why)
    out = str(tmp_path / "run")
    for step in ("submit", "collect"):
        done = subprocess.run([sys.executable, str(EXAMPLES / "array_run.py"), step, out],
                              capture_output=True, text=True, timeout=300, cwd=tmp_path,
                              stdin=subprocess.DEVNULL)
        assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "[18, 24, 30, 36]"
    assert (tmp_path / "run" / "job-logs").is_dir()


def test_plugin_example_passes_the_conformance_tests(tmp_path):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(EXAMPLES / "plugin"), os.environ.get("PYTHONPATH", "")])}
    out = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                          "--rootdir", str(tmp_path), str(EXAMPLES / "plugin")],
                         capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "29 passed" in out.stdout  # with StoreTests' test of chunk writers


# ------------------------------------------------------------------ meta
def test_no_page_holds_code_that_is_not_run():
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        assert not re.search(r"code-block::\s*(python|py|pycon|ipython)\b", text), (
            f"{page.name}: write Python examples as doctests (>>>) or as files under "
            "docs/examples/ that tests/test_docs.py runs")
        assert "sourcecode::" not in text and ".. code::" not in text, page.name
        for include in re.findall(r"literalinclude::\s*(\S+)", text):
            target = (page.parent / include).resolve().relative_to(ROOT).as_posix()
            assert target in INCLUDED_AND_RUN, f"{page.name} includes {target}, which no test runs"


def test_every_example_file_is_shown_and_run():
    shown = {(ROOT / p).resolve() for p in INCLUDED_AND_RUN}
    for path in EXAMPLES.rglob("*.py"):
        assert path.resolve() in shown, f"{path} is neither included in a page nor run"


def test_every_hookspec_is_documented_in_the_plugin_guide():
    from acme_core import hookspecs

    specs = [name for name, obj in vars(hookspecs).items()
             if callable(obj) and hasattr(obj, "acme_spec")]
    assert "acme_auto_backend" in specs and len(specs) >= 4
    guide = (DOCS / "plugins.rst").read_text(encoding="utf-8")
    for name in specs:
        assert f".. autofunction:: acme_core.hookspecs.{name}" in guide, (
            f"the hook {name} is not documented in docs/plugins.rst")


def test_console_examples_are_found():
    text = (DOCS / "guide" / "cli.rst").read_text(encoding="utf-8")
    commands = [cmd for cmd, _ in console_examples(text)]
    assert commands == ["acme inspect halve", "acme results halve"]
