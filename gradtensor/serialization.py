"""gt.save / gt.load: state dicts, and nested dicts/lists/tuples of tensors, numbers, strings and
None, in a NumPy .npz file.

The arrays are the .npz members; the structure around them is JSON in one more member. Loading
parses the .npy headers and `json.loads` itself (never pickle), so a file can hold data but never
code.

>>> gt.save({"model": model.state_dict(), "epoch": 3}, "ckpt.npz")
>>> model.load_state_dict(gt.load("ckpt.npz")["model"])

Saving to a path writes a temporary file in the same folder, named `.<name>.<random>.gtsave-tmp`,
syncs it to disk and renames it over the destination: readers, other threads and other processes
see the old file or the new one whole, never a mix. A process killed mid-save (SIGKILL, power loss)
can leave such a temporary behind; it is never read as a checkpoint and is safe to delete.

Loading reads only the members the structure refers to, and checks each one's declared size
before decompressing it, so a crafted or damaged file raises ValueError instead of exhausting
memory.
"""

from __future__ import annotations

import contextlib
import errno
import json
import math
import os
import secrets
import stat
import struct
import zipfile
import zlib
from collections.abc import Callable
from typing import Any, BinaryIO

import numpy as np

from . import backend
from .tensor import Tensor

__all__ = ["load", "save"]

_META = "__gradtensor__"  # the member holding the JSON structure
_FORMAT = "gradtensor.save"
_VERSION = 1
_TMP_SUFFIX = ".gtsave-tmp"
_MAX_DEPTH = 100  # nesting of dicts/lists/tuples; deeper (or a structure holding itself) is refused
_CHUNK = 1 << 20  # members are read in pieces: memory is the array plus at most this
_ARRAY_KINDS = "biufc"  # bool, ints, floats, complex: what .npy holds without pickle
_TENSOR_KINDS = "biuf"  # what a Tensor holds
_PathLike = str | os.PathLike | BinaryIO

try:
    from lzma import LZMAError
except ImportError:  # a Python built without lzma cannot read such members at all
    LZMAError = zipfile.BadZipFile  # type: ignore[misc, assignment]

# What reading a damaged or crafted archive can raise from zipfile, zlib and NumPy's .npy parser.
_READ_ERRORS = (
    OSError,
    EOFError,
    ValueError,  # includes UnicodeDecodeError and json.JSONDecodeError
    zipfile.BadZipFile,
    zipfile.LargeZipFile,
    zlib.error,
    LZMAError,
    NotImplementedError,  # an unknown compression method
    RuntimeError,  # an encrypted member
    struct.error,
    OverflowError,
)


class _Damaged(Exception):
    """A reason the file cannot be read; `load` names the file around it."""


def _broken(why: str) -> _Damaged:
    return _Damaged(f"its structure record is damaged: {why}")


# -- structure ------------------------------------------------------------------------------------


def _where(path: str) -> str:
    return path or "the top level"


def _numeric(arr: Any, path: str, what: str) -> None:
    if arr.dtype.kind not in _ARRAY_KINDS:
        raise TypeError(
            f"save: the {what} at {_where(path)} has dtype {arr.dtype}, which is not numeric; "
            "gt.save stores bool, integer, floating and complex arrays"
        )


