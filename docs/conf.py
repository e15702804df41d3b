"""Sphinx configuration of the acme-core documentation (``nox -s docs``)."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))  # document the sources next to this file

project = "acme-core"
author = "acme-core developers"
copyright = "acme-core developers"

try:
    from importlib.metadata import version as _version

    release = _version("acme-core")
except Exception:  # pragma: no cover - building from a bare source tree
    release = "0+unknown"
version = release

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.viewcode",
]

# numpydoc-style docstrings, rendered by napoleon
napoleon_google_docstring = False
napoleon_numpy_docstring = True
napoleon_use_rtype = False
napoleon_custom_sections = [("Environment variables", "params_style")]

autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_default_options = {"members": True, "show-inheritance": False}

exclude_patterns = ["_build", "examples/README.md"]
templates_path: list[str] = []
html_static_path: list[str] = []
html_theme = "alabaster"
html_title = f"acme-core {release}"
html_theme_options = {
    "description": "Run one function many times, on a laptop or an HPC cluster",
    "fixed_sidebar": True,
}
