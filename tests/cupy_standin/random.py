"""cupy.random: the Generator API (default_rng) and the legacy functions, drawn by NumPy."""

from __future__ import annotations

from typing import Any

import numpy as np

from ._core import _PEER, _current_device, _wrap, ndarray


class Generator:
    """CuPy's Generator: its state lives on the device current when it was made."""

    def __init__(self, seed: Any = None):
        self._dev = _current_device()  # CuPy allocates the state on the device here
        self._rng = np.random.default_rng(seed)

    def _out(self, a: Any) -> ndarray:
        dev = _current_device()
        if dev != self._dev:
            raise ValueError(_PEER.format(self._dev, dev))
        return _wrap(a, dev)

    def random(self, size: Any = None, dtype: Any = np.float64, out: Any = None) -> ndarray:
        dt = np.dtype(dtype)
        draw = self._rng.random(size, dtype=np.float64 if dt.char == "d" else np.float32)
        return self._fill(out, self._out(draw).astype(dt, copy=False))

    def standard_normal(self, size: Any = None, dtype: Any = np.float64, out: Any = None):
        dt = np.dtype(dtype)
        if dt.char not in "fd":
            raise TypeError(f"Unsupported dtype {dt.name} for standard_normal")
        return self._fill(out, self._out(self._rng.standard_normal(size, dtype=dt)))

    def uniform(self, low: float = 0.0, high: float = 1.0, size: Any = None,
                dtype: Any = np.float64) -> ndarray:  # fmt: skip
        return self._out(self._rng.uniform(low, high, size).astype(dtype))

    def integers(self, low: int, high: Any = None, size: Any = None, dtype: Any = np.int64,
                 endpoint: bool = False) -> ndarray:  # fmt: skip
        return self._out(np.asarray(self._rng.integers(low, high, size, dtype, endpoint)))

    def standard_exponential(self, size: Any = None, dtype: Any = np.float64, method: str = "inv",
                             out: Any = None) -> ndarray:  # fmt: skip
        return self._fill(out, self._out(self._rng.standard_exponential(size, dtype=dtype)))

    def exponential(self, scale: float = 1.0, size: Any = None) -> ndarray:
        return self._out(self._rng.exponential(scale, size))

    def poisson(self, lam: float = 1.0, size: Any = None) -> ndarray:
        return self._out(self._rng.poisson(lam, size))

    def binomial(self, n: Any, p: Any, size: Any = None) -> ndarray:
        return self._out(self._rng.binomial(n, p, size))

    def gamma(self, shape: Any, scale: float = 1.0, size: Any = None) -> ndarray:
        return self._out(self._rng.gamma(shape, scale, size))

    def beta(self, a: Any, b: Any, size: Any = None, dtype: Any = np.float64) -> ndarray:
        return self._out(self._rng.beta(a, b, size).astype(dtype))

    @staticmethod
    def _fill(out: Any, y: ndarray) -> ndarray:
        if out is None:
            return y
        out[...] = y
        return out


def default_rng(seed: Any = None) -> Generator:
    return seed if isinstance(seed, Generator) else Generator(seed)


# -- the legacy API: one process-wide state ----------------------------------------------------

_state = np.random.RandomState()


def seed(seed: Any = None) -> None:
    _state.seed(seed)


def _draw(a: Any) -> ndarray:
    return _wrap(np.asarray(a), _current_device())


def rand(*size: int) -> ndarray:
    return _draw(_state.random_sample(size))


def randn(*size: int) -> ndarray:
    return _draw(_state.standard_normal(size))


def random_sample(size: Any = None, dtype: Any = float) -> ndarray:
    return _draw(_state.random_sample(size).astype(dtype))


random = random_sample


def randint(low: int, high: Any = None, size: Any = None, dtype: Any = "l") -> ndarray:
    return _draw(_state.randint(low, high, size, dtype))


def normal(loc: float = 0.0, scale: float = 1.0, size: Any = None, dtype: Any = float):
    return _draw(_state.normal(loc, scale, size).astype(dtype))


def uniform(low: float = 0.0, high: float = 1.0, size: Any = None, dtype: Any = float):
    return _draw(_state.uniform(low, high, size).astype(dtype))


def permutation(num: Any) -> ndarray:
    if isinstance(num, ndarray):
        out = num.copy()
        out._a[...] = _state.permutation(out._a)
        return out
    return _draw(_state.permutation(int(num)))


def shuffle(a: ndarray) -> None:
    if not isinstance(a, ndarray):
        raise TypeError("The array must be cupy.ndarray")
    _state.shuffle(a._a)