def _encode(obj: Any, arrays: dict[str, np.ndarray], path: str, depth: int = 0) -> Any:
    """JSON for obj; tensors and arrays go into `arrays` and are referred to by member name."""
    if obj is None or isinstance(obj, (bool, str)):
        return obj
    if isinstance(obj, int):
        return obj
    if isinstance(obj, float):
        # JSON has no inf/nan: keep them tagged so the file stays standard JSON.
        return obj if math.isfinite(obj) else {"float": repr(obj)}
    if isinstance(obj, Tensor):
        _numeric(obj.data, path, "tensor")
        key = f"a{len(arrays)}"
        arrays[key] = np.asarray(backend.to_device(obj.data, backend.CPU))
        return {"tensor": key, "requires_grad": bool(obj.requires_grad)}
    if isinstance(obj, (np.ndarray, np.generic)):
        _numeric(obj, path, "array" if isinstance(obj, np.ndarray) else "NumPy scalar")
        key = f"a{len(arrays)}"
        arrays[key] = np.asarray(obj)
        return {"ndarray" if isinstance(obj, np.ndarray) else "scalar": key}
    if isinstance(obj, (dict, list, tuple)) and depth >= _MAX_DEPTH:
        raise ValueError(
            f"save: {_where(path)} is nested more than {_MAX_DEPTH} levels deep "
            "(does the structure contain itself?)"
        )
    if isinstance(obj, dict):
        items = []
        for k, v in obj.items():
            if not (k is None or isinstance(k, (str, int, float, bool))):
                raise TypeError(
                    f"save: dict keys must be str, int, float, bool or None; "
                    f"{_where(path)} has a key of type {type(k).__name__}"
                )
            items.append(
                [_encode(k, arrays, path), _encode(v, arrays, f"{path}[{k!r}]", depth + 1)]
            )
        return {"dict": items}
    if isinstance(obj, (list, tuple)):
        kind = "list" if isinstance(obj, list) else "tuple"
        return {kind: [_encode(v, arrays, f"{path}[{i}]", depth + 1) for i, v in enumerate(obj)]}
    raise TypeError(
        f"save: cannot store a {type(obj).__name__} (at {_where(path)}); gt.save stores tensors, "
        "NumPy arrays, numbers, strings, None, and dicts/lists/tuples of them"
    )


def _decode(
    node: Any, member: Callable[[str], np.ndarray], tensors: list[Tensor], depth: int = 0
) -> Any:
    """The object a structure record describes; `member(name)` reads an array from the archive.
    Every JSON type is checked, since the record may come from anyone."""
    if node is None or isinstance(node, (bool, int, float, str)):
        return node
    if not isinstance(node, dict):
        raise _broken(f"a bare JSON {type(node).__name__} stands where an entry belongs")
    if "tensor" in node:
        key, grad = node["tensor"], node.get("requires_grad", False)
        if set(node) - {"tensor", "requires_grad"} or not isinstance(key, str):
            raise _broken(f"a malformed tensor entry {_short(node)}")
        if not isinstance(grad, bool):
            raise _broken(f"tensor {key!r} has requires_grad {_short(grad)}, not true/false")
        arr = member(key)
        if arr.dtype.kind not in _TENSOR_KINDS or (grad and arr.dtype.kind != "f"):
            raise _broken(f"member {key!r} of dtype {arr.dtype} cannot be a tensor as recorded")
        t = Tensor._make(arr)
        t.requires_grad = grad
        tensors.append(t)
        return t
    if len(node) != 1:
        raise _broken(f"an entry with keys {sorted(map(str, node))}, where one kind belongs")
    ((kind, v),) = node.items()
    if kind == "float":
        if not (isinstance(v, str) and v in ("inf", "-inf", "nan")):
            raise _broken(f"a float entry holding {_short(v)}")
        return float(v)
    if kind in ("ndarray", "scalar"):
        if not isinstance(v, str):
            raise _broken(f"an {kind} entry naming {_short(v)}, not a member")
        arr = member(v)
        if kind == "ndarray":
            return arr
        if arr.ndim != 0:
            raise _broken(f"scalar member {v!r} has shape {arr.shape}")
        return arr[()]
    if kind not in ("dict", "list", "tuple"):
        raise _broken(f"unknown entry kind {_short(kind)}")
    if not isinstance(v, list):
        raise _broken(f"a {kind} entry holding a JSON {type(v).__name__}, not a list")
    if depth >= _MAX_DEPTH:
        raise _broken(f"it is nested more than {_MAX_DEPTH} levels deep")
    if kind == "list":
        return [_decode(x, member, tensors, depth + 1) for x in v]
    if kind == "tuple":
        return tuple(_decode(x, member, tensors, depth + 1) for x in v)
    out = {}
    for item in v:
        if not (isinstance(item, list) and len(item) == 2):
            raise _broken(f"a dict item {_short(item)} that is not a [key, value] pair")
        k = _decode(item[0], member, tensors, depth + 1)
        if not (k is None or isinstance(k, (str, int, float, bool))):
            raise _broken(f"a dict key of type {type(k).__name__}")
        out[k] = _decode(item[1], member, tensors, depth + 1)
    return out


def _short(x: Any) -> str:
    text = repr(x)
    return text if len(text) <= 60 else text[:57] + "..."


# -- saving ---------------------------------------------------------------------------------------


