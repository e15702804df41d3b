"""A zarr v3 group in one zip file: the ``"rows"`` shards' format (:mod:`.rows`).

A shard is a plain zip archive (``ZIP_STORED``, no compression of its own) whose
entry names are zarr keys (``zarr.json``, ``acme_ids/c/0``,
``comp_7/result_0/zarr.json``, ...), which is what zarr-python's
``ZipStore`` reads::

    import zarr
    group = zarr.open_group(zarr.storage.ZipStore(path, mode="r"), mode="r")
    group["acme_ids"][...], group["acme_block/result_0"][...]

Why a zip and not a directory store: a zip is *one* file, written once under a
temporary name and renamed (complete or absent), where a directory store is a
file per key (three per call: what made the per-call layout slow and a metadata
server's burden, issue 16).

Entries are made in two ways:

* **by hand** for the common case: an uncompressed array of plain numbers
  (bool, ints, floats, complex) held as one chunk. Its chunk bytes are fixed by
  the zarr v3 spec (the ``bytes`` codec: the values in C order, little endian)
  and so is its ``zarr.json``, which :func:`_metadata` spells as zarr-python does
  (cached per dtype and shape). A worker writing such values never imports zarr.
* **through zarr-python** (:func:`_through_zarr`: an array created in a
  ``MemoryStore`` and its keys taken) for the rest: compressed arrays (the
  store's ``compression`` codecs), text, fixed-length bytes, empty arrays, and
  arrays split into several chunks (the store's ``chunks`` option). That is the
  per-call layout's own code (:func:`acme_storage.zarr._zarr.write_group`'s
  arrays), so a value reads back the same from either layout.

Reading (:class:`ZipGroup`) mirrors it: an array whose metadata says "one
uncompressed chunk of plain numbers" is read with ``np.frombuffer``; anything
else is opened with zarr-python through its ``ZipStore``.
``tests/storage/test_zarr_rows.py`` checks zarr-python reading the by-hand entries.
"""

from __future__ import annotations

import functools
import json
import math
import zipfile
from typing import Any

import numpy as np

from acme_core.fileio import atomic_path, fsync_path
from acme_storage._values import decoded
from acme_storage.zarr import _zarr

__all__ = ["GROUP_JSON", "ZipGroup", "array_entries", "group_entry", "write_zip"]

#: numpy kinds whose one uncompressed chunk is made and read by hand
_RAW_KINDS = frozenset("biufc")
#: a fixed timestamp for every entry: the same values give the same bytes
_DATE = (1980, 1, 1, 0, 0, 0)


def _plain(data: Any, is_text: bool) -> bool:
    return (not is_text and isinstance(data, np.ndarray) and data.dtype.kind in _RAW_KINDS
            and data.dtype.fields is None and data.size > 0)


#: zarr-python's ``zarr.json`` of an empty group (zarr 3.1; ``test_zarr_rows.py`` checks it)
GROUP_JSON = b'{\n  "attributes": {},\n  "zarr_format": 3,\n  "node_type": "group"\n}'


def _fill(dtype: np.dtype[Any]) -> Any:
    """zarr's default fill value of a plain number type, as its ``zarr.json`` spells it."""
    return {"b": False, "i": 0, "u": 0, "f": 0.0, "c": [0.0, 0.0]}[dtype.kind]


@functools.lru_cache(maxsize=256)
def _metadata(dtype: str, shape: tuple[int, ...]) -> bytes:
    """The ``zarr.json`` of an uncompressed one-chunk array of plain numbers (cached).

    Made as zarr-python 3.1 makes it, key for key (``tests/storage/test_zarr_rows.py``
    checks it byte for byte): so a worker writing plain numbers never imports zarr
    (about half a second per worker process, a tenth of a 10,000-call run).
    """
    kind = np.dtype(dtype)
    codec: dict[str, Any] = {"name": "bytes"}
    if kind.itemsize > 1:
        codec["configuration"] = {"endian": "little"}
    meta = {"shape": list(shape), "data_type": kind.name,
            "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": list(shape)}},
            "chunk_key_encoding": {"name": "default", "configuration": {"separator": "/"}},
            "fill_value": _fill(kind), "codecs": [codec], "attributes": {}, "zarr_format": 3,
            "node_type": "array", "storage_transformers": []}
    return json.dumps(meta, indent=2).encode()


