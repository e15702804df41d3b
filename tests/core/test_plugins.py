"""The plugin system: built-ins through the hooks, a real third-party plugin, lookups."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

import acme_core
from acme_core.plugins import did_you_mean, lookup, reset_plugins


def test_builtins_are_listed():
    assert {"dask-local", "dask"} <= set(acme_core.list_backends())
    assert {"hdf5", "pickle", "memory"} <= set(acme_core.list_stores())
    assert "local" in acme_core.list_cluster_setups()


def test_listing_is_sorted_and_maps_to_classes():
    backends = acme_core.list_backends()
    assert list(backends) == sorted(backends)
    assert backends["dask-local"].name == "dask-local"
    assert acme_core.list_stores()["hdf5"].name == "hdf5"


def test_unknown_backend_lists_names_and_closest_match():
    def f(x):
        return x

    with pytest.raises(ValueError) as info:
        acme_core.ParallelMap(f, [1, 2], backend="dask-locl")
    msg = str(info.value)
    assert "`backend`" in msg and "'dask-locl'" in msg
    assert "'dask-local'" in msg and "Did you mean 'dask-local'?" in msg


def test_unknown_store_lists_names(in_tmp):
    def f(x):
        return x

    with pytest.raises(ValueError, match=r"`store` has to be one of .*'hdf5'.*not 'hfd5'.*Did you mean 'hdf5'"):
        acme_core.ParallelMap(f, [1, 2], store="hfd5")
    assert list(in_tmp.iterdir()) == []  # nothing written before the error


def test_did_you_mean_is_empty_for_nothing_close():
    assert did_you_mean("zzzz", ["hdf5", "pickle"]) == ""
    with pytest.raises(ValueError, match=r"\['a', 'b'\]"):
        lookup("thing", "c", {"b": 1, "a": 2}, "param")


def test_importing_changes_no_global_state():
    code = textwrap.dedent("""
        import logging, sys
        hook = sys.excepthook
        root = list(logging.getLogger().handlers)
        import acme_core
        assert sys.excepthook is hook, "excepthook replaced"
        assert logging.getLogger().handlers == root
        assert logging.getLogger("acme").handlers == []
        assert "dask" not in sys.modules and "h5py" not in sys.modules, sorted(
            m for m in sys.modules if m.startswith(("dask", "h5py")))
        print("ok")
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


SCRIPT = textwrap.dedent("""
    import json, sys, warnings
    from pathlib import Path
    warnings.simplefilter("always")

    with warnings.catch_warnings(record=True) as caught:
        import acme_core
        backends = sorted(acme_core.list_backends())
        stores = sorted(acme_core.list_stores())
    from acme_core.plugins import failed_plugins

    def f(x, y, z=3):
        return (x + y) * z

    if __name__ == "__main__":
        result = {"backends": backends, "stores": stores,
                  "warnings": [str(w.message) for w in caught], "failed": failed_plugins()}
        if "toy-threads" in backends and "toy-json" in stores:
            with acme_core.ParallelMap(f, [2, 4, 6, 8], 4, backend="toy-threads",
                                       store="toy-json", output_dir=sys.argv[1],
                                       progress=False) as pmap:
                result["paths"] = pmap.compute()
            result["read"] = acme_core.open_results(sys.argv[1])
            result["values"] = [json.loads(Path(p).read_text()) for p in result["paths"]]
        print(json.dumps(result))
""")


