"""cupy.linalg: NumPy's linear algebra on the device arrays."""

from __future__ import annotations

import numpy as np

from ._core import _function

_NAMES = "cholesky det eigh eigvalsh inv lstsq matrix_power matrix_rank norm pinv qr slogdet solve"
_NAMES += " svd"
for _name in _NAMES.split():
    globals()[_name] = _function(getattr(np.linalg, _name))
del _name


def _plain(fn):  # CuPy returns plain tuples where NumPy 2 returns named ones (EighResult, ...)
    def call(*args, **kwargs):
        r = fn(*args, **kwargs)
        return tuple(r) if isinstance(r, tuple) else r

    call.__name__ = fn.__name__
    return _function(call)


eigh, qr, slogdet, svd = (_plain(getattr(np.linalg, n)) for n in ("eigh", "qr", "slogdet", "svd"))
