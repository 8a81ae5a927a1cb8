"""cupy.lib: stride_tricks.as_strided, a view of a device array with given shape and strides."""

from __future__ import annotations

import types
from typing import Any

import numpy as np

from ._core import _function

_as_strided = _function(np.lib.stride_tricks.as_strided, "as_strided")


def as_strided(x: Any, shape: Any = None, strides: Any = None) -> Any:
    """CuPy's signature: strides in bytes; no `subok` or `writeable` (CuPy arrays are writable)."""
    return _as_strided(x, shape, strides)


stride_tricks = types.SimpleNamespace(as_strided=as_strided)
