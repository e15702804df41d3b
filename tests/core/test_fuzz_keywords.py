"""ParallelMap's keywords, fuzzed (issue 14): every rejection names its keyword and leaves nothing.

Hypothesis draws one to three of ParallelMap's keywords and gives each an odd
value (wrong types, infinities, NaN, empty and NUL strings, huge numbers, odd
shapes and dtypes, unknown option dicts). When construction refuses them, the
error must name the keyword at fault (``err.parameter`` of an
:class:`~acme_core.errors.ArgumentError`, or the keyword in the message) and
leave no file or directory and no process behind. Values that construction
accepts are fine: the run directory they made is removed.
"""

from __future__ import annotations

import inspect
import math
import os
import shutil
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psutil
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from acme_core import ParallelMap
from acme_core.errors import ArgumentError


class Threads(ThreadPoolExecutor):
    name = "threads"

    def __init__(self):
        super().__init__(max_workers=1)


def square(x):
    return x * x


#: odd values every keyword may get
ODD = [None, True, False, 0, -1, 1, 2, 3.5, -0.0, math.inf, -math.inf, math.nan, 10 ** 30,
       "", "x", "auto", "maybe", "\x00", "-1", [], [1], {}, (None,), (None, 3), (None, 1e300),
       (None, math.inf, math.inf), (3, None, -1), object(), b"bytes", "float128", "object",
       "U10", "datetime64[s]", "complex128", {"bogus": 3}, {"locking": "yes"},
       {"compression": "bogus"}, {"protocol": 99}, {"n_workers": "x"}, {"processes": "maybe"},
       {"chunks": (0,)}, "hdf5", "zarr", "pickle", "memory", "hdf5-single", "slurm",
       "no-such-plugin"]
#: keywords left out: ``dryrun`` runs a call, ``setup_interactive`` asks questions.
#: ``output_dir`` and ``backend`` default to a run directory in the example's own
#: scratch directory and an in-process executor
SKIPPED = {"func", "args", "kwargs", "dryrun", "setup_interactive"}
KEYWORDS = sorted(name for name, p in inspect.signature(ParallelMap.__init__).parameters.items()
                  if name != "self" and p.kind is p.KEYWORD_ONLY or (
                      p.kind is p.POSITIONAL_OR_KEYWORD and name not in ("self", "func")))
KEYWORDS = [k for k in KEYWORDS if k not in SKIPPED]


def _children() -> set[int]:
    return {p.pid for p in psutil.Process().children(recursive=True)}


def _named(exc: BaseException, keywords: dict) -> bool:
    parameter = getattr(exc, "parameter", None)
    if isinstance(exc, ArgumentError) and parameter in keywords:
        return True
    text = str(exc)
    return any(name in text for name in keywords)


@settings(max_examples=int(os.environ.get("ACME_FUZZ_EXAMPLES", "120")), deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(keywords=st.dictionaries(st.sampled_from(KEYWORDS), st.sampled_from(ODD),
                                min_size=1, max_size=3))
def test_every_rejection_names_its_keyword_and_leaves_nothing(keywords, monkeypatch):
    base = Path(tempfile.mkdtemp(prefix="acme-fuzz-"))
    monkeypatch.chdir(base)  # a run directory named automatically would land here
    before = _children()
    try:
        try:
            pmap = ParallelMap(square, [1, 2, 3], **{"output_dir": str(base / "run"),
                                                     "backend": Threads, **keywords})
        except Exception as exc:
            assert _named(exc, keywords), f"{keywords!r}: {type(exc).__name__}: {exc}"
            assert os.listdir(base) == [], f"{keywords!r} left {os.listdir(base)}"
        else:
            pmap.cleanup()
            pmap._release()
        assert _children() <= before, f"{keywords!r} left processes"
    finally:
        shutil.rmtree(base, ignore_errors=True)


@pytest.mark.parametrize("keywords", [{"retries": math.inf}, {"n_inputs": math.nan},
                                      {"result_shape": (None, 1e300)},
                                      {"store_options": {"locking": "yes"}}])
def test_known_rejections_name_their_keyword(keywords, in_tmp):
    with pytest.raises(ArgumentError) as info:
        ParallelMap(square, [1, 2, 3], output_dir="run", backend=Threads, **keywords)
    assert info.value.parameter in keywords
    assert not (in_tmp / "run").exists()
