"""gt.save / gt.load: state dicts, and nested dicts/lists/tuples of tensors, numbers, strings and
None, in a NumPy .npz file.

The arrays are the .npz members; the structure around them is JSON in one more member. Loading
uses `np.load(allow_pickle=False)` and `json.loads`, so a file can hold data but never code.

>>> gt.save({"model": model.state_dict(), "epoch": 3}, "ckpt.npz")
>>> model.load_state_dict(gt.load("ckpt.npz")["model"])
"""

from __future__ import annotations

import json
import math
import os
import zipfile
from typing import Any, BinaryIO

import numpy as np

from . import backend
from .tensor import Tensor

__all__ = ["load", "save"]

_META = "__gradtensor__"  # the member holding the JSON structure
_FORMAT = "gradtensor.save"
_VERSION = 1
_PathLike = str | os.PathLike | BinaryIO


def _where(path: str) -> str:
    return path or "the top level"


def _encode(obj: Any, arrays: dict[str, np.ndarray], path: str) -> Any:
    """JSON for obj; tensors and arrays go into `arrays` and are referred to by member name."""
    if obj is None or isinstance(obj, (bool, str)):
        return obj
    if isinstance(obj, int):
        return obj
    if isinstance(obj, float):
        # JSON has no inf/nan: keep them tagged so the file stays standard JSON.
        return obj if math.isfinite(obj) else {"float": repr(obj)}
    if isinstance(obj, Tensor):
        key = f"a{len(arrays)}"
        arrays[key] = np.asarray(backend.to_device(obj.data, backend.CPU))
        return {"tensor": key, "requires_grad": bool(obj.requires_grad)}
    if isinstance(obj, np.ndarray) or isinstance(obj, np.generic):
        if isinstance(obj, np.ndarray) and obj.dtype.kind not in "biufc":
            raise TypeError(
                f"save: the array at {_where(path)} has dtype {obj.dtype}, which is not numeric"
            )
        key = f"a{len(arrays)}"
        arrays[key] = np.asarray(obj)
        return {"ndarray" if isinstance(obj, np.ndarray) else "scalar": key}
    if isinstance(obj, dict):
        items = []
        for k, v in obj.items():
            if not (k is None or isinstance(k, (str, int, float, bool))):
                raise TypeError(
                    f"save: dict keys must be str, int, float, bool or None; "
                    f"{_where(path)} has a key of type {type(k).__name__}"
                )
            items.append([_encode(k, arrays, path), _encode(v, arrays, f"{path}[{k!r}]")])
        return {"dict": items}
    if isinstance(obj, (list, tuple)):
        kind = "list" if isinstance(obj, list) else "tuple"
        return {kind: [_encode(v, arrays, f"{path}[{i}]") for i, v in enumerate(obj)]}
    raise TypeError(
        f"save: cannot store a {type(obj).__name__} (at {_where(path)}); gt.save stores tensors, "
        "NumPy arrays, numbers, strings, None, and dicts/lists/tuples of them"
    )


def _decode(node: Any, arrays: Any, device: Any) -> Any:
    if not isinstance(node, (dict, list)):
        return node
    if isinstance(node, list) or len(node) != 1 and "tensor" not in node:
        raise ValueError("malformed structure")
    if "tensor" in node:
        t = Tensor._make(backend.to_device(arrays[node["tensor"]], device))
        if node.get("requires_grad"):
            t.requires_grad = True
        return t
    ((kind, v),) = node.items()
    if kind == "float":
        return float(v)
    if kind == "ndarray":
        return arrays[v]
    if kind == "scalar":
        return arrays[v][()]
    if kind == "dict":
        return {_decode(k, arrays, device): _decode(x, arrays, device) for k, x in v}
    if kind == "list":
        return [_decode(x, arrays, device) for x in v]
    if kind == "tuple":
        return tuple(_decode(x, arrays, device) for x in v)
    raise ValueError(f"unknown entry kind {kind!r}")


def save(obj: Any, f: _PathLike) -> None:
    """Write obj (a state dict, or dicts/lists/tuples of tensors and plain values) to a file.

    The file is written whole or not at all: a crash mid-save leaves any previous file intact.
    """
    arrays: dict[str, np.ndarray] = {}
    root = _encode(obj, arrays, "")
    meta = json.dumps({"format": _FORMAT, "version": _VERSION, "root": root}, allow_nan=False)
    arrays[_META] = np.frombuffer(meta.encode("utf-8"), dtype=np.uint8)
    if hasattr(f, "write"):
        np.savez(f, **arrays)
        return
    path = os.fspath(f)
    tmp = f"{path}.tmp{os.getpid()}"
    try:
        with open(tmp, "wb") as fh:  # an open file: np.savez would otherwise append ".npz"
            np.savez(fh, **arrays)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def load(f: _PathLike, device: Any = None) -> Any:
    """Read what `save` wrote; tensors go to `device` (the CPU by default).

    A missing file raises FileNotFoundError; a truncated, corrupt or foreign file raises
    ValueError naming it.
    """
    name = getattr(f, "name", None) if hasattr(f, "read") else os.fspath(f)
    name = name if name is not None else "<file object>"
    dev = backend.device(device)
    if not hasattr(f, "read") and not os.path.exists(name):
        raise FileNotFoundError(f"load: no such file: {name!r}")

    def bad(why: str) -> ValueError:
        return ValueError(f"load: {name!r} is not a readable gradtensor file ({why})")

    def read(fh: Any) -> tuple[Any, dict[str, Any]]:
        npz = np.load(fh, allow_pickle=False)
        if not isinstance(npz, np.lib.npyio.NpzFile):
            raise bad("it holds a single .npy array, not a .npz archive")
        with npz:
            if _META not in npz.files:
                raise bad(f"it is an .npz archive without the {_META!r} member that gt.save writes")
            meta = json.loads(bytes(npz[_META]).decode("utf-8"))
            if not isinstance(meta, dict) or meta.get("format") != _FORMAT:
                raise bad("its structure record is not gt.save's")
            if meta.get("version", 0) > _VERSION:
                raise bad(
                    f"it was written in format version {meta['version']}; this gradtensor "
                    f"reads up to version {_VERSION}"
                )
            return meta, {k: npz[k] for k in npz.files if k != _META}

    try:
        if hasattr(f, "read"):
            meta, arrays = read(f)
        else:
            with open(name, "rb") as fh:  # our own handle, closed even when np.load fails
                meta, arrays = read(fh)
    except ValueError as exc:
        if str(exc).startswith("load:"):
            raise
        raise bad(str(exc)) from None
    except (OSError, EOFError, zipfile.BadZipFile, UnicodeDecodeError) as exc:
        if isinstance(exc, FileNotFoundError):
            raise
        raise bad(f"{type(exc).__name__}: {exc}") from None
    try:
        return _decode(meta["root"], arrays, dev)
    except (KeyError, ValueError, TypeError) as exc:
        raise bad(f"its structure record is damaged: {exc}") from None
