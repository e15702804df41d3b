"""Fast per-call HDF5 files for the ``"hdf5"`` store: an image HDF5 made once, then only data bytes change.

Creating an HDF5 file costs libhdf5 about 0.3-0.5 ms of CPU (property lists,
metadata cache, superblock, object headers), which bounds the ``"hdf5"`` store
at 1,000-2,500 files/s per process however small the result. But the files of
one run are nearly always alike: the same dataset names, dtypes and shapes, only
other numbers. Such files are identical byte for byte except for their raw data,
which HDF5 stores *contiguously* at an address the library reports
(``H5Dget_offset``) when a dataset has no filters and is not chunked.

So a worker makes, once per *signature* (names, dtypes, shapes), a file **with
h5py itself** in memory (``driver="core"``), takes its image
(``H5Fget_file_image``) and the datasets' data addresses, and writes every later
call's file as ``image[:offset] + data + image[offset + n:]``. Nothing of the
HDF5 format is written by hand: the metadata bytes are HDF5's own, and raw data
of contiguous, unfiltered datasets carries no checksum.

Safeguards, so a surprise means a slower file and never a wrong one:

* only plain numeric and boolean arrays (``dtype.kind`` in ``"biufc"``), without
  compression, take this path; everything else is written by h5py as before;
* the template is filled with a distinctive byte pattern and the pattern must
  be found at every reported offset, or the signature is not used;
* the first file written from each template is read back with h5py and
  compared with the value; on any mismatch it is rewritten by h5py and the
  signature is not used again in this process.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections import OrderedDict
from typing import Any

import numpy as np

from acme_core.fileio import write_segments_atomic

__all__ = ["FAST_KINDS", "MAX_TEMPLATES", "MAX_TEMPLATE_BYTES", "Template", "Templates", "build",
           "fits", "matches"]

log = logging.getLogger("acme")

#: dtype kinds whose raw bytes h5py stores unchanged (bool, ints, floats, complex)
FAST_KINDS = frozenset("biufc")

#: signatures remembered per writer (each holds one file image of metadata + data)
MAX_TEMPLATES = 16

#: templates larger than this are not kept (their data is most of the image anyway)
MAX_TEMPLATE_BYTES = 64 * 2**20


Signature = tuple[tuple[str, str, tuple[int, ...]], ...]


class Template:
    """One signature's file image and where each dataset's data lives in it."""

    __slots__ = ("image", "spans", "checked")

    def __init__(self, image: bytes, spans: list[tuple[int, int]]) -> None:
        self.image = image
        #: (offset, nbytes) of each dataset's data, in signature order, ascending offsets
        self.spans = spans
        #: whether a file written from it was read back and matched
        self.checked = False

    def segments(self, arrays: list[np.ndarray]) -> list[Any]:
        """The buffers whose concatenation is the file holding ``arrays``."""
        out: list[Any] = []
        position = 0
        image = memoryview(self.image)
        for (offset, nbytes), array in sorted(zip(self.spans, arrays, strict=True),
                                              key=lambda pair: pair[0][0]):
            if nbytes == 0:
                continue
            out.append(image[position:offset])
            out.append(array.reshape(-1).view(np.uint8).data)
            position = offset + nbytes
        out.append(image[position:])
        return out


def fits(array: np.ndarray) -> bool:
    """Whether h5py stores ``array``'s raw bytes unchanged (so a template can hold it)."""
    return array.dtype.kind in FAST_KINDS and array.dtype.fields is None


def _pattern(array: np.ndarray) -> np.ndarray:
    """An array of ``array``'s dtype and shape whose bytes are a distinctive sequence."""
    raw = (np.arange(array.nbytes, dtype=np.uint64) * 131 + 17) % 251 + 1
    if array.dtype.kind == "b":  # h5py maps bool to an enum of 0/1: keep the bytes valid
        raw = raw % 2
    return raw.astype(np.uint8).view(array.dtype).reshape(array.shape)


