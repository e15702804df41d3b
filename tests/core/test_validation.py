"""Every ParallelMap keyword's validation: ACME's messages, raised before anything happens."""

from __future__ import annotations

import numpy as np
import pytest

from acme_core import ParallelMap


def f(x, y, z=3):
    return (x + y) * z


CASES = [
    # (keywords, exception type, message fragment)
    ({"n_inputs": "not-auto"}, ValueError, "`n_inputs` has to be 'auto' or an integer >= 1, not not-auto"),
    ({"n_inputs": -3}, ValueError, "<_scalar_parser> `n_inputs` has to be an integer between 1 and inf, not -3"),
    ({"n_inputs": 3.6}, ValueError, "`n_inputs` has to be an integer between 1 and inf, not 3.6"),
    ({"n_inputs": {}}, TypeError, "<_scalar_parser> `n_inputs` has to be a scalar, not <class 'dict'>"),
    ({"n_inputs": True}, TypeError, "`n_inputs` has to be a scalar, not <class 'bool'>"),
    ({"write_worker_results": "yes"}, TypeError, "`write_worker_results` has to be `True` or `False`, not yes"),
    ({"single_file": 1}, TypeError, "`single_file` has to be `True` or `False`, not 1"),
    ({"write_pickle": None}, TypeError, "`write_pickle` has to be `True` or `False`, not None"),
    ({"dryrun": "no"}, TypeError, "`dryrun` has to be `True` or `False`, not no"),
    ({"setup_interactive": 0}, TypeError, "`setup_interactive` has to be `True` or `False`, not 0"),
    ({"write_pickle": True, "single_file": True}, ValueError,
     "Pickling of results does not support single output file creation."),
    ({"output_dir": 2}, TypeError, "`output_dir` has to be either `None` or str, not 2"),
    ({"verbose": "loud"}, TypeError, "`verbose` has to be `True`, `False` or `None`, not loud"),
    ({"logfile": 3}, TypeError, "`logfile` has to be `None`, `True`, `False` or a valid file-name, not <class 'int'>"),
    ({"result_shape": 3}, TypeError, "`result_shape` has to be either `None` or tuple, not <class 'int'>"),
    ({"result_shape": (None, 2), "result_dtype": 3}, TypeError, "`result_dtype` has to be a string"),
    ({"result_shape": (2, 3)}, ValueError, "`result_shape` must contain exactly one `None` entry"),
    ({"result_shape": (None, None)}, ValueError, "`result_shape` must contain exactly one `None` entry"),
    ({"result_shape": (None, np.inf), "write_worker_results": False}, ValueError,
     "using `np.inf` in `result_shape` is only valid if `write_worker_results` is `True`"),
    ({"result_shape": (None, np.inf, np.inf)}, ValueError, "cannot use more than one `np.inf` in `result_shape`"),
    ({"result_shape": (None, "a")}, ValueError, "`result_shape` must only contain numerical values"),
    ({"result_shape": (None, -1)}, ValueError, "`result_shape` must only contain non-negative integers"),
    ({"result_shape": (None, 2.5)}, ValueError, "`result_shape` must only contain non-negative integers"),
    ({"result_shape": (None, 2), "result_dtype": "notadtype"}, TypeError,
     "`result_dtype` has to be a valid NumPy datatype specification"),
    ({"n_workers": "invalid"}, ValueError, "`n_workers` has to be 'auto' or an integer >= 1, not invalid"),
    ({"n_workers": 0}, ValueError, "<_scalar_parser> `n_workers` has to be an integer between 1 and inf, not 0"),
    ({"setup_timeout": "10"}, TypeError, "<_scalar_parser> `setup_timeout` has to be a scalar, not <class 'str'>"),
    ({"setup_timeout": -10}, ValueError, "`setup_timeout` has to be an integer between 0 and inf, not -10"),
    ({"stop_client": "not-auto"}, ValueError, "`stop_client` has to be 'auto' or Boolean, not not-auto"),
    ({"stop_client": 3}, TypeError, "`stop_client` has to be `True` or `False`, not <class 'int'>"),
    ({"partition": 3}, TypeError, "`partition` has to be 'auto' or a valid SLURM partition name, not 3"),
    ({"mem_per_worker": 3}, TypeError, "Memory specification `mem_per_worker` has to be a string"),
    ({"mem_per_worker": "lots"}, ValueError, "`mem_per_worker` has to be a valid memory specifier"),
    ({"retries": -1}, ValueError, "`retries` has to be an integer between 0 and inf, not -1"),
    ({"progress": "sometimes"}, ValueError, "`progress` has to be 'auto', True or False, not 'sometimes'"),
    ({"chunk_size": 0}, ValueError, "`chunk_size` has to be an integer between 1 and inf, not 0"),
    ({"cleanup_threshold_days": -2}, ValueError, "`cleanup_threshold_days` has to be an integer between 0 and inf"),
    ({"backend_options": [1]}, TypeError, "`backend_options` has to be a dict"),
    ({"resume": True}, ValueError, "`resume=True` needs `output_dir`"),
    ({"backend": 42}, TypeError, "`backend` has to be 'auto', a backend name, an executor class or an executor, not 42"),
    ({"store": "pickle", "single_file": True}, ValueError, "`store` 'pickle' contradicts single_file=True"),
    ({"store": "hdf5", "write_worker_results": False}, ValueError,
     "`store` 'hdf5' contradicts write_worker_results=False"),
]


@pytest.mark.parametrize(("keywords", "exc", "fragment"), CASES,
                         ids=[next(iter(c[0])) + "-" + str(i) for i, c in enumerate(CASES)])
def test_bad_keyword_raises_before_anything_is_written(in_tmp, keywords, exc, fragment):
    with pytest.raises(exc) as info:
        ParallelMap(f, [2, 4, 6, 8], 4, **keywords)
    assert fragment in str(info.value)
    assert list(in_tmp.iterdir()) == [], "a file was written before the error"


def test_logfile_that_is_a_directory(in_tmp):
    with pytest.raises(OSError, match="not a directory"):
        ParallelMap(f, [2, 4, 6, 8], 4, logfile=str(in_tmp))


def test_compute_debug_must_be_bool(in_tmp):
    with ParallelMap(f, [2, 4, 6, 8], 4, write_worker_results=False) as pmap:
        with pytest.raises(TypeError, match="`debug` has to be `True` or `False`, not <class 'str'>"):
            pmap.compute(debug="invalid")


def test_resume_of_a_directory_without_run(in_tmp):
    (in_tmp / "empty").mkdir()
    with pytest.raises(ValueError, match="holds no acme-core run"):
        ParallelMap(f, [2, 4, 6, 8], 4, output_dir=str(in_tmp / "empty"), resume=True)
