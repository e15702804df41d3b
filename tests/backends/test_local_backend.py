"""Starting, reusing and stopping local dask clusters, each in a fresh interpreter.

Client lifecycle is process-global state in dask, so every scenario runs as a
script of its own, the way a user runs it, with a real LocalCluster.
"""

from __future__ import annotations

import json
import os
import textwrap

import pytest

from script_runner import run_script

PRELUDE = textwrap.dedent("""
    import json
    from distributed import get_client
    from acme_core import ParallelMap, cluster_cleanup, local_cluster_setup

    def f(x, y, z=3):
        return (x + y) * z

    def running():
        try:
            return get_client().status == "running"
        except ValueError:
            return False
""")


def run(tmp_path, body: str) -> dict:
    script = tmp_path / "scenario.py"
    script.write_text(PRELUDE + "\nif __name__ == '__main__':\n" + textwrap.indent(
        textwrap.dedent(body), "    "))
    out = run_script(script, cwd=tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr
    result = json.loads(out.stdout.strip().splitlines()[-1])
    result["stderr"] = out.stderr
    return result


def test_auto_starts_a_local_cluster_and_stops_it(tmp_path):
    result = run(tmp_path, """
        with ParallelMap(f, [2, 4, 6, 8], 4, write_worker_results=False, n_workers=2) as pmap:
            values = pmap.compute()
            during = running()
            workers = len(get_client().scheduler_info()["workers"])
        print(json.dumps({"values": values, "during": during, "after": running(),
                          "workers": workers}))
    """)
    assert result["values"] == [18, 24, 30, 36]
    assert result["during"] is True and result["workers"] == 2
    assert result["after"] is False  # stop_client="auto": what it started, it stops
    assert "Successfully shut down LocalCluster" in result["stderr"]


def test_auto_attaches_to_a_running_client_and_leaves_it(tmp_path):
    result = run(tmp_path, """
        client = local_cluster_setup(n_workers=1, interactive=False)
        with ParallelMap(f, [2, 4, 6, 8], 4, write_worker_results=False) as pmap:
            values = pmap.compute()
        same = get_client() is client and client.status == "running"
        with ParallelMap(f, [1], 1, write_worker_results=False, stop_client=True) as pmap:
            pmap.compute()
        print(json.dumps({"values": values, "kept": same, "after_true": running()}))
    """)
    assert result["values"] == [18, 24, 30, 36]
    assert result["kept"] is True
    assert result["after_true"] is False  # stop_client=True stops even a client we found
    assert "Attaching to parallel computing client" in result["stderr"]


def test_dask_local_backend_with_resources(tmp_path):
    result = run(tmp_path, """
        from acme_backends.dask import DaskLocalExecutor
        ex = DaskLocalExecutor(n_workers=2, mem_per_worker="2GB")
        info = ex.client.scheduler_info()["workers"]
        limits = sorted(w["memory_limit"] for w in info.values())
        ex.shutdown()
        with ParallelMap(f, [2, 4, 6, 8], 4, backend="dask-local", n_workers=1,
                         write_worker_results=False) as pmap:
            values = pmap.compute()
        print(json.dumps({"limits": limits, "values": values, "after": running()}))
    """)
    assert result["limits"] == [2_000_000_000, 2_000_000_000]  # decimal GB, as dask and ACME
    assert result["values"] == [18, 24, 30, 36]
    assert result["after"] is False


def test_resources_per_call_on_a_local_cluster(tmp_path):
    """Issue 17: ``resources`` on 'dask-local': threads of BLAS/OpenMP, memory limit, worker
    count from the machine (2 cores here: 2 cores per worker leave room for one worker)."""
    result = run(tmp_path, """
        import os
        from distributed import get_worker

        def where(x):
            return [os.environ["OMP_NUM_THREADS"], get_worker().memory_manager.memory_limit]

        with ParallelMap(where, [1, 2, 3], backend="dask-local", write_worker_results=False,
                         resources={"cores": 2, "mem": "1GB"}) as pmap:
            values = pmap.compute()
            workers = len(pmap.executor.client.scheduler_info()["workers"])
        print(json.dumps({"values": values, "workers": workers}))
    """)
    assert result["values"] == [["2", 1_000_000_000]] * 3
    assert result["workers"] == max(1, (os.cpu_count() or 1) // 2)


@pytest.mark.parametrize(("resources", "message"), [
    ({"cores": 10_000}, r"`resources\['cores'\]` 10,000 per worker is more than this machine"),
    ({"mem": "100TB"}, r"`resources\['mem'\]` 100,000,000,000,000 per worker is more than "
                       r"this machine has \([\d,]+ bytes of memory\)"),
    ({"gpus": 1}, r"`resources\['gpus'\]` 1 per worker is more than this machine has "
                  r"\(no GPUs \(nvidia-smi -L\)\)"),
])
def test_resources_beyond_this_machine_are_refused_before_anything(resources, message, in_tmp,
                                                                   no_process_starts):
    from acme_backends.dask import DaskLocalExecutor
    from acme_backends.dask.resources import local_gpus
    from acme_core import ParallelMap
    from acme_core.errors import ArgumentValueError

    if "gpus" in resources and local_gpus():
        resources = {"gpus": local_gpus() + 1}  # a machine with GPUs: one more than it has
        message = "per worker is more than this machine has"
    with pytest.raises(ArgumentValueError, match=message) as err:
        DaskLocalExecutor(resources=resources)
    assert err.value.parameter == "resources"
    with pytest.raises(ValueError, match=message):
        ParallelMap(abs, [1, 2], backend="dask-local", resources=resources, output_dir="out")
    assert list(in_tmp.iterdir()) == []


def test_resources_mem_and_mem_per_worker_have_to_agree(no_process_starts):
    from acme_backends.dask import DaskLocalExecutor
    from acme_core.errors import ArgumentValueError

    with pytest.raises(ArgumentValueError, match="disagree: give one"):
        DaskLocalExecutor.check_options({"resources": {"mem": "1GB"}, "mem_per_worker": "2GB"})
    DaskLocalExecutor.check_options({"resources": {"mem": "2GB"}, "mem_per_worker": "2GB"})


def test_local_cluster_setup_and_cleanup(tmp_path):
    result = run(tmp_path, """
        client = local_cluster_setup(n_workers=2, mem_per_worker="1GB", interactive=False)
        workers = len(client.scheduler_info()["workers"])
        dashboard = client.dashboard_link
        cluster = local_cluster_setup(n_workers=1, interactive=False, start_client=False)
        kind = type(cluster).__name__
        cluster.close()
        cluster_cleanup(client)
        print(json.dumps({"workers": workers, "after": running(), "kind": kind,
                          "dashboard": dashboard}))
    """)
    assert result["workers"] == 2 and result["after"] is False
    assert result["kind"] == "LocalCluster"
    assert result["dashboard"].startswith("http://127.0.0.1:")  # bound to localhost only


MMAPPED_BYTES = textwrap.dedent("""
    def new_mmapped_bytes():
        # glibc's count of bytes in mmapped chunks, before and after a 2 MB array
        # (everything defined in here: the function travels to the worker by value)
        import ctypes
        import numpy as np

        class MallInfo2(ctypes.Structure):
            _fields_ = [(name, ctypes.c_size_t) for name in (
                "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks",
                "uordblks", "fordblks", "keepcost")]

        libc = ctypes.CDLL("libc.so.6")
        libc.mallinfo2.restype = MallInfo2
        before = libc.mallinfo2().hblkhd
        array = np.ones(250_000)
        after = libc.mallinfo2().hblkhd
        del array
        return after - before
""")


def test_local_workers_keep_freed_memory_for_reuse(tmp_path):
    """Arrays below 32 MiB come from the heap in acme-core's workers, not a fresh mmap.

    dask's default (MALLOC_TRIM_THRESHOLD_=65536) maps every array from 128 KiB up
    afresh; ``worker_class=distributed.Nanny`` is the documented way back to it.
    Reads glibc's own accounting (mallinfo2), so it runs on glibc systems only.
    """
    import ctypes.util

    if "libc.so.6" not in (ctypes.util.find_library("c") or ""):
        pytest.skip("needs glibc (mallinfo2)")
    result = run(tmp_path, MMAPPED_BYTES + textwrap.dedent("""
        import os
        from distributed import Nanny

        client = local_cluster_setup(n_workers=1, interactive=False)
        ours = [client.submit(new_mmapped_bytes, pure=False).result() for _ in range(3)]
        env = client.submit(lambda: os.environ["MALLOC_MMAP_THRESHOLD_"]).result()
        cluster_cleanup(client)
        client = local_cluster_setup(n_workers=1, interactive=False, worker_class=Nanny)
        dasks = [client.submit(new_mmapped_bytes, pure=False).result() for _ in range(3)]
        cluster_cleanup(client)
        print(json.dumps({"ours": ours, "dask": dasks, "env": env}))
    """))
    assert result["env"] == str(32 * 2**20)
    assert result["ours"][1:] == [0, 0], result  # the first may still grow the heap
    assert all(n >= 2_000_000 for n in result["dask"]), result


def test_cluster_cleanup_without_client_warns(tmp_path):
    result = run(tmp_path, """
        cluster_cleanup()
        print(json.dumps({}))
    """)
    assert "No dangling clients or clusters found." in result["stderr"]


def test_setup_keyword_errors():
    from acme_core import cluster_cleanup, local_cluster_setup

    with pytest.raises(TypeError, match="`interactive` has to be `True` or `False`, not invalid"):
        local_cluster_setup(interactive="invalid")
    with pytest.raises(ValueError, match="`n_workers` has to be an integer between 1 and inf"):
        local_cluster_setup(n_workers=0)
    with pytest.raises(TypeError, match="`client` has to be a dask client object"):
        cluster_cleanup(3)


# ------------------------------------------------------------------ refused before a process starts
@pytest.fixture
def no_process_starts():
    """The test body must start no process and no dask cluster."""
    import psutil
    from distributed.deploy.spec import SpecCluster

    me = psutil.Process()
    children = {p.pid for p in me.children(recursive=True)}
    clusters = len(SpecCluster._instances)
    yield
    assert {p.pid for p in me.children(recursive=True)} <= children
    assert len(SpecCluster._instances) == clusters


@pytest.mark.parametrize(("options", "parameter", "message"), [
    ({"bogus": 3}, "bogus", r"unexpected keyword argument\(s\) \['bogus'\]"),
    ({"n_worker": 2}, "n_worker", "Did you mean 'n_workers'"),
    ({"processes": "maybe"}, "processes", "`processes` has to be True or False, not 'maybe'"),
    ({"scheduler_port": True}, "scheduler_port", "has to be a port number"),
    ({"n_workers": "x"}, "n_workers", "`n_workers` has to be a scalar"),
    ({"threads_per_worker": 0}, "threads_per_worker", "between 1 and inf"),
])
def test_local_cluster_setup_refuses_bad_keywords_before_starting(options, parameter, message,
                                                                   no_process_starts):
    """Before: ``bogus=3`` reached the workers and ended as 'ReusingNanny failed to start'."""
    from acme_backends.dask import local_cluster_setup
    from acme_core.errors import ArgumentError

    with pytest.raises((TypeError, ValueError), match=message) as err:
        local_cluster_setup(interactive=False, **options)
    assert isinstance(err.value, ArgumentError) and err.value.parameter == parameter


@pytest.mark.parametrize(("options", "parameter"), [
    ({"bogus": 3}, "bogus"),
    ({"n_workers": "x"}, "n_workers"),
    ({"processes": "maybe"}, "processes"),
    ({"mem_per_worker": 2}, "mem_per_worker"),
])
def test_dask_local_executor_refuses_bad_options_before_starting(options, parameter, in_tmp,
                                                                 no_process_starts):
    """The class itself, its check_options and ParallelMap's construction refuse alike."""
    from acme_backends.dask import DaskLocalExecutor
    from acme_core import ParallelMap
    from acme_core.errors import ArgumentTypeError

    with pytest.raises(ArgumentTypeError) as err:
        DaskLocalExecutor(**options)
    assert err.value.parameter == parameter
    with pytest.raises(ArgumentTypeError):
        DaskLocalExecutor.check_options(options)
    # ParallelMap asks check_options when it is constructed, before anything starts
    with pytest.raises(ValueError, match=f"`backend_options`.*{parameter}"):
        ParallelMap(abs, [1, 2], backend="dask-local", backend_options=options)
    assert list(in_tmp.iterdir()) == []


def test_dask_local_executor_refuses_bad_values(no_process_starts):
    from acme_backends.dask import DaskLocalExecutor
    from acme_core.errors import ArgumentValueError

    for options in ({"n_workers": 0}, {"mem_per_worker": "lots"}):
        with pytest.raises(ArgumentValueError):
            DaskLocalExecutor(**options)
        with pytest.raises(ArgumentValueError):
            DaskLocalExecutor.check_options(options)
    DaskLocalExecutor.check_options({"n_workers": 2, "mem_per_worker": "1GB",
                                     "processes": False, "worker_class": "distributed.Nanny"})


def test_cluster_cleanup_is_an_argument_error():
    from acme_backends.dask import cluster_cleanup
    from acme_core.errors import ArgumentTypeError

    with pytest.raises(ArgumentTypeError) as err:
        cluster_cleanup("not a client")
    assert err.value.parameter == "client"