def build(h5py: Any, names: list[str], arrays: list[np.ndarray]) -> Template | None:
    """Make the template for these datasets with h5py, or None if it cannot be trusted."""
    patterns = [_pattern(a) for a in arrays]
    # an in-memory file: HDF5 never touches the disk for it (the name is only a label)
    with h5py.File(f"acme-template-{os.getpid()}-{id(names)}.h5", "w", driver="core",
                   backing_store=False) as h5f:
        for name, data in zip(names, patterns, strict=True):
            h5f.create_dataset(name, data=data)
        h5f.flush()
        spans = []
        for name, data in zip(names, patterns, strict=True):
            offset = h5f[name].id.get_offset()
            if offset is None:
                if data.nbytes:  # data with no contiguous storage: not for us
                    return None
                offset = 0
            spans.append((int(offset), int(data.nbytes)))
        image = h5f.id.get_file_image()
    if len(image) > MAX_TEMPLATE_BYTES:
        return None
    for (offset, nbytes), data in zip(spans, patterns, strict=True):
        if nbytes and image[offset:offset + nbytes] != data.tobytes():
            return None  # the reported address does not hold the data
    ordered = sorted(s for s in spans if s[1])
    if any(a[0] + a[1] > b[0] for a, b in zip(ordered, ordered[1:], strict=False)):
        return None
    return Template(image, spans)


def matches(h5py: Any, path: str, names: list[str], arrays: list[np.ndarray]) -> bool:
    """Whether the file at ``path`` reads back as ``arrays`` (bit for bit)."""
    try:
        with h5py.File(path, "r") as h5f:
            if sorted(h5f.keys()) != sorted(names):
                return False
            for name, expected in zip(names, arrays, strict=True):
                dataset = h5f[name]
                # h5py reads a 0-d dataset as a numpy scalar in native byte order: compare
                # in the dataset's own dtype (a big-endian number read back is no mismatch)
                got = np.asarray(dataset[()], dtype=dataset.dtype)
                if got.dtype != expected.dtype or got.shape != expected.shape:
                    return False
                if got.tobytes() != expected.tobytes():
                    return False
    except Exception:
        return False
    return True


class Templates:
    """A small per-process cache of templates by signature, plus the signatures refused."""

    def __init__(self) -> None:
        self._known: OrderedDict[Signature, Template] = OrderedDict()
        self._refused: set[Signature] = set()

    def write(self, h5py: Any, final: str, names: list[str], arrays: list[np.ndarray],
              fsync: bool = False) -> bool:
        """Write the file ``final`` holding ``arrays`` from a template, atomically.

        False (nothing written) when there is no trustworthy template for them. The
        first file of each template is read back with h5py before it counts. With
        ``fsync`` the file reaches the disk before it is renamed into place.
        """
        signature = tuple((n, a.dtype.str, a.shape) for n, a in zip(names, arrays, strict=True))
        template = self.get(h5py, signature, names, arrays)
        if template is None:
            return False
        check = None if template.checked else (
            lambda path: matches(h5py, path, names, arrays))
        if not write_segments_atomic(final, template.segments(arrays), check, fsync):
            self.refuse(signature)
            log.warning("An HDF5 file written from a template did not read back as written; "
                        "writing %s results with h5py instead", signature)
            return False
        template.checked = True
        return True

    def get(self, h5py: Any, signature: Signature, names: list[str],
            arrays: list[np.ndarray]) -> Template | None:
        if signature in self._refused:
            return None
        template = self._known.get(signature)
        if template is not None:
            # a worker may run calls in several threads: another one may evict it meanwhile
            with contextlib.suppress(KeyError):
                self._known.move_to_end(signature)
            return template
        try:
            template = build(h5py, names, arrays)
        except Exception:
            template = None
        if template is None:
            self.refuse(signature)
            return None
        self._known[signature] = template
        while len(self._known) > MAX_TEMPLATES:
            with contextlib.suppress(KeyError):
                self._known.popitem(last=False)
        return template

    def refuse(self, signature: Signature) -> None:
        self._known.pop(signature, None)
        self._refused.add(signature)
