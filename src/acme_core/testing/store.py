"""The conformance tests every result store passes (ours and third parties')."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from acme_core.fileio import is_partial
from acme_core.store import RunInfo, WritesChunks


class StoreTests:
    """Tests every result store must pass. Set :attr:`store_cls` (and options)."""

    store_cls: ClassVar[Any] = None
    store_options: ClassVar[dict[str, Any]] = {}
    n_calls: ClassVar[int] = 12

    def make_store(self) -> Any:
        return self.store_cls(**self.store_options)

    def value(self, i: int) -> Any:
        """What call ``i`` returns in these tests."""
        return np.arange(5, dtype=float) + i

    def assert_read_back(self, read: Any, i: int) -> None:
        """Compare what ``read()`` gave for call ``i`` with :meth:`value`."""
        np.testing.assert_array_equal(np.asarray(read), self.value(i))

    def _run(self, tmp_path: Path, n: int | None = None) -> RunInfo:
        return RunInfo(func_name="func", n_calls=n or self.n_calls, output_dir=tmp_path / "run")

    def _prepared(self, tmp_path: Path) -> tuple[Any, RunInfo]:
        store = self.make_store()
        run = self._run(tmp_path)
        if store.writes_files:
            assert run.output_dir is not None
            run.output_dir.mkdir(parents=True, exist_ok=True)
        else:
            run = RunInfo(func_name="func", n_calls=run.n_calls, output_dir=None)
        store.prepare(run)
        return store, run

    def _write_all(self, store: Any) -> list[Any]:
        # the writer travels to workers: use it after a pickle round trip
        writer = pickle.loads(pickle.dumps(store.writer()))
        return [writer.write(i, self.value(i)) for i in range(self.n_calls)]

    def _manifest(self, run: RunInfo, store: Any) -> dict[str, Any]:
        return {"func_name": run.func_name, "n_calls": run.n_calls, "store": store.name,
                "finished": [[0, run.n_calls - 1]], "result_shape": None}

    def test_has_name(self) -> None:
        assert isinstance(self.store_cls.name, str) and self.store_cls.name
        assert isinstance(self.store_cls.writes_files, bool)

    def test_writer_is_picklable(self, tmp_path: Path) -> None:
        store, _ = self._prepared(tmp_path)
        pickle.loads(pickle.dumps(store.writer()))

    def test_round_trip(self, tmp_path: Path) -> None:
        store, run = self._prepared(tmp_path)
        refs = self._write_all(store)
        final = store.finalize(refs, set())
        assert final is not None
        if store.writes_files:
            assert run.output_dir is not None
            values = self.store_cls.read(run.output_dir, self._manifest(run, store))
            assert len(values) == self.n_calls
            for i, value in enumerate(values):
                self.assert_read_back(value, i)
        else:
            for i, value in enumerate(final):
                self.assert_read_back(value, i)

    def test_rewrite_replaces_earlier_result(self, tmp_path: Path) -> None:
        store, run = self._prepared(tmp_path)
        writer = store.writer()
        writer.write(0, self.value(99))
        refs = [writer.write(i, self.value(i)) for i in range(self.n_calls)]
        final = store.finalize(refs, set())
        if store.writes_files:
            assert run.output_dir is not None
            values = self.store_cls.read(run.output_dir, self._manifest(run, store))
        else:
            values = final
        self.assert_read_back(values[0], 0)

    def test_no_partial_files_left(self, tmp_path: Path) -> None:
        store, run = self._prepared(tmp_path)
        store.finalize(self._write_all(store), set())
        if run.output_dir is not None:
            # acme-core's own temporaries, and any library's (zarr-python: <stem>.<uuid>.partial)
            leftovers = [p for p in run.output_dir.rglob("*")
                         if is_partial(p.name) or p.name.endswith(".partial")]
            assert leftovers == []

    def test_existing_reports_written_calls(self, tmp_path: Path) -> None:
        store, run = self._prepared(tmp_path)
        writer = store.writer()
        for i in (0, 3, 5):
            writer.write(i, self.value(i))
        if store.writes_files:
            assert set(store.existing()) == {0, 3, 5}
        else:
            assert store.existing() == {}

    def test_chunk_writer_counts_only_ended_chunks(self, tmp_path: Path) -> None:
        """A :class:`~acme_core.store.WritesChunks` writer: an ended chunk reads back, one a
        killed worker never ended leaves nothing ``existing`` reports."""
        store, run = self._prepared(tmp_path)
        writer = pickle.loads(pickle.dumps(store.writer()))
        if not isinstance(writer, WritesChunks):
            return
        half = self.n_calls // 2
        writer.begin_chunk(list(range(half)))
        refs = [writer.write(i, self.value(i)) for i in range(half)]
        writer.end_chunk()
        writer.begin_chunk(list(range(half, self.n_calls)))
        for i in range(half, self.n_calls - 1):
            writer.write(i, self.value(i))  # never ended: the worker died
        if store.writes_files:
            assert set(store.existing()) == set(range(half))
        writer.begin_chunk(list(range(half, self.n_calls)))  # the rerun of that chunk
        refs += [writer.write(i, self.value(i)) for i in range(half, self.n_calls)]
        writer.end_chunk()
        final = store.finalize(refs, set())
        if store.writes_files:
            assert run.output_dir is not None
            final = self.store_cls.read(run.output_dir, self._manifest(run, store))
        for i, value in enumerate(final):
            self.assert_read_back(value, i)
