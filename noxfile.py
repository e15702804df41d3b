"""Developer sessions: ``nox -s schedulers tests`` (the whole suite), ``lint``, ``typecheck``, ``docs``.

``schedulers tests`` is the README's test command and what ``.ci/run`` calls:

* ``schedulers`` installs and starts the real single-node SLURM, Grid Engine and the
  PBS shim the cluster tests run against (``.ci/schedulers/start-all.sh``; needs root
  on Debian, as in CI; elsewhere it says why it cannot and the cluster tests skip);
* ``tests`` installs acme-core with its test extras into a fresh virtual environment
  and runs pytest. When ``schedulers`` started every scheduler, their tests are
  required: they fail rather than skip.
"""

from __future__ import annotations

import os
from pathlib import Path

import nox

nox.options.sessions = ["schedulers", "tests"]
nox.options.default_venv_backend = "venv"

ROOT = Path(__file__).parent
START = ROOT / ".ci" / "schedulers" / "start-all.sh"
#: written by start-all.sh: the schedulers it found up
UP = Path(os.environ.get("ACME_CI_LOGS", "/tmp/acme-ci")) / "schedulers-up"


@nox.session(python=False)
def schedulers(session: nox.Session) -> None:
    """Install and start SLURM, Grid Engine and the PBS shim (root on Debian only)."""
    if os.environ.get("ACME_SKIP_SCHEDULERS"):
        session.skip("ACME_SKIP_SCHEDULERS is set")
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        session.skip("starting the schedulers needs root (apt-get, daemons); their tests skip")
    session.run("bash", str(START), *session.posargs, external=True)


@nox.session
def tests(session: nox.Session) -> None:
    """Install acme-core with the test extras and the plugins and run the whole suite."""
    session.install("-e", ".[test]", "-e", "./plugins/acme-esi", "-e", "./plugins/acme-compat")
    env = {}
    if UP.is_file() and set(UP.read_text().split()) >= {"slurm", "sge", "pbs"}:
        env["ACME_REQUIRE_SCHEDULERS"] = "1"  # they were started: their tests must run
    session.run("pytest", *session.posargs, env=env)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff on the sources, tests, examples and plugins (also run by the test suite)."""
    session.install("ruff>=0.5")
    session.run("ruff", "check", "src", "tests", "examples", "plugins", *session.posargs)


@nox.session
def typecheck(session: nox.Session) -> None:
    """mypy --strict on the sources (configured in pyproject.toml; also run by the suite)."""
    session.install("-e", ".", "-e", "./plugins/acme-esi", "-e", "./plugins/acme-compat",
                    "mypy>=1.8")
    session.run("mypy", *session.posargs)


@nox.session
def docs(session: nox.Session) -> None:
    """Build the documentation (docs/ -> docs/_build/html) with Sphinx; a warning is an error."""
    session.install("-e", ".[docs]")
    session.run("sphinx-build", "-W", "--keep-going", "-b", "html", "docs", "docs/_build/html",
                *session.posargs)