def save(obj: Any, f: _PathLike) -> None:
    """Write obj (a state dict, or dicts/lists/tuples of tensors and plain values) to a file.

    A path is written whole or not at all: a crash or an exception mid-save leaves any previous
    file intact, concurrent saves to one path each land whole (the last one wins), and readers
    never see a partial file. An existing file keeps its permissions; a symlink is written
    through (its target is replaced, the link kept). Only numeric arrays and tensors can be
    stored (bool, integer, floating, complex); others raise TypeError before anything is written.
    """
    arrays: dict[str, np.ndarray] = {}
    root = _encode(obj, arrays, "")
    meta = json.dumps({"format": _FORMAT, "version": _VERSION, "root": root}, allow_nan=False)
    arrays[_META] = np.frombuffer(meta.encode("utf-8"), dtype=np.uint8)
    if hasattr(f, "write"):
        np.savez(f, **arrays)
        return
    _write_atomic(os.fspath(f), arrays)


def _write_atomic(path: str, arrays: dict[str, np.ndarray]) -> None:
    target = os.path.realpath(path)  # through a symlink: replace its target, keep the link
    folder, base = os.path.split(target)
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"save: no such folder: {folder!r}")
    try:
        mode: int | None = stat.S_IMODE(os.stat(target).st_mode)
    except FileNotFoundError:
        mode = None
    # Created with the old file's mode (or 0o666, narrowed by the umask, as open() does), so the
    # data is never readable more widely than the destination's.
    fd, tmp = _create_temp(folder, base, 0o666 if mode is None else mode & 0o777)
    try:
        with os.fdopen(fd, "wb") as fh:
            if mode is not None:
                os.chmod(tmp, mode)  # exactly the old mode, which the umask may have narrowed
            np.savez(fh, **arrays)  # an open file: np.savez would otherwise append ".npz"
            fh.flush()
            os.fsync(fh.fileno())  # the data is on disk before the name points to it
        os.replace(tmp, target)
    except BaseException:  # KeyboardInterrupt too: never leave a temporary behind
        with contextlib.suppress(OSError):
            os.remove(tmp)
        raise
    _fsync_folder(folder)


