"""Safe reading of ``.npz`` and ``.npy`` files: headers first, then only the expected members.

Every loader of neurosnap (training checkpoints, ``params.npz``, recordings, ``simulate`` inputs)
reads through this module. Before any array data is read it checks

- that the path is an existing regular file and a readable zip archive (``.npz``) or ``.npy``;
- every member's name (``<key>.npy``, no duplicates, at most :data:`MAX_MEMBERS` members);
- every member's ``.npy`` header: a plain numeric dtype (bool, integers, floats; object arrays are
  refused, nothing is ever unpickled), a declared size that fits in memory
  (:data:`neurosnap.core.validate.MAX_BYTES`) and that the member really holds;

and then reads (decompresses) only the members the caller asks for, so an unused huge member (a
"deflate bomb") costs nothing. Any failure is a ``ValueError`` (or the caller's subclass) saying
"not a valid neurosnap <what> file" and why; the message never suggests unpickling.
"""

from __future__ import annotations

import struct
import tokenize
import warnings
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import validate

#: Most members an archive may have.
MAX_MEMBERS = 4096
#: dtype kinds a member may have: bool, signed/unsigned integers, floats.
KINDS = "biuf"
# what numpy's header parser and zipfile raise on corrupt bytes (the header is a Python literal
# parsed with ast/tokenize: a damaged one raises SyntaxError or TokenError)
_READ_ERRORS = (
    ValueError,
    EOFError,
    OSError,
    zipfile.BadZipFile,
    zlib.error,
    struct.error,
    NotImplementedError,
    RuntimeError,
    OverflowError,
    KeyError,
    IndexError,
    TypeError,
    SyntaxError,
    tokenize.TokenError,
)


@dataclass(frozen=True)
class Header:
    """What a member's ``.npy`` header declares (nothing of its data has been read)."""

    name: str
    shape: tuple
    dtype: np.dtype
    fortran: bool
    #: bytes of the array data, ``prod(shape) * itemsize``
    nbytes: int
    #: zip entry (``None`` for a plain ``.npy`` file)
    info: zipfile.ZipInfo | None
    #: offset of the data from the start of the member (or file)
    data_offset: int


def _brief(exc) -> str:
    text = str(exc)
    return text if len(text) <= 200 else text[:200] + "..."


def _fail(error, what, path, reason):
    exc = error(f"{path} is not a valid neurosnap {what} file: {reason}")
    exc._neurosnap_checked = True  # raised by this module: passed on unchanged
    return exc


def check_file(path, what: str, error=ValueError) -> Path:
    """``path`` as a ``Path`` if it is an existing regular file, else ``error`` naming it."""
    path = Path(path)
    if path.is_dir():
        raise error(f"{what} file {path} is a directory, not a file")
    if not path.is_file():
        raise error(f"{what} file not found: {path}")
    return path


def _header(f, name, what, path, error, info=None, size=None) -> Header:
    label = f"member {name!r}" if info is not None else "the array"
    try:
        version = np.lib.format.read_magic(f)
        if version not in ((1, 0), (2, 0), (3, 0)):
            raise ValueError(f"unsupported .npy format version {version}")
        read = (
            np.lib.format.read_array_header_1_0
            if version == (1, 0)
            else np.lib.format.read_array_header_2_0
        )
        with warnings.catch_warnings():  # numpy warns about Python 2 style headers
            warnings.simplefilter("ignore", UserWarning)
            shape, fortran, dtype = read(f)
        offset = f.tell()
    except _READ_ERRORS as exc:
        raise _fail(
            error, what, path, f"{label} has no valid .npy header ({_brief(exc)})"
        ) from None
    if dtype.hasobject:
        raise _fail(
            error,
            what,
            path,
            f"{label} is an object array (refused: neurosnap never unpickles files)",
        )
    if dtype.kind not in KINDS or dtype.fields is not None or dtype.subdtype is not None:
        raise _fail(
            error,
            what,
            path,
            f"{label} has dtype {dtype}; expected bool, integer or floating point numbers",
        )
    count = 1
    for s in shape:
        count *= int(s)
    nbytes = count * dtype.itemsize
    if nbytes > validate.MAX_BYTES:
        raise _fail(
            error,
            what,
            path,
            f"{label} declares shape {shape} ({nbytes} bytes), more than this machine's memory",
        )
    if size is not None and size != offset + nbytes:
        raise _fail(
            error,
            what,
            path,
            f"{label} holds {size - offset} bytes of data but "
            f"its header declares {nbytes} (truncated or corrupt)",
        )
    return Header(name, tuple(int(s) for s in shape), dtype, bool(fortran), nbytes, info, offset)


