"""cupyx: the scatter functions (through the deprecated ndarray methods, as in CuPy) and
cupyx.scipy.special (CuPy's own type tables: erf of float16 is float64)."""

from __future__ import annotations

import types
from typing import Any

from ._core import erf, erfc


def scatter_add(a: Any, slices: Any, value: Any) -> None:
    a.scatter_add(slices, value)  # warns: CuPy deprecates this for cupy.add.at


def scatter_max(a: Any, slices: Any, value: Any) -> None:
    a.scatter_max(slices, value)


def scatter_min(a: Any, slices: Any, value: Any) -> None:
    a.scatter_min(slices, value)


special = types.ModuleType("cupyx.scipy.special")
special.erf, special.erfc = erf, erfc
scipy = types.ModuleType("cupyx.scipy")
scipy.special = special