def _run_with_plugin(tmp_path, *plugin_paths, **env):
    script = tmp_path / "use_plugin.py"
    script.write_text(SCRIPT)
    full_env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [*map(str, plugin_paths), os.environ.get("PYTHONPATH", "")]), **env}
    for key in ("ACME_DISABLE_PLUGIN_AUTOLOAD", "ACME_BLOCK_PLUGINS"):
        if key not in env:
            full_env.pop(key, None)
    out = subprocess.run([sys.executable, str(script), str(tmp_path / "run")], capture_output=True,
                         text=True, timeout=120, env=full_env, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_third_party_plugin_is_used_by_name(tmp_path, toy_plugin_path):
    result = _run_with_plugin(tmp_path, toy_plugin_path)
    assert "toy-threads" in result["backends"] and "dask-local" in result["backends"]
    assert "toy-json" in result["stores"]
    assert result["values"] == [18, 24, 30, 36]
    assert result["read"] == [18, 24, 30, 36]
    # its thread-pool executor ran everything in the driver: no dask was started
    assert all(p.endswith(f"f_{i}.json") for i, p in enumerate(result["paths"]))


def test_broken_plugin_warns_and_is_skipped(tmp_path, toy_plugin_path):
    result = _run_with_plugin(tmp_path, toy_plugin_path)
    assert "broken" in result["failed"]
    assert any("'broken'" in w and "failed to load and is skipped" in w
               and "needs a package that is not installed" in w for w in result["warnings"])
    assert result["values"] == [18, 24, 30, 36]  # the working plugin still works


def test_block_plugins(tmp_path, toy_plugin_path):
    result = _run_with_plugin(tmp_path, toy_plugin_path, ACME_BLOCK_PLUGINS="broken,toy")
    assert "toy-threads" not in result["backends"]
    assert result["failed"] == {} and result["warnings"] == []
    assert "dask-local" in result["backends"]


def test_disable_autoload_keeps_builtins(tmp_path, toy_plugin_path):
    result = _run_with_plugin(tmp_path, toy_plugin_path, ACME_DISABLE_PLUGIN_AUTOLOAD="1")
    assert "toy-json" not in result["stores"]
    assert {"hdf5", "pickle", "memory"} <= set(result["stores"])
    assert {"dask-local", "dask"} <= set(result["backends"])


def test_misspelt_hook_warns_with_the_closest_name(tmp_path, toy_plugin_path,
                                                   rival_plugin_path):
    result = _run_with_plugin(tmp_path, toy_plugin_path, rival_plugin_path,
                              ACME_BLOCK_PLUGINS="shadow")
    said = [w for w in result["warnings"] if "acme_register_executor'" in w]
    assert len(said) == 1, result["warnings"]
    assert "'misspelt'" in said[0] and "is not an acme hook" in said[0]
    assert "Did you mean 'acme_register_executors'?" in said[0]
    assert "never-registered" not in result["backends"]
    assert result["values"] == [18, 24, 30, 36]  # everything else still works


def test_duplicate_names_warn_naming_both_distributions_and_the_first_wins(
        tmp_path, toy_plugin_path, rival_plugin_path):
    result = _run_with_plugin(tmp_path, toy_plugin_path, rival_plugin_path,
                              ACME_BLOCK_PLUGINS="misspelt")
    store = [w for w in result["warnings"] if "the store 'hdf5'" in w]
    backend = [w for w in result["warnings"] if "the backend 'toy-threads'" in w]
    assert len(store) == 1 and len(backend) == 1, result["warnings"]
    assert "distribution 'acme-core'" in store[0]
    assert "distribution 'toy-acme-rivals'" in store[0] and "ShadowStore" in store[0]
    assert "distribution 'toy-acme-plugin'" in backend[0]
    assert "ACME_BLOCK_PLUGINS=shadow" in store[0]
    # the first one keeps the name: the run used the toy plugin's threads, not the rival's
    assert result["values"] == [18, 24, 30, 36]


def test_lookup_names_the_registered_object(tmp_path, toy_plugin_path, rival_plugin_path):
    code = textwrap.dedent("""
        import warnings
        warnings.simplefilter("ignore")
        from acme_core.plugins import registries
        entry = registries().stores.entry("hdf5")
        print(entry.distribution, entry.plugin, entry.obj.__module__)
    """)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(toy_plugin_path),
                                                         str(rival_plugin_path)])}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60, env=env)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["acme-core", "acme_storage.plugin", out.stdout.split()[2]]
    assert out.stdout.split()[2].startswith("acme_storage.")


def test_plugin_class_and_instance_can_be_passed_directly(in_tmp):
    from concurrent.futures import ThreadPoolExecutor

    from acme_storage.pickled import PickleStore

    class Threads(ThreadPoolExecutor):
        name = "threads"

    def f(x):
        return x * 2

    with acme_core.ParallelMap(f, [1, 2, 3], backend=Threads, store=PickleStore,
                               backend_options={"max_workers": 2},
                               store_options={"protocol": 4}, progress=False) as pmap:
        paths = pmap.compute()
    assert acme_core.open_results(paths[0]) == [2, 4, 6]
    pool = Threads(max_workers=2)
    with acme_core.ParallelMap(f, [1, 2, 3], backend=pool, write_worker_results=False,
                               progress=False) as pmap:
        assert pmap.compute() == [2, 4, 6]
    # an executor the user brought is left running with stop_client="auto"
    assert pool.submit(f, 5).result() == 10
    pool.shutdown()


def test_bad_backend_options_fail_before_anything_starts(in_tmp):
    def f(x):
        return x

    with pytest.raises(ValueError, match=r"`backend_options` .*DaskLocalExecutor"):
        acme_core.ParallelMap(f, [1, 2], backend="dask-local", backend_options={"bogus": 1},
                              write_worker_results=False)
    with pytest.raises(ValueError, match="`store_options`"):
        acme_core.ParallelMap(f, [1, 2], store_options={"bogus": 1})
    assert list(in_tmp.iterdir()) == []


def test_reset_plugins_rediscovers():
    before = acme_core.list_backends()
    reset_plugins()
    assert acme_core.list_backends().keys() == before.keys()


def test_missing_optional_dependency_names_the_pip_command(tmp_path):
    code = textwrap.dedent("""
        import sys
        sys.modules["h5py"] = None  # as if h5py were not installed
        from acme_core import ParallelMap, MissingDependencyError

        def f(x):
            return x

        try:
            ParallelMap(f, [1, 2])
        except MissingDependencyError as err:
            print("ERROR", err)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "The store 'hdf5' needs the package 'h5py'" in out.stdout
    assert "pip install 'acme-core[hdf5]'" in out.stdout
    assert list(tmp_path.iterdir()) == []  # failed before any directory was made


AUTO_SCRIPT = textwrap.dedent("""
    import json, types
    from acme_core import ParallelMap, hookimpl
    from acme_core.plugins import get_plugin_manager

    site = types.ModuleType("site_preset")

    @hookimpl
    def acme_auto_backend():
        return ("dask-local", {"n_workers": 1})

    site.acme_auto_backend = acme_auto_backend

    def f(x):
        from distributed import get_worker
        return get_worker().address

    if __name__ == "__main__":
        get_plugin_manager().register(site, name="site-preset")
        with ParallelMap(f, [1, 2, 3, 4], write_worker_results=False) as pmap:
            print(json.dumps(pmap.compute()))
""")


def test_site_plugin_chooses_the_auto_backend(tmp_path):
    script = tmp_path / "auto.py"
    script.write_text(AUTO_SCRIPT)
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                         timeout=120, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "a site plugin chose 'dask-local'" in out.stderr
    assert len(set(json.loads(out.stdout.strip().splitlines()[-1]))) == 1  # its one worker