def headers(path, what: str, error=ValueError) -> dict[str, Header]:
    """The members of an ``.npz`` file and their headers, by key (no array data is read)."""
    path = check_file(path, what, error)
    try:
        with zipfile.ZipFile(path) as zf:
            infos = zf.infolist()
            if len(infos) > MAX_MEMBERS:
                raise _fail(error, what, path, f"{len(infos)} members (at most {MAX_MEMBERS})")
            found = {}
            for info in infos:
                name = info.filename
                if not name.endswith(".npy") or name in ("", ".npy"):
                    raise _fail(error, what, path, f"unexpected member {name!r} (not an array)")
                key = name[:-4]
                if key in found:
                    raise _fail(error, what, path, f"member {name!r} appears twice")
                with zf.open(info) as f:
                    found[key] = _header(f, key, what, path, error, info, info.file_size)
            return found
    except _READ_ERRORS as exc:
        if getattr(exc, "_neurosnap_checked", False):
            raise
        raise _fail(
            error, what, path, f"unreadable or truncated (not an .npz archive: {_brief(exc)})"
        ) from None


def read(path, what: str, select=None, error=ValueError) -> dict[str, np.ndarray]:
    """Arrays of an ``.npz`` file, reading only the members ``select`` chooses.

    Args:
        path: the file.
        what: what the file should be (``"checkpoint"``, ``"params"``, ...) for messages.
        select: ``select(headers) -> iterable of keys`` (may raise to refuse the file, e.g. on an
            unexpected name or shape); default: every member.
        error: the exception class raised (a ``ValueError`` subclass).

    Returns:
        ``{key: array}`` for the selected keys, C-contiguous.
    """
    path = check_file(path, what, error)
    found = headers(path, what, error)
    keys = list(found) if select is None else list(select(found))
    arrays, key = {}, None
    try:
        with zipfile.ZipFile(path) as zf:
            for key in keys:
                head = found[key]
                with zf.open(head.info) as f:  # type: ignore[arg-type]  # set for every member
                    arrays[key] = _data(f, head)
    except _READ_ERRORS as exc:
        raise _fail(
            error, what, path, f"member {key!r} is unreadable or truncated ({_brief(exc)})"
        ) from None
    return arrays


def _data(f, head: Header) -> np.ndarray:
    f.read(head.data_offset)  # past the header (already checked)
    raw = bytearray(head.nbytes)
    view, got = memoryview(raw), 0
    while got < head.nbytes:
        chunk = f.readinto(view[got : got + (1 << 24)])
        if not chunk:
            raise EOFError(f"expected {head.nbytes} bytes of data, got {got}")
        got += chunk
    array = np.frombuffer(raw, dtype=head.dtype, count=head.nbytes // max(1, head.dtype.itemsize))
    array = array.reshape(head.shape, order="F" if head.fortran else "C")
    return np.ascontiguousarray(array) if not array.flags.c_contiguous else array


def npy_header(path, what: str, error=ValueError) -> Header:
    """The header of a ``.npy`` file (checked as in :func:`headers`; no data is read)."""
    path = check_file(path, what, error)
    size = path.stat().st_size
    try:
        with open(path, "rb") as f:
            return _checked_npy(f, path, what, error, size)
    except _READ_ERRORS as exc:
        if getattr(exc, "_neurosnap_checked", False):
            raise
        raise _fail(error, what, path, f"unreadable ({_brief(exc)})") from None


def _checked_npy(f, path, what, error, size):
    head = _header(f, path.name, what, path, error)
    if size < head.data_offset + head.nbytes:
        raise _fail(
            error,
            what,
            path,
            f"it holds {size - head.data_offset} bytes of data but its "
            f"header declares {head.nbytes} (truncated)",
        )
    return head


def memmap(path, head: Header, offset: int = 0) -> np.ndarray:
    """A read-only memory map of the data a checked header describes (``offset``: where the
    member's data region starts in the file, for stored zip members)."""
    if head.nbytes == 0:
        return np.zeros(head.shape, head.dtype)
    if Path(path).stat().st_size < offset + head.data_offset + head.nbytes:
        raise ValueError(
            f"{path} is not a valid neurosnap file: member {head.name!r} is "
            "truncated (the file ends before its data)"
        )
    return np.memmap(
        path,
        dtype=head.dtype,
        mode="r",
        offset=offset + head.data_offset,
        shape=head.shape,
        order="F" if head.fortran else "C",
    )
