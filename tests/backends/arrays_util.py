"""Helpers of the job-array tests (test_arrays_slurm.py, test_arrays_sge.py).

The schedulers are shared with other tests and engineers: a test looks only at
its own jobs (by job name, ``acme-<function>``), never at the whole queue, and
cancels what it submitted.
"""

from __future__ import annotations

import getpass
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cloudpickle

HERE = Path(__file__).parent
# the elements import nothing of the tests: the functions travel by value
cloudpickle.register_pickle_by_value(sys.modules[__name__])

SRC_PATH = os.pathsep.join([str(HERE), str(HERE.parent)])


def arr_walkthrough(x, y, z=3):
    """ACME's walkthrough function."""
    return (x + y) * z


def arr_square(x):
    return x * x


def arr_slow(x, seconds=0.5):
    time.sleep(seconds)
    return x + 1


def arr_fails_on_odd(x):
    if x % 2:
        raise ValueError(f"odd input {x}")
    return x


def arr_fails_while(x, flag):
    """Fails while the file ``flag`` exists (a resumed run succeeds)."""
    if os.path.exists(flag) and x % 3 == 0:
        raise RuntimeError(f"flag set for {x}")
    return x * 10


def arr_hangs_at(x, bad):
    """Call ``bad`` waits in C for a signal that never comes: no bytecode runs that an
    exception could interrupt, so only the element's own exit ends it."""
    if x == bad:
        signal.pause()
    return x


def arr_needs_memory(x, big, env="ACME_ELEMENT_MEMORY"):
    """Call ``big`` touches 700 MiB (more than a 500 MB element has); every call returns
    its element's memory in MiB as the environment variable ``env`` says."""
    if x == big:
        import numpy as np

        block = np.ones(700 * 2**20 // 8)
        time.sleep(1)  # the element's guard looks every 0.1 s
        del block
    mem = int(os.environ[env])
    return [x, mem // 2**20 if env == "ACME_ELEMENT_MEMORY" else mem]


def slurm_ours(names: tuple[str, ...] = ()) -> list[str]:
    """Job ids (array elements expanded) of this user's jobs named ``acme-arr_*``."""
    out = subprocess.run(["squeue", "-h", "-r", "-u", getpass.getuser(), "-o", "%i %j"],
                         capture_output=True, text=True).stdout
    return [line.split()[0] for line in out.splitlines()
            if len(line.split()) == 2 and line.split()[1].startswith(names or ("acme-arr_",))]


def sge_ours() -> list[str]:
    out = subprocess.run(["qstat", "-u", getpass.getuser()], capture_output=True,
                         text=True).stdout
    return [line.split()[0] for line in out.splitlines()[2:]
            if len(line.split()) > 2 and line.split()[2].startswith("acme-arr")]


def wait_gone(list_jobs, timeout: float = 30) -> list[str]:
    deadline = time.monotonic() + timeout
    left = list_jobs()
    while left and time.monotonic() < deadline:
        time.sleep(0.5)
        left = list_jobs()
    return left


def record(run_dir: Path) -> dict:
    """The run's record (its JSON, without the authentication tag)."""
    return json.loads((run_dir / ".acme_detached" / "run.json").read_text())["record"]


def wait_for(predicate, timeout: float = 60, step: float = 0.3):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    raise AssertionError(f"timed out after {timeout} s")


def acme(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    """The ``acme`` command line in a fresh interpreter."""
    return subprocess.run([sys.executable, "-m", "acme_core.cli", *args], capture_output=True,
                          text=True, timeout=timeout)


def script(tmp_path: Path, body: str) -> Path:
    """A user's script that imports this module's functions (by value, as above)."""
    path = tmp_path / "user_script.py"
    path.write_text(f"import sys\nsys.path[:0] = {SRC_PATH.split(os.pathsep)!r}\n"
                    "from arrays_util import *\n" + body)
    return path
