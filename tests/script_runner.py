"""Running a user's script in a fresh interpreter, as the tests that need one do.

(Kept out of ``conftest.py``: the ESI plugin's tests have a conftest of their own,
and ``from conftest import ...`` would find whichever was imported first.)
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def run_script(path: Path, *args: str, timeout: float = 180, env: dict | None = None,
               cwd: Path | None = None) -> subprocess.CompletedProcess:
    """Run a Python script in a fresh interpreter (as a user would) and capture its output."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run([sys.executable, str(path), *args], capture_output=True, text=True,
                          timeout=timeout, env=full_env, cwd=cwd or path.parent)
