"""Logging: the run's log file, verbose levels, the standard ``acme`` logger."""

from __future__ import annotations

import logging
import re

import pytest

from acme_core import ParallelMap


def f(x, y, z=3):
    return (x + y) * z


pytestmark = pytest.mark.usefixtures("client")


def _log_files(directory):
    return sorted(directory.glob("ACME_f_*.log"))


def test_log_file_in_run_directory(in_tmp):
    with ParallelMap(f, [2, 4, 6, 8], 4, output_dir="run") as pmap:
        pmap.compute()
    (log,) = _log_files(in_tmp / "run")
    assert re.fullmatch(r"ACME_f_\d{8}-\d{6}\.log", log.name)
    text = log.read_text()
    assert "This is acme-core v." in text
    assert "Preparing 4 parallel calls of `f`" in text
    assert "SUCCESS!" in text and "Results have been saved to" in text
    assert "DEBUG" not in text  # verbose=None: INFO and above


def test_verbose_true_logs_debug_and_false_only_warnings(in_tmp):
    with ParallelMap(f, [2, 4, 6, 8], 4, output_dir="loud", verbose=True) as pmap:
        pmap.compute()
    assert "DEBUG" in _log_files(in_tmp / "loud")[0].read_text()
    with ParallelMap(f, [2, 4, 6, 8], 4, output_dir="quiet", verbose=False) as pmap:
        pmap.compute()
    text = _log_files(in_tmp / "quiet")[0].read_text()
    assert "INFO" not in text and "Preparing" not in text


def test_no_log_file_in_memory_unless_asked(in_tmp):
    with ParallelMap(f, [2, 4, 6, 8], 4, write_worker_results=False) as pmap:
        pmap.compute()
    assert list(in_tmp.iterdir()) == []
    with ParallelMap(f, [2, 4, 6, 8], 4, write_worker_results=False, logfile=True) as pmap:
        pmap.compute()
    assert len(_log_files(in_tmp)) == 1


def test_custom_log_file_appends(in_tmp):
    target = in_tmp / "logs" / "mine.log"
    target.parent.mkdir()
    for _ in range(2):
        with ParallelMap(f, [2, 4], 4, write_worker_results=False, logfile=str(target)) as pmap:
            pmap.compute()
    text = target.read_text()
    assert text.count("Preparing 2 parallel calls") == 2
    assert "already exists, appending to it" in text


def test_log_file_in_a_missing_directory_is_refused(in_tmp):
    with pytest.raises(ValueError, match=r"`logfile` .*does not exist") as err:
        ParallelMap(f, [2, 4], 4, logfile=str(in_tmp / "typo" / "mine.log"))
    assert err.value.parameter == "logfile"
    assert list(in_tmp.iterdir()) == []  # neither the directory nor a run directory


def test_logfile_false_writes_no_log(in_tmp):
    with ParallelMap(f, [2, 4], 4, output_dir="run", logfile=False) as pmap:
        pmap.compute()
        assert pmap.logfile is None
    assert _log_files(in_tmp / "run") == []


def test_the_documented_attributes_say_where_things_are(in_tmp):
    target = in_tmp / "mine.log"
    with ParallelMap(f, [2, 4, 6], 4, output_dir="run", logfile=str(target)) as pmap:
        assert (pmap.n_calls, pmap.logfile, pmap.output_dir) == (3, target, in_tmp / "run")
        pmap.compute()
        assert pmap.results_container == str(in_tmp / "run" / "f.h5")
    assert target.is_file()


def test_handlers_are_removed_after_the_run(in_tmp):
    logger = logging.getLogger("acme")
    before = list(logger.handlers), logger.level
    with ParallelMap(f, [2, 4], 4, output_dir="run", verbose=True) as pmap:
        pmap.compute()
        assert len(logger.handlers) > len(before[0])
    assert (list(logger.handlers), logger.level) == before


def test_messages_reach_the_standard_logger(in_tmp, caplog):
    with caplog.at_level(logging.INFO, logger="acme"):
        with ParallelMap(f, [2, 4], 4, write_worker_results=False) as pmap:
            pmap.compute()
    assert any(r.name == "acme" and "Preparing 2 parallel calls" in r.getMessage()
               for r in caplog.records)


def test_construction_warnings_reach_the_log_file(in_tmp):
    with ParallelMap(f, [2, 4], 4, write_worker_results=False, single_file=True,
                     logfile="run.log") as pmap:
        pmap.compute()
    text = (in_tmp / "run.log").read_text()
    assert "Generating a single output file only possible if `write_worker_results` is `True`." in text


def test_large_argument_warning_reaches_the_log_file(in_tmp, monkeypatch):
    import numpy as np

    from acme_core import arguments

    monkeypatch.setattr(arguments, "MAX_ARG_SIZE_MB", 1)
    with ParallelMap(f, [2, 4], np.ones((2000, 200)), output_dir="run") as pmap:
        pmap.compute()
    text = _log_files(in_tmp / "run")[0].read_text()
    assert "exceeds recommended limit of 1 MB" in text


def test_no_handlers_left_without_a_with_block(in_tmp):
    logger = logging.getLogger("acme")
    before = list(logger.handlers)
    pmap = ParallelMap(f, [2, 4], 4, output_dir="run")
    assert logger.handlers == before
    pmap.compute()
    assert logger.handlers == before
    assert "SUCCESS!" in _log_files(in_tmp / "run")[0].read_text()
