"""The ``acme`` command line, run as a real subprocess on real runs of every store."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from acme_core import ParallelMap, ParallelMapError
from acme_core.manifest import MANIFEST_NAME

STORES = ["hdf5", "hdf5-single", "pickle", "zarr"]
N = 6


def fails_on_three(x, marker):
    if x == 3 and not os.path.exists(marker):
        raise ValueError(f"cannot handle {x}")
    return np.arange(3.0) + x


def acme(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None
         ) -> subprocess.CompletedProcess[str]:
    """Run ``python -m acme_core.cli ARGS`` and return what it did."""
    full_env = {k: v for k, v in os.environ.items()
                if k not in ("ACME_DISABLE_PLUGIN_AUTOLOAD", "ACME_BLOCK_PLUGINS")}
    full_env.update(env or {})
    return subprocess.run([sys.executable, "-m", "acme_core.cli", *args], capture_output=True,
                          text=True, timeout=120, env=full_env, cwd=cwd,
                          stdin=subprocess.DEVNULL)


@pytest.fixture(scope="module")
def runs(tmp_path_factory, dask_session) -> Path:
    """Runs on the session's dask cluster: for every store one with call 3 failed
    (``<store>-failed``) and one complete (``<store>-ok``); plus a stacked run with a failure."""
    dask_session.healthy()  # both workers up; ParallelMap(backend="auto") attaches to it
    base = tmp_path_factory.mktemp("cli-runs")
    marker = str(base / "fixed")
    for store in STORES:
        with ParallelMap(fails_on_three, list(range(N)), marker, store=store,
                         output_dir=base / f"{store}-failed", progress=False) as pmap:
            with pytest.raises(ParallelMapError):
                pmap.compute()
    with ParallelMap(fails_on_three, list(range(N)), marker, result_shape=(None, 3),
                     output_dir=base / "stacked-failed", progress=False) as pmap:
        with pytest.raises(ParallelMapError):
            pmap.compute()
    open(marker, "w").close()
    for store in STORES:
        with ParallelMap(fails_on_three, list(range(N)), marker, store=store,
                         output_dir=base / f"{store}-ok", progress=False) as pmap:
            pmap.compute()
    return base


# ------------------------------------------------------------------ inspect
@pytest.mark.parametrize("store", STORES)
def test_inspect_a_complete_run(runs, store):
    out = acme("inspect", str(runs / f"{store}-ok"))
    assert out.returncode == 0, out.stderr
    text = out.stdout
    assert f"Function       fails_on_three ({N} calls)" in text
    assert f"Store          {store}" in text
    assert f"{N} done, 0 failed, 0 missing  -> complete" in text
    assert MANIFEST_NAME in text and "total" in text
    container = {"hdf5": "fails_on_three.h5", "hdf5-single": "fails_on_three.h5",
                 "pickle": "fails_on_three_0.pickle", "zarr": "fails_on_three.zarr/"}[store]
    assert container in text


@pytest.mark.parametrize("store", STORES)
def test_inspect_a_failed_run(runs, store):
    out = acme("inspect", str(runs / f"{store}-failed"))
    assert out.returncode == 1, out.stderr  # a run with failures
    text = out.stdout
    assert f"{N - 1} done, 1 failed, 0 missing  -> INCOMPLETE" in text
    assert "Failed calls   3" in text
    assert "task 3: ValueError: cannot handle 3" in text
    assert "resume=True" in text


def test_inspect_tracebacks_and_json(runs):
    out = acme("inspect", "--tracebacks", str(runs / "hdf5-failed"))
    assert "in fails_on_three" in out.stdout  # the call's own traceback
    out = acme("inspect", "--json", str(runs / "hdf5-failed" / "fails_on_three.h5"))
    assert out.returncode == 1
    state = json.loads(out.stdout)
    assert state["done"] == N - 1 and state["failed"] == {"3": "ValueError: cannot handle 3"}
    assert state["missing"] == [] and state["complete"] is False
    assert state["store"] == "hdf5" and state["bytes"] > 0
    assert {f["name"] for f in state["files"]} >= {"fails_on_three.h5", "fails_on_three_payload/"}


# ------------------------------------------------------------------ results
@pytest.mark.parametrize("store", STORES)
def test_results_of_every_store(runs, store):
    out = acme("results", str(runs / f"{store}-ok"))
    assert out.returncode == 0, out.stderr
    assert "open_results: list" in out.stdout
    assert f"length    {N}" in out.stdout
    assert f"{N} x ndarray float64 (3,)" in out.stdout
    assert "[0] array([0., 1., 2.])" in out.stdout
    out = acme("results", str(runs / f"{store}-failed"))
    assert out.returncode == 1
    assert "missing   1 call without a result, None in the list (task ids 3)" in out.stdout


def test_results_of_a_stacked_run_show_the_masked_slots(runs):
    out = acme("results", "--json", str(runs / "stacked-failed"))
    assert out.returncode == 1
    summary = json.loads(out.stdout)
    assert summary["type"] == "numpy.ma.MaskedArray"
    assert summary["shape"] == [N, 3] and summary["dtype"] == "float64"
    assert summary["missing"] == [3]
    text = acme("results", str(runs / "stacked-failed")).stdout
    assert f"shape     ({N}, 3), dtype float64" in text
    assert f"masked    1 of {N} call slots (task ids 3)" in text


# ------------------------------------------------------------------ no run, usage
def test_a_directory_without_a_run(tmp_path):
    for command in ("inspect", "results"):
        out = acme(command, str(tmp_path))
        assert out.returncode == 2
        assert "holds no acme-core run: no acme_manifest.json" in out.stderr
        assert out.stdout == ""
    out = acme("inspect", str(tmp_path / "nowhere"))
    assert out.returncode == 2 and "no such file or directory" in out.stderr
    (tmp_path / MANIFEST_NAME).write_text("{not json")
    out = acme("inspect", str(tmp_path))
    assert out.returncode == 2 and "cannot be read" in out.stderr


def test_usage_errors():
    out = acme()
    assert out.returncode == 2 and "inspect" in out.stderr
    out = acme("inspect")
    assert out.returncode == 2 and "RUN_DIR" in out.stderr
    out = acme("clean", "--older-than", "-3")
    assert out.returncode == 2 and "0 or more days" in out.stderr


def test_the_installed_console_script():
    script = Path(sys.executable).with_name("acme")
    if not script.exists():
        pytest.skip("acme-core is not installed with its console script in this environment")
    out = subprocess.run([str(script), "--version"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.startswith("acme-core ")


# ------------------------------------------------------------------ plugins
def test_plugins_lists_builtins():
    out = acme("plugins", "--json", env={"ACME_DISABLE_PLUGIN_AUTOLOAD": "1"})
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    backends = {b["name"]: b for b in report["backends"]}
    assert {"dask-local", "dask", "slurm", "pbs", "sge"} <= set(backends)
    assert backends["dask-local"]["distribution"].startswith("acme-core ")
    assert {"hdf5", "hdf5-single", "pickle", "zarr", "memory"} <= \
        {s["name"] for s in report["stores"]}
    assert "local" in {c["name"] for c in report["cluster_setups"]}
    assert report["failed"] == {}


def test_plugins_lists_a_third_party_plugin(toy_plugin_path):
    env = {"PYTHONPATH": os.pathsep.join([str(toy_plugin_path),
                                          os.environ.get("PYTHONPATH", "")])}
    out = acme("plugins", env=env)
    assert out.returncode == 1, out.stderr  # its "broken" entry point fails to load
    lines = out.stdout.splitlines()
    toy_threads = next(line for line in lines if line.strip().startswith("toy-threads"))
    assert "toy_acme_plugin.ToyThreads" in toy_threads and "toy-acme-plugin 0.1" in toy_threads
    assert any(line.strip().startswith("toy-json") for line in lines)
    assert "Plugins that failed to load" in out.stdout
    assert any(line.strip().startswith("broken:") for line in lines)
    assert "Traceback" not in out.stderr and "PluginWarning" not in out.stderr
    # blocking the broken one: nothing failed, exit code 0
    out = acme("plugins", "--json", env={**env, "ACME_BLOCK_PLUGINS": "broken"})
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    states = {e["name"]: e["state"] for e in report["entry_points"]}
    assert states["broken"] == "blocked" and states["toy"] == "loaded"


# ------------------------------------------------------------------ clean
def _aged(path: Path, days: float) -> Path:
    path.mkdir()
    (path / "file.txt").write_text("x" * 100)
    then = time.time() - days * 86400
    os.utime(path, (then, then))
    return path


def test_clean(tmp_path):
    old = _aged(tmp_path / "ACME_20200101-000000-000000", 10)
    new = _aged(tmp_path / "ACME_20260101-000000-000000", 1)
    other = _aged(tmp_path / "results", 30)
    out = acme("clean", "--older-than", "7", "--dry-run", str(tmp_path))
    assert out.returncode == 0, out.stderr
    assert old.name in out.stdout and new.name not in out.stdout
    assert "Would remove 1 directories" in out.stdout
    assert old.exists()
    out = acme("clean", "--older-than", "7", str(tmp_path))  # no terminal: no question
    assert out.returncode == 0, out.stderr
    assert "Removed 1 directories" in out.stdout
    assert not old.exists() and new.exists() and other.exists()
    out = acme("clean", "--older-than", "7", cwd=tmp_path)  # DIR defaults to "."
    assert out.returncode == 0 and "No ACME_* directories older than 7 days" in out.stdout
    out = acme("clean", "--older-than", "0", "--yes", str(tmp_path))
    assert out.returncode == 0 and not new.exists() and other.exists()
    out = acme("clean", str(tmp_path / "file-not-dir"))
    assert out.returncode == 2 and "is not a directory" in out.stderr
