"""The worker side of the ``"zarr"`` store: one call into ``<fn>.zarr`` (see :mod:`.store`).

Without ``result_shape`` a call becomes the group ``comp_<i>`` (written under a
temporary name, then renamed), or an emergency pickle. With it, the call's
first value goes to its slot of ``result_0``, extra values to ``comp_<i>``, and
with an ``np.inf`` axis its length to ``acme_extent``, last: the slot counts as
written only once its data is complete.

Chunks go through zarr-python (``Array.__setitem__``), except whole chunks of
the store's own uncompressed layouts, which :mod:`._fast` writes (see there why).
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np

from acme_core.errors import ResultTypeError
from acme_storage import _layout, stacking
from acme_storage._emergency import warn_pickled, write_emergency
from acme_storage._values import elements, named_results
from acme_storage.zarr._fast import FastChunks
from acme_storage.zarr._zarr import ZArray, open_array, storables, write_group

__all__ = ["EXTENT", "ZarrWriter"]

#: name of the per-call extent array (``np.inf`` shapes only)
EXTENT = "acme_extent"


class ZarrWriter:
    """Worker side: writes one call into ``<fn>.zarr`` (its slot, or its ``comp_<i>``).

    Picklable; arrays are opened once per process.
    """

    def __init__(self, root: str, func_name: str, result_shape: tuple[float, ...] | None,
                 stacking_dim: int | None, result_dtype: str | None, compressors: Any,
                 chunks: tuple[int, ...] | None, fast: FastChunks | None = None) -> None:
        self.root = root
        self.func_name = func_name
        self.result_shape = result_shape
        self.stacking_dim = stacking_dim
        self.result_dtype = result_dtype
        self.compressors = compressors
        self.chunks = chunks
        #: whole chunks written as bytes (None: every chunk through zarr-python)
        self.fast = fast
        self._arrays: dict[str, ZArray] = {}

    def __getstate__(self) -> dict[str, Any]:
        # open arrays stay in the process that opened them
        return {**self.__dict__, "_arrays": {}}

    def _array(self, name: str) -> ZArray:
        """An array of the container, opened for writing once per process."""
        if name not in self._arrays:
            self._arrays[name] = open_array(Path(self.root) / name, "r+")
        return self._arrays[name]

    def write(self, task_id: int, value: Any) -> str:
        """Write call ``task_id``'s value; return its reference (a path).

        Raises
        ------
        acme_core.errors.ResultMismatchError, acme_core.errors.ResultTypeError
            With ``result_shape``: the value does not fit its slot, or zarr cannot
            hold one of its values.
        """
        if self.result_shape is not None:
            return self._write_stacked(task_id, value)
        return self._write_group(task_id, value)

    # -- without result_shape -------------------------------------------------
    def _write_group(self, task_id: int, value: Any) -> str:
        root = Path(self.root)
        final = root / _layout.comp_name(task_id)
        emergency = _layout.call_file(root.parent, self.func_name, task_id, ".pickle")
        arrays, why = storables(named_results(value, collapse=True))
        if why is not None:
            warn_pickled(final, why, "zarr")
            write_emergency(emergency, value)
            shutil.rmtree(final, ignore_errors=True)
            return str(emergency)
        write_group(final, arrays, self.compressors, self.chunks)
        if emergency.exists():  # an earlier attempt of this call was pickled
            emergency.unlink()
        return str(final)

    # -- with result_shape ------------------------------------------------------
    def _write_stacked(self, task_id: int, value: Any) -> str:
        shape, dim = self.result_shape, self.stacking_dim
        assert shape is not None and dim is not None
        data, extras = self.checked_stacked(task_id, value)
        inf = stacking.unlimited_axis(shape)
        length = 0
        if inf is not None:
            length = int(data.shape[inf - (inf > dim)])
            self._clear_stale(task_id, length, data.shape)
        if extras:  # before the slot: a slot on disk says its call is complete
            self._write_extras(task_id, extras)
        self._write_slot(task_id, data)
        root = Path(self.root)
        if inf is not None:
            # last: the slot counts as written only once its data is complete
            self._write_extent(task_id, length)
        return str(root / "result_0")

    def checked_stacked(self, task_id: int, value: Any
                        ) -> tuple[np.ndarray[Any, Any], dict[str, Any]]:
        """Call ``task_id``'s slot value (checked against ``result_shape``, cast) and its
        extra values ``{result_<k>: (data, is_text)}``.

        Raises
        ------
        acme_core.errors.ResultMismatchError, acme_core.errors.ResultTypeError
            The value does not fit its slot, or zarr cannot hold one of its values.
        """
        shape, dim = self.result_shape, self.stacking_dim
        assert shape is not None and dim is not None
        items = elements(value)
        dtype = np.dtype(self.result_dtype) if self.result_dtype else None
        data = stacking.check_slot_value(items[0], shape, dim, dtype)
        extras, why = storables(named_results(items, collapse=False)[1:])
        if why is not None:
            raise ResultTypeError(
                f"call {task_id} returned a value zarr cannot hold ({why}); with "
                f"`result_shape` every return value must be an array, number or string (no "
                f"pickling into a stacked result)", parameter="result_shape")
        return data, extras

    def _write_extras(self, task_id: int, extras: dict[str, Any]) -> None:
        """Call ``task_id``'s extra return values (``result_1``, ...), as ``comp_<i>``."""
        write_group(Path(self.root) / _layout.comp_name(task_id), extras, self.compressors,
                    self.chunks)

    def _write_slot(self, task_id: int, data: np.ndarray[Any, Any]) -> None:
        """Call ``task_id``'s slot of ``result_0``; no other writer shares its chunks."""
        shape, dim = self.result_shape, self.stacking_dim
        assert shape is not None and dim is not None
        if self.fast is not None and self.fast.slot_encoding is not None:
            self.fast.write_slot(task_id, len(shape), dim, data)
            return
        # a 1-long slice (not the integer) gives zarr whole chunks, which it
        # writes as they are instead of merging them into a fill-value copy
        region = list(stacking.slot_region(shape, dim, task_id, data.shape))
        region[dim] = slice(task_id, task_id + 1)
        self._array("result_0")[tuple(region)] = np.expand_dims(data, dim)

    def _clear_stale(self, task_id: int, length: int, data_shape: tuple[int, ...]) -> None:
        """A rerun with a shorter result: clear what the earlier attempt left beyond it."""
        shape, dim = self.result_shape, self.stacking_dim
        assert shape is not None and dim is not None
        inf = stacking.unlimited_axis(shape)
        assert inf is not None
        previous = self._read_extent(task_id)
        if previous > length:
            stale = list(stacking.slot_region(shape, dim, task_id, data_shape))
            stale[inf] = slice(length, previous)
            self._array("result_0")[tuple(stale)] = 0

    def _read_extent(self, task_id: int) -> int:
        if self.fast is not None and self.fast.extent_encoding is not None:
            return self.fast.read_extent(task_id)
        return int(self._array(EXTENT)[task_id])

    def _write_extent(self, task_id: int, length: int) -> None:
        if self.fast is not None and self.fast.extent_encoding is not None:
            self.fast.write_extent(task_id, length)
            return
        self._array(EXTENT)[task_id:task_id + 1] = np.array([length], dtype="<i8")