def group_entry() -> bytes:
    """The ``zarr.json`` of an empty group (:data:`GROUP_JSON`)."""
    return GROUP_JSON


def _chunk_key(ndim: int) -> str:
    return "c" if ndim == 0 else "c/" + "/".join("0" * ndim)


def array_entries(prefix: str, data: Any, is_text: bool, codecs: Any,
                  chunks: tuple[int, ...] | None = None) -> dict[str, Any]:
    """The zip entries (key -> bytes) of the array ``prefix`` holding ``data``.

    ``codecs`` and ``chunks`` as the per-call layout takes them
    (:func:`acme_storage.zarr._zarr.write_group`); see the module docstring.
    """
    split = chunks is not None and isinstance(data, np.ndarray) and len(chunks) == data.ndim \
        and tuple(chunks) != data.shape
    if codecs is None and not split and _plain(data, is_text):
        # astype, not ascontiguousarray: that makes a 0-d array 1-d
        little = data.astype(data.dtype.newbyteorder("<"), order="C", copy=False)
        meta = _metadata(little.dtype.str, little.shape)
        return {f"{prefix}/zarr.json": meta,
                f"{prefix}/{_chunk_key(little.ndim)}": little.reshape(-1).view(np.uint8).data}
    return _through_zarr(prefix, data, is_text, codecs, chunks)


def _through_zarr(prefix: str, data: Any, is_text: bool, codecs: Any,
                  chunks: tuple[int, ...] | None) -> dict[str, Any]:
    """The entries of one array as zarr-python writes it (into memory)."""
    z = _zarr.zarr()
    held: dict[str, Any] = {}
    group = z.open_group(store=z.storage.MemoryStore(held), mode="w", zarr_format=3)
    _zarr.create_array(group, "a", data, is_text, codecs, chunks)
    return {f"{prefix}/{key[2:]}": value.to_bytes()
            for key, value in held.items() if key.startswith("a/")}


def write_zip(path: str, entries: dict[str, Any], fsync: bool = True) -> None:
    """Write ``entries`` as the zip ``path``: temporary name, fsync, rename."""
    with atomic_path(path) as tmp:
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED) as zf:
            for key, data in entries.items():
                zf.writestr(zipfile.ZipInfo(key, date_time=_DATE), data)
        if fsync:
            fsync_path(tmp)


