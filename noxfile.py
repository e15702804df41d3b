"""Developer sessions: ``nox -s tests`` (the whole suite), ``lint``, ``typecheck``, ``docs``.

``tests`` is the README's test command and what ``.ci/run`` calls. It installs
the package with its test extras into a fresh virtual environment, starts the
real schedulers the cluster tests need when a start script is present and we
may (root on Debian, as in CI), and runs pytest.
"""

from __future__ import annotations

import os
from pathlib import Path

import nox

nox.options.sessions = ["tests"]
nox.options.default_venv_backend = "venv"

ROOT = Path(__file__).parent
SCHEDULERS = ROOT / ".ci" / "start-schedulers.sh"


@nox.session
def tests(session: nox.Session) -> None:
    """Install acme-core with the test extras and run the whole suite."""
    session.install("-e", ".[test]", "-e", "./plugins/acme-esi")
    env = {}
    if SCHEDULERS.exists() and hasattr(os, "geteuid") and os.geteuid() == 0 \
            and not os.environ.get("ACME_SKIP_SCHEDULERS"):
        # Real SLURM, SGE and the PBS shim for the cluster tests (apt installs on a fresh
        # machine). Started here, they are required: their tests fail rather than skip.
        session.run("bash", str(SCHEDULERS), external=True)
        env["ACME_REQUIRE_SCHEDULERS"] = "1"
    session.run("pytest", *session.posargs, env=env)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff on the sources, tests, examples and benchmarks."""
    session.install("ruff>=0.5")
    session.run("ruff", "check", "src", "tests", "examples", *session.posargs)


@nox.session
def typecheck(session: nox.Session) -> None:
    """mypy on the sources."""
    session.install("-e", ".", "mypy>=1.8")
    session.run("mypy", *session.posargs)


@nox.session
def docs(session: nox.Session) -> None:
    """Build the documentation (docs/ -> docs/_build/html) with Sphinx; a warning is an error."""
    session.install("-e", ".[docs]")
    session.run("sphinx-build", "-W", "--keep-going", "-b", "html", "docs", "docs/_build/html",
                *session.posargs)