def _create_temp(folder: str, base: str, mode: int) -> tuple[int, str]:
    """A new file next to the destination, opened for writing. Not tempfile.mkstemp: its files
    are 0600 whatever the umask, and a new checkpoint should get the mode open() would give."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    while True:
        # The name is cut so the temporary's stays under the 255-byte limit of most filesystems.
        tmp = os.path.join(folder, f".{base[:120]}.{secrets.token_hex(8)}{_TMP_SUFFIX}")
        try:
            return os.open(tmp, flags, mode), tmp
        except FileExistsError:
            continue  # 64 random bits clashed: draw another name


def _fsync_folder(folder: str) -> None:
    """Make the rename itself durable, where the OS lets a program sync a folder."""
    if os.name != "posix":
        return
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return  # a folder we may write but not read
    try:
        os.fsync(fd)
    except OSError as exc:
        if exc.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EBADF, errno.EACCES):
            raise  # a real I/O error; the others mean this filesystem cannot sync folders
    finally:
        os.close(fd)


# -- loading --------------------------------------------------------------------------------------


def load(f: _PathLike, device: Any = None, *, max_bytes: int | None = None) -> Any:
    """Read what `save` wrote; tensors go to `device` (the CPU by default).

    A missing file raises FileNotFoundError; a truncated, corrupt, crafted or foreign file raises
    ValueError naming it. Only the members the structure refers to are read, and together they may
    take at most `max_bytes` once decompressed: by default the size of the file itself, which
    every file gt.save writes respects (it stores arrays uncompressed). Pass a larger max_bytes to
    read a recompressed archive.
    """
    name = getattr(f, "name", None) if hasattr(f, "read") else os.fspath(f)
    name = name if isinstance(name, (str, bytes)) else "<file object>"
    dev = backend.device(device)
    if max_bytes is not None and (not isinstance(max_bytes, int) or max_bytes < 0):
        raise ValueError(f"load: max_bytes must be a non-negative int or None, got {max_bytes!r}")
    if not hasattr(f, "read") and not os.path.exists(name):
        raise FileNotFoundError(f"load: no such file: {name!r}")
    tensors: list[Tensor] = []
    try:
        if hasattr(f, "read"):
            obj = _read(f, max_bytes, tensors)
        else:
            with open(name, "rb") as fh:  # our own handle, closed whatever happens
                obj = _read(fh, max_bytes, tensors)
    except FileNotFoundError:
        raise
    except _Damaged as exc:
        raise _bad(name, str(exc)) from None
    except RecursionError:  # from json, before our own depth check can see the record
        raise _bad(name, "its structure record is nested too deeply") from None
    except _READ_ERRORS as exc:
        raise _bad(name, f"{type(exc).__name__}: {exc}") from None
    if dev != backend.CPU:  # outside the guard: a device error is not a damaged file
        for t in tensors:
            t.data = backend.to_device(t.data, dev)
    return obj


def _bad(name: Any, why: str) -> ValueError:
    return ValueError(f"load: {name!r} is not a readable gradtensor file ({why})")


def _read(fh: BinaryIO, max_bytes: int | None, tensors: list[Tensor]) -> Any:
    start = fh.tell()
    size = fh.seek(0, os.SEEK_END) - start
    fh.seek(start)
    if fh.read(6) == b"\x93NUMPY":
        raise _Damaged("it holds a single .npy array, not a .npz archive")
    fh.seek(start)
    if max_bytes is None:
        budget = [size, f"the file's own {size} bytes (pass max_bytes= to allow more)"]
    else:
        budget = [max_bytes, f"max_bytes={max_bytes}"]
    with zipfile.ZipFile(fh) as z:
        if _META + ".npy" not in z.namelist():
            raise _Damaged(
                f"it is an .npz archive without the {_META!r} member that gt.save writes"
            )
        raw = _member(z, _META, budget)
        if raw.dtype != np.uint8 or raw.ndim != 1:
            raise _Damaged("its structure record is not gt.save's")
        meta = json.loads(raw.tobytes().decode("utf-8"))
        if not isinstance(meta, dict) or meta.get("format") != _FORMAT:
            raise _Damaged("its structure record is not gt.save's")
        version = meta.get("version")
        if type(version) is not int or version < 1 or "root" not in meta:
            raise _Damaged("its structure record lacks a format version or a root")
        if version > _VERSION:
            raise _Damaged(
                f"it was written in format version {version}; this gradtensor reads up to "
                f"version {_VERSION}"
            )
        return _decode(meta["root"], lambda key: _member(z, key, budget), tensors)


def _member(z: zipfile.ZipFile, key: str, budget: list[Any]) -> np.ndarray:
    """Read member `key` (an .npy file), having checked its sizes before decompressing it."""
    try:
        info = z.getinfo(key + ".npy")
    except KeyError:
        raise _broken(f"it refers to member {key!r}, which the archive lacks") from None
    if info.file_size > budget[0]:
        raise _Damaged(
            f"member {key!r} would take {info.file_size} bytes once decompressed; what is left "
            f"of {budget[1]} is {budget[0]}"
        )
    budget[0] -= info.file_size
    with z.open(info) as fp:
        version = np.lib.format.read_magic(fp)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(fp)
        elif version == (2, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(fp)
        else:
            raise _Damaged(f"member {key!r} is .npy version {version}, which gt.save never writes")
        if dtype.kind not in _ARRAY_KINDS or dtype.fields is not None or dtype.subdtype:
            raise _Damaged(f"member {key!r} has dtype {dtype}, which is not numeric")
        if any(n < 0 for n in shape):
            raise _Damaged(f"member {key!r} declares the shape {shape}")
        nbytes = math.prod(shape) * dtype.itemsize
        header = fp.tell()
        if header + nbytes != info.file_size:
            raise _Damaged(
                f"member {key!r} declares shape {shape} of {dtype} ({nbytes} bytes of data), "
                f"but the archive says it holds {info.file_size - header}"
            )
        buf = np.empty(nbytes, np.uint8)
        view, done = memoryview(buf), 0
        while done < nbytes:
            n = fp.readinto(view[done : done + _CHUNK])
            if not n:
                raise _Damaged(f"member {key!r} ends after {done} of its {nbytes} bytes")
            done += n
        if fp.read(1):  # also makes zipfile check the CRC of what it read
            raise _Damaged(f"member {key!r} holds more than its {nbytes} declared bytes")
    arr = buf.view(dtype).reshape(shape, order="F" if fortran else "C")
    return arr if dtype.isnative else arr.astype(dtype.newbyteorder("="))