class ZipGroup:
    """One zip shard opened for reading (see the module docstring); use as a context manager.

    Raises
    ------
    OSError, zipfile.BadZipFile
        The file is missing or not a complete zip (a crash cut it short).
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self.zip = zipfile.ZipFile(path)
        self.names = frozenset(self.zip.namelist())
        #: group -> the nodes directly inside it (from the ``<node>/zarr.json`` entries),
        #: made once: asked per call, a scan of every entry made reading quadratic
        self._children: dict[str, list[str]] = {}
        for name in self.names:
            parts = name.split("/")
            if len(parts) >= 2 and parts[-1] == "zarr.json":
                self._children.setdefault("/".join(parts[:-2]), []).append(parts[-2])
        self._zarr_group: Any = None
        #: the file's bytes, read once: an entry is then a slice, not a seek and a read
        #: through ``ZipFile.open`` (3 of them per call in a group: most of reading)
        self._bytes: bytes | None = None
        #: parsed ``zarr.json`` by its bytes (a shard's groups repeat a few of them)
        self._parsed: dict[bytes, dict[str, Any]] = {}

    def __enter__(self) -> ZipGroup:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the zip (and zarr's view of it)."""
        if self._zarr_group is not None:
            self._zarr_group.store.close()
        self.zip.close()

    def read(self, name: str) -> bytes:
        """The entry ``name``'s bytes (stored entries sliced out of the file read once).

        Raises
        ------
        KeyError
            No such entry.
        """
        info = self.zip.getinfo(name)
        if info.compress_type != zipfile.ZIP_STORED or info.flag_bits & 0x1:
            return self.zip.read(name)
        if self._bytes is None:
            with open(self.path, "rb") as fh:
                self._bytes = fh.read()
        start = info.header_offset
        header = self._bytes[start:start + 30]
        if len(header) < 30 or header[:4] != b"PK\x03\x04":
            return self.zip.read(name)
        begin = start + 30 + int.from_bytes(header[26:28], "little") \
            + int.from_bytes(header[28:30], "little")
        data = self._bytes[begin:begin + info.file_size]
        return data if len(data) == info.file_size else self.zip.read(name)

    def _meta(self, prefix: str) -> dict[str, Any]:
        raw = self.read(f"{prefix}/zarr.json")
        meta = self._parsed.get(raw)
        if meta is None:
            meta = self._parsed[raw] = json.loads(raw)
        return meta

    def has(self, prefix: str) -> bool:
        """Whether the node ``prefix`` (array or group) is in the shard."""
        return f"{prefix}/zarr.json" in self.names

    def members(self, prefix: str = "") -> list[str]:
        """The names of the nodes directly inside the group ``prefix``."""
        return sorted(self._children.get(prefix, []))

    def shape(self, prefix: str) -> tuple[int, ...]:
        """The array ``prefix``'s shape, from its metadata (no data read).

        Raises
        ------
        ValueError
            The metadata holds no shape of non-negative integers.
        """
        shape = self._meta(prefix).get("shape")
        if not isinstance(shape, list) or not all(isinstance(s, int) and s >= 0 for s in shape):
            raise ValueError(f"{self.path}: {prefix} has no shape")
        return tuple(shape)

    def array(self, prefix: str) -> np.ndarray[Any, Any]:
        """The array ``prefix`` (by hand when it is one plain chunk, else through zarr)."""
        raw = self._by_hand(prefix)
        if raw is not None:
            return raw
        return np.asarray(self._through_zarr(prefix)[...])

    def value(self, prefix: str) -> Any:
        """The array ``prefix`` as the per-call layout reads it back (text as ``str``)."""
        raw = self._by_hand(prefix)
        if raw is not None:
            return raw[()] if raw.ndim == 0 else raw
        array = self._through_zarr(prefix)
        return decoded(array[...], text=np.dtype(array.dtype).kind not in "SV")

    def _through_zarr(self, prefix: str) -> Any:
        """The array ``prefix`` opened by zarr-python, unless a codec of it would unpickle
        (``numcodecs.pickle``, if registered): nothing in a run directory is unpickled
        unless the manifest lists it.

        Raises
        ------
        ValueError
            The array's metadata names a pickling codec.
        """
        meta = self.zip.read(f"{prefix}/zarr.json")
        if b"pickle" in meta.lower():
            raise ValueError(f"{self.path}: {prefix} names a pickling codec; not read")
        return self._zarr()[prefix]

    def _zarr(self) -> Any:
        if self._zarr_group is None:
            z = _zarr.zarr()
            self._zarr_group = z.open_group(z.storage.ZipStore(self.path, mode="r"), mode="r")
        return self._zarr_group

    def _by_hand(self, prefix: str) -> np.ndarray[Any, Any] | None:
        """The array when its metadata is one uncompressed chunk of plain numbers; else None."""
        meta = self._meta(prefix)
        shape = tuple(meta.get("shape", ()))
        codecs = meta.get("codecs")
        if not (isinstance(codecs, list) and len(codecs) == 1 and codecs[0].get("name") == "bytes"
                and codecs[0].get("configuration", {}).get("endian", "little") in ("little", None)
                and meta.get("chunk_grid", {}).get("configuration", {}).get("chunk_shape")
                == list(shape) and meta.get("chunk_key_encoding", {}).get("configuration",
                                                                          {}).get("separator")
                == "/"):
            return None
        name = meta.get("data_type")
        try:  # zarr's names of plain numbers are numpy's; others may be dicts
            dtype = np.dtype(name).newbyteorder("<") if isinstance(name, str) else None
        except TypeError:
            return None
        if dtype is None:
            return None
        key = f"{prefix}/{_chunk_key(len(shape))}"
        if dtype.kind not in _RAW_KINDS or key not in self.names:
            return None
        data = self.read(key)
        if len(data) != math.prod(shape) * dtype.itemsize:
            return None
        return np.frombuffer(bytearray(data), dtype).reshape(shape)
