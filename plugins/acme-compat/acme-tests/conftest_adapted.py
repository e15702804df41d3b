"""Replacement for ACME's ``acme/tests/conftest.py`` (copied in as ``conftest.py``).

ACME's conftest imports ``acme.shared`` (node detection) and ACME's config class;
these are the values its public tests read, for a machine off SLURM, plus three
helpers that stand for the private attributes the tests read (see adapt.py).
"""

import sys

import acme
import pytest

# the values ACME's conftest computes, as they are off SLURM, off ESI and CoBIC
skip_if_not_linux = pytest.mark.skipif(sys.platform != "linux", reason="Only works in Linux")
useSLURM = False
onESI = False
onBIC = False
onx86 = True
defaultQ = "auto"
setup_func = acme.slurm_cluster_setup


def out_dir(pmap):
    """``pmap.config.output_dir``: the run directory (a str, as ACME's), or None."""
    return None if pmap.output_dir is None else str(pmap.output_dir)


def n_calls(pmap):
    """``pmap.config.n_calls``: the number of calls."""
    return pmap.dist.n_calls


def log_files(pmap):
    """The log file ACME's tests find through the logger's MemoryHandler: acme-core has
    no logger-global file handler; the run's own log file is ``pmap.logging.logfile``."""
    logfile = pmap.logging.logfile
    return [] if logfile is None else [str(logfile)]
