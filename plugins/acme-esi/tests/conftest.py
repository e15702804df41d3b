"""Test set-up: import acme_esi from the source tree; a fixture that really pip-installs it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))


@pytest.fixture(scope="session")
def installed_plugin(tmp_path_factory) -> Path:
    """acme-esi pip-installed into a scratch directory (entry points included)."""
    target = tmp_path_factory.mktemp("acme-esi-site")
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
                    "--no-build-isolation", "--target", str(target), str(ROOT)], check=True)
    return target
