"""cupy.linalg: NumPy's linear algebra on the device arrays."""

from __future__ import annotations

import numpy as np

from ._core import _function

_NAMES = "cholesky det eigh eigvalsh inv lstsq matrix_power matrix_rank norm pinv qr slogdet solve"
_NAMES += " svd"
for _name in _NAMES.split():
    globals()[_name] = _function(getattr(np.linalg, _name))
del _name
