"""The two traps a newcomer hit with ACME, and the README walkthrough script itself.

1. ACME insists on SLURM as soon as ``sinfo`` is on the PATH; acme-core runs
   locally unless told otherwise.
2. A script without ``if __name__ == "__main__":`` hangs ACME until killed;
   acme-core stops at once and says what to add.
"""

from __future__ import annotations

import os
import stat
import textwrap
import time
from pathlib import Path

from script_runner import run_script

ROOT = Path(__file__).resolve().parents[2]
WALKTHROUGH = ROOT / "examples" / "walkthrough.py"


def test_walkthrough_prints_results_and_tree(tmp_path):
    out = run_script(WALKTHROUGH, str(tmp_path / "run"), cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "results read back from" in out.stdout and "[18, 24, 30, 36]" in out.stdout
    assert "n_inputs=4 with scalars: [15, 15, 15, 15]" in out.stdout
    assert "f_payload/" in out.stdout and "f_3.h5" in out.stdout
    assert (tmp_path / "run" / "f.h5").is_file()


def test_walkthrough_runs_locally_when_sinfo_exists(tmp_path):
    # A stand-in `sinfo` (a real SLURM client would do the same): its mere presence
    # must not switch acme-core to SLURM.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    sinfo = bin_dir / "sinfo"
    sinfo.write_text("#!/bin/sh\necho 'slurm 23.02.7'\n")
    sinfo.chmod(sinfo.stat().st_mode | stat.S_IEXEC)
    env = {"PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    out = run_script(WALKTHROUGH, str(tmp_path / "run"), cwd=tmp_path, env=env)
    assert out.returncode == 0, out.stderr
    assert "[18, 24, 30, 36]" in out.stdout


NO_GUARD = textwrap.dedent("""
    from acme_core import ParallelMap

    def f(x, y, z=3):
        return (x + y) * z

    with ParallelMap(f, [2, 4, 6, 8], 4) as pmap:
        print("RESULTS", pmap.compute())
""")


def test_script_without_main_guard_stops_at_once_with_advice(tmp_path):
    script = tmp_path / "no_guard.py"
    script.write_text(NO_GUARD)
    start = time.monotonic()
    out = run_script(script, cwd=tmp_path, timeout=60)
    assert time.monotonic() - start < 30
    assert out.returncode == 1
    assert "MainGuardError" in out.stderr
    assert 'if __name__ == "__main__":' in out.stderr
    assert "RESULTS" not in out.stdout
    assert not list(tmp_path.glob("ACME_*"))  # nothing written before the error


def test_script_without_guard_on_a_running_client_works(tmp_path):
    # Attaching to a client starts no processes, so no guard is needed there.
    script = tmp_path / "attach.py"
    script.write_text(textwrap.dedent("""
        from distributed import Client, LocalCluster
        from acme_core import ParallelMap

        def f(x, y, z=3):
            return (x + y) * z

        def main():
            cluster = LocalCluster(n_workers=1, processes=False)
            client = Client(cluster)
            return client

        client = main()
        with ParallelMap(f, [2, 4, 6, 8], 4, write_worker_results=False) as pmap:
            print("RESULTS", pmap.compute())
        client.close()
    """))
    out = run_script(script, cwd=tmp_path, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "RESULTS [18, 24, 30, 36]" in out.stdout


def test_guarded_script_and_python_c_work(tmp_path):
    import subprocess
    import sys

    code = NO_GUARD.replace("with ParallelMap(f, [2, 4, 6, 8], 4)",
                            "with ParallelMap(f, [2, 4, 6, 8], 4, write_worker_results=False)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "RESULTS [18, 24, 30, 36]" in out.stdout
