"""Whole programs in fresh interpreters: an unchanged ACME script, acme-compat without the
ESI plugin, and acme-compat next to a (really pip-installed) ``esi-acme`` distribution."""

from __future__ import annotations

import importlib.metadata
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

SCRIPTS = Path(__file__).parent / "scripts"


def run_python(args: list[str], cwd, env: dict[str, str] | None = None,
               timeout: float = 240) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, cwd=cwd,
                          env={**os.environ, **(env or {})}, timeout=timeout,
                          stdin=subprocess.DEVNULL)


def report_of(out: subprocess.CompletedProcess[str]) -> dict:
    assert out.returncode == 0, out.stdout + out.stderr
    lines = [line for line in out.stdout.splitlines() if line.startswith("REPORT ")]
    assert lines, out.stdout + out.stderr
    return json.loads(lines[-1][len("REPORT "):])


@pytest.mark.slow
def test_an_unchanged_acme_script_runs(tmp_path):
    # No `sinfo` on PATH: esi_cluster_setup falls back to a local cluster, as ACME does
    # off SLURM (and no job reaches the SLURM other tests share)
    no_slurm = tmp_path / "bin"
    no_slurm.mkdir()
    out = run_python([str(SCRIPTS / "acme_script.py")], cwd=tmp_path,
                     env={"PATH": str(no_slurm)})
    report = report_of(out)
    assert report["version"] == importlib.metadata.version("acme-compat")
    assert "no dask client yet" in report["no_client_yet"]
    assert report["auto_started"] == [18, 24]
    assert report["auto_client"] == "Client"
    assert report["same_client"] is True
    assert report["on_disk"] == [18, 24, 30, 36] and report["n_paths"] == 4
    assert report["in_memory"] == [18, 24, 30, 36]
    assert report["kwargv_edit"] == [[30, 50], [60, 100]]
    assert report["client_after_cleanup"] == "closed"
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("ACME_"))


def test_without_the_esi_plugin_esi_cluster_setup_names_the_install(tmp_path):
    # `sys.modules[name] = None` is Python's own "this module is not there"; blocking the
    # entry point too makes acme-core see no ESI plugin, as after `pip uninstall acme-esi`
    program = textwrap.dedent("""
        import sys
        sys.modules["acme_esi"] = None
        import acme
        print("ALL", sorted(acme.__all__))
        try:
            from acme import esi_cluster_setup          # what Syncopy does
        except ImportError as err:
            print("ERROR", type(err).__name__, err)
        from acme import *
        print("STAR", ParallelMap.__name__, local_cluster_setup.__name__)
        """)
    out = run_python(["-c", program], cwd=tmp_path, env={"ACME_BLOCK_PLUGINS": "esi"})
    assert out.returncode == 0, out.stderr
    assert "'esi_cluster_setup'" not in out.stdout.split("ERROR")[0]
    assert "ERROR MissingSetupError `esi_cluster_setup` comes from ESI's plugin" in out.stdout
    assert "`pip install acme-esi`" in out.stdout
    assert "STAR ParallelMap local_cluster_setup" in out.stdout


FAKE_ESI_ACME = """\
[build-system]
requires = ["setuptools>=68"]
build-backend = "setuptools.build_meta"

[project]
name = "esi-acme"
version = "2026.6.2"
description = "stands for ACME in the clash test: only its metadata matters"

[tool.setuptools]
packages = []
"""


def test_refuses_to_be_imported_next_to_esi_acme(tmp_path):
    project = tmp_path / "esi-acme"
    project.mkdir()
    (project / "pyproject.toml").write_text(FAKE_ESI_ACME)
    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
                    "--no-build-isolation", "--target", str(site), str(project)], check=True)
    assert list(site.glob("esi_acme-2026.6.2.dist-info"))
    env = {"PYTHONPATH": str(site)}

    out = run_python(["-c", "import acme"], cwd=tmp_path, env=env)
    assert out.returncode == 1
    assert "EsiAcmeInstalledError" in out.stderr
    assert f"esi-acme 2026.6.2 (ACME itself, installed in {site})" in out.stderr
    assert "both provide the import name `acme`" in out.stderr
    assert "`pip uninstall esi-acme`" in out.stderr
    assert "`pip install --force-reinstall --no-deps acme-compat`" in out.stderr
    # what to do to keep ACME instead, and that acme_core itself is fine
    assert "`pip uninstall acme-compat`" in out.stderr
    assert run_python(["-c", "import acme_core"], cwd=tmp_path, env=env).returncode == 0
    # without it on the path, the same interpreter imports acme
    assert run_python(["-c", "import acme"], cwd=tmp_path).returncode == 0
