"""The ``"hdf5"`` writer's template fast path writes the same files h5py writes.

Every value is written twice through :class:`HDF5Writer` (the first call of a
signature builds and checks the template, later ones only patch data bytes) and
read back with h5py, next to a reference file written by plain h5py with the
same rules (``write_results``).
"""

from __future__ import annotations

import logging
import os

import h5py
import numpy as np
import pytest

from acme_storage.hdf5 import links
from acme_storage.hdf5 import template as hdf5_template
from acme_storage.hdf5._h5 import read_call, write_results
from acme_storage.hdf5.links import HDF5Writer


@pytest.fixture(autouse=True)
def fresh_templates(monkeypatch):
    """Each test starts with an empty per-process template cache."""
    monkeypatch.setattr(links, "_TEMPLATES", hdf5_template.Templates())


def reference(tmp_path, value, collapse):
    path = tmp_path / f"reference-{os.urandom(4).hex()}.h5"
    with h5py.File(path, "w") as h5f:
        write_results(h5f, value, collapse)
    return path


def datasets(path):
    with h5py.File(path, "r") as h5f:
        return {k: (h5f[k].dtype, h5f[k].shape, h5f[k][()]) for k in h5f}


def assert_same_file_contents(got_path, want_path):
    got, want = datasets(got_path), datasets(want_path)
    assert sorted(got) == sorted(want)
    for name in want:
        assert got[name][0] == want[name][0], name
        assert got[name][1] == want[name][1], name
        np.testing.assert_array_equal(got[name][2], want[name][2])


rng = np.random.default_rng(7)

VALUES = {
    "int scalar": (lambda k: 2 * k + 1, True),
    "float list (collapsed)": (lambda k: [0.5 * k, -1.0, 3.25], True),
    "numpy scalar": (lambda k: np.float32(k) / 3, True),
    "float64 array": (lambda k: rng.normal(size=(4, 5)) + k, True),
    "int16 3-d": (lambda k: np.arange(24, dtype=np.int16).reshape(2, 3, 4) * (k + 1), True),
    "uint8": (lambda k: np.full(17, 200 + k, dtype=np.uint8), True),
    "bool": (lambda k: np.arange(9) % (k + 2) == 0, True),
    "complex": (lambda k: np.arange(5) * (1 + 2j) + k, True),
    "big-endian": (lambda k: np.arange(6, dtype=">f8") + k, True),
    "0-d array": (lambda k: np.array(k * 1.5), True),
    "empty": (lambda k: np.zeros((0, 3)), True),
    "nan and inf": (lambda k: np.array([np.nan, np.inf, -np.inf, k]), True),
    "two arrays": (lambda k: (np.ones(3) * k, np.arange(4, dtype=np.int32)), True),
    "array and scalar": (lambda k: [np.eye(2) * k, 7], True),
    "non-contiguous": (lambda k: np.arange(40.0).reshape(5, 8)[:, ::2] + k, True),
    "stacked slot (no collapse)": (lambda k: np.full((3,), k, dtype=np.float32), False),
}


@pytest.mark.parametrize("name", list(VALUES))
def test_template_files_read_back_like_h5py_files(tmp_path, name):
    make, collapse = VALUES[name]
    writer = HDF5Writer(str(tmp_path), "f", collapse=collapse, compression=None, locking=None)
    for k in range(3):
        value = make(k)
        path = writer.write(k, value)
        assert path == os.path.join(str(tmp_path), f"f_{k}.h5")
        assert_same_file_contents(path, reference(tmp_path, value, collapse))
    assert len(links._TEMPLATES._known) == 1, "these values should take the template path"
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".partial")]


def test_template_file_opens_with_file_locking_off_and_reads_through_read_call(tmp_path):
    writer = HDF5Writer(str(tmp_path), "f", collapse=True, compression=None, locking=False)
    writer.write(0, (np.arange(3), 2.5))
    writer.write(1, (np.arange(3) * 2, 3.5))
    with h5py.File(tmp_path / "f_1.h5", "r", locking=False) as h5f:
        got = read_call(h5f)
    np.testing.assert_array_equal(got[0], [0, 2, 4])
    assert got[1] == 3.5


@pytest.mark.parametrize("value", ["text", ["a", "b"], {"a": 1}, np.array(["x"], dtype=object)],
                         ids=["str", "str list", "dict", "object array"])
