"""Syncopy (esi-syncopy 2023.9) runs its parallel computations on acme-core, unedited.

The test builds a scratch virtual environment with Syncopy, acme-core, acme-esi and
acme-compat, makes Syncopy take its ParallelMap path (``parallel=True`` with a
running dask client) and compares each result with ``parallel=False``.

Syncopy is installed without its declared dependencies, with what its imports need
instead (installing them all took 150 s here, this takes about 60 s):

* ``scipy==1.15.3``, the newest that works: from 1.16.0 on, ``scipy.signal.windows``
  functions have the keyword-only parameters ``xp`` and ``device``, which Syncopy's
  taper parsing takes for required taper options (``freqanalysis`` fails with
  "expected additional parameters for taper 'hann': ['xp', 'device']");
* ``pytz``: imported (by ``syncopy.io.nwb``) but not declared;
* ``matplotlib`` (``syncopy.plotting`` fails to import without it), ``fooof``,
  ``natsort``; numpy, h5py, dask, distributed, dask-jobqueue, psutil and tqdm come
  with acme-core. ``bokeh`` (declared, never imported: dask's dashboard) is left out.

Syncopy routes through ACME only where ``sinfo`` exits with 0 (SLURM machines); a
``sinfo`` that does just that stands first on the PATH. Nothing reaches a real SLURM:
the run attaches to a local cluster.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

HERE = Path(__file__).parent
ROOT = HERE.parents[2]
SYNCOPY = "esi-syncopy==2023.9"
#: what Syncopy's imports need beyond acme-core's dependencies (see the module docstring)
SYNCOPY_NEEDS = ["scipy==1.15.3", "pytz", "matplotlib", "fooof", "natsort"]
#: esi-syncopy 2023.9's Requires-Python
SYNCOPY_PYTHONS = ((3, 8), (3, 12))


def venv_python(venv: Path) -> Path:
    return venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def pip_install(python: Path, *args: str) -> None:
    out = subprocess.run([str(python), "-m", "pip", "install", "--quiet",
                          "--disable-pip-version-check", *args],
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout + out.stderr


def make_venv(venv: Path) -> Path:
    """A fresh virtual environment with Syncopy, acme-core, acme-esi and acme-compat."""
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    python = venv_python(venv)
    # setuptools first: the three editable builds then need no isolated build environment
    pip_install(python, "--no-deps", SYNCOPY, "setuptools>=68")
    pip_install(python, "--no-build-isolation", *SYNCOPY_NEEDS, "-e", str(ROOT),
                "-e", str(ROOT / "plugins" / "acme-esi"),
                "-e", str(ROOT / "plugins" / "acme-compat"))
    return python


def fake_sinfo(where: Path) -> Path:
    where.mkdir()
    sinfo = where / "sinfo"
    sinfo.write_text("#!/bin/sh\n# Syncopy uses ACME where `sinfo` succeeds\nexit 0\n")
    sinfo.chmod(0o755)
    return where


@pytest.mark.syncopy
@pytest.mark.slow
@pytest.mark.timeout(600)
def test_syncopy_parallel_equals_sequential(tmp_path):
    low, high = SYNCOPY_PYTHONS
    if not low <= sys.version_info[:2] < high:
        pytest.skip(f"{SYNCOPY} requires Python >=3.8,<3.12; this is "
                    f"{sys.version_info.major}.{sys.version_info.minor}")
    start = time.monotonic()
    python = make_venv(tmp_path / "venv")
    installed = time.monotonic()
    for name in ("spydir", "spytmp"):
        (tmp_path / name).mkdir()
    env = {**os.environ, "SPYDIR": str(tmp_path / "spydir"), "SPYTMPDIR": str(tmp_path / "spytmp"),
           "PATH": os.pathsep.join([str(fake_sinfo(tmp_path / "bin")), os.environ["PATH"]])}
    out = subprocess.run([str(python), str(HERE / "scripts" / "syncopy_parallel.py")],
                         capture_output=True, text=True, cwd=tmp_path, env=env, timeout=300,
                         stdin=subprocess.DEVNULL)
    print(f"install {installed - start:.0f} s, Syncopy {time.monotonic() - installed:.0f} s")
    assert out.returncode == 0, out.stdout + out.stderr
    report = json.loads(next(line for line in out.stdout.splitlines()
                             if line.startswith("REPORT "))[len("REPORT "):])
    assert report["syncopy"] == "2023.9"
    assert report["uses_acme"] and report["parallelmap_is_acmes"]
    for name, function in (("mtmfft", "mtmfft_cF"), ("bandpass", "but_filtering_cF"),
                           ("coherence", "cross_spectra_cF")):
        result = report[name]
        assert function in result["runs"], (name, result)  # the ParallelMap path ran
        assert result["finite"] and result["nonzero"], (name, result)
        assert result["shapes"][0] == result["shapes"][1], (name, result)
        assert result["allclose"], (name, result)
    assert report["bandpass"]["filters"]