def test_values_h5py_must_write_do_not_use_templates(tmp_path, value):
    writer = HDF5Writer(str(tmp_path), "f", collapse=True, compression=None, locking=None)
    path = writer.write(0, value)
    assert not links._TEMPLATES._known
    assert os.path.exists(path)
    if path.endswith(".h5"):  # strings: the same file h5py writes itself
        assert_same_file_contents(path, reference(tmp_path, value, True))
    else:  # what HDF5 cannot hold is pickled
        assert path.endswith(".pickle")


def test_compression_writes_with_h5py(tmp_path):
    writer = HDF5Writer(str(tmp_path), "f", collapse=True, compression="gzip", locking=None)
    writer.write(0, np.zeros(1000))
    assert not links._TEMPLATES._known
    with h5py.File(tmp_path / "f_0.h5", "r") as h5f:
        assert h5f["result_0"].compression == "gzip"
        np.testing.assert_array_equal(h5f["result_0"][()], np.zeros(1000))


def test_a_rewritten_call_replaces_its_file(tmp_path):
    writer = HDF5Writer(str(tmp_path), "f", collapse=True, compression=None, locking=None)
    writer.write(0, np.arange(4.0))
    writer.write(0, np.arange(4.0) + 10)  # a retried call: same name, new data
    with h5py.File(tmp_path / "f_0.h5", "r") as h5f:
        np.testing.assert_array_equal(h5f["result_0"][()], np.arange(4.0) + 10)


def test_a_template_that_fails_its_check_is_refused(tmp_path, monkeypatch, caplog):
    # No real HDF5 build reports a wrong data address, so the read-back check is made to
    # fail here: what is tested is that the writer then falls back to h5py for good.
    monkeypatch.setattr(hdf5_template, "matches", lambda *args: False)
    writer = HDF5Writer(str(tmp_path), "f", collapse=True, compression=None, locking=None)
    with caplog.at_level(logging.WARNING, logger="acme"):
        for k in range(2):
            writer.write(k, np.arange(5) + k)
    assert "did not read back as written" in caplog.text
    assert caplog.text.count("did not read back") == 1
    assert links._TEMPLATES._refused
    for k in range(2):
        with h5py.File(tmp_path / f"f_{k}.h5", "r") as h5f:
            np.testing.assert_array_equal(h5f["result_0"][()], np.arange(5) + k)
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".partial")]


def test_build_finds_the_data_where_hdf5_put_it():
    names = ["result_0", "result_1"]
    arrays = [np.arange(10, dtype=np.int64), np.ones((2, 2))]
    template = hdf5_template.build(h5py, names, arrays)
    assert template is not None
    assert template.image[:8] == b"\x89HDF\r\n\x1a\n"  # the HDF5 signature
    (o0, n0), (o1, n1) = template.spans
    assert (n0, n1) == (80, 32)
    assert o0 + n0 <= o1 or o1 + n1 <= o0


def test_many_kinds_of_results_from_several_threads(tmp_path):
    # more signatures than the cache keeps, written by threads of one worker at once
    from concurrent.futures import ThreadPoolExecutor

    writer = HDF5Writer(str(tmp_path), "f", collapse=True, compression=None, locking=None)
    n_kinds = hdf5_template.MAX_TEMPLATES + 8

    def value(k):
        return np.arange(1 + k % n_kinds, dtype=np.float64) * k

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda k: writer.write(k, value(k)), range(4 * n_kinds)))
    assert len(links._TEMPLATES._known) <= hdf5_template.MAX_TEMPLATES
    for k in range(4 * n_kinds):
        with h5py.File(tmp_path / f"f_{k}.h5", "r") as h5f:
            np.testing.assert_array_equal(h5f["result_0"][()], value(k))


@pytest.mark.parametrize("dtype", [">f8", ">i4", "<f8", ">c16"])
def test_a_0d_number_of_either_byte_order_takes_the_template_without_a_warning(tmp_path, caplog,
                                                                               dtype):
    """Issue 14, item 17: h5py reads a 0-d dataset back in native byte order, which the
    template's first-file check took for a mismatch (a false warning, and h5py after it)."""
    from acme_core.store import RunInfo
    from acme_storage.hdf5 import HDF5Store

    store = HDF5Store()
    store.prepare(RunInfo("f", 3, tmp_path))
    writer = store.writer()
    with caplog.at_level(logging.WARNING, logger="acme"):
        for i in range(3):
            writer.write(i, np.array(i + 0.5 if dtype[1] in "fc" else i, dtype=dtype))
    assert "did not read back" not in caplog.text
    for i in range(3):
        with h5py.File(tmp_path / "f_payload" / f"f_{i}.h5", "r") as h5f:
            assert h5f["result_0"].dtype == np.dtype(dtype)
            assert h5f["result_0"][()] == (i + 0.5 if dtype[1] in "fc" else i)
