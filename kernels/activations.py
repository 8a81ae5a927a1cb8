"""Every fused activation's maths, written once: its value, its derivative, and what the
derivative reads.

An entry is a function of a maths namespace `m` that returns `(value, grad)`:
    value(z) -> y
    grad(g, s) -> g * act'(z), with s what the entry `saves`: the output y ("output": free, the
                  derivative is written in it), the input z ("input"), or nothing (None).
`m` holds the few functions each target has its own best version of: `const` (a constant in
the target's float type), `where(c, a, b)`, `maximum` (NaN passing through), `exp`, `tanh`,
`sigmoid` and `ncdf` (the normal CDF). The same formulas then run as NumPy/CuPy array code (the
activation ops and the array path of `linear`), on Tensors (the derivative, recorded under
create_graph), inside the Numba CPU kernels (kernels.cpu) and the Numba-CUDA kernels
(kernels.cuda), and as the tests' reference.

Adding an activation: one entry here, and its samples in gradtensor.ops.activations.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable
from typing import Any, NamedTuple


class Activation(NamedTuple):
    name: str
    saves: str | None  # "output", "input" or None
    maths: Callable[[Any], tuple[Callable, Callable]]


TABLE: dict[str, Activation] = {}


def activation(saves: str | None) -> Callable:
    def register(maths: Callable) -> Callable:
        TABLE[maths.__name__] = Activation(maths.__name__, saves, maths)
        return maths

    return register


@activation(saves=None)
def identity(m):
    return (lambda z: z), (lambda g, s: g)


@activation(saves="output")
def relu(m):
    zero, where, maximum = m.const(0.0), m.where, m.maximum

    def value(z):
        return maximum(z, zero)

    def grad(g, y):
        return where(y > zero, g, zero)  # a select: an infinite g at a dead unit gives 0

    return value, grad


@activation(saves="input")
def gelu(m):
    half, ncdf, exp = m.const(0.5), m.ncdf, m.exp
    inv_sqrt_2pi = m.const(1 / math.sqrt(2 * math.pi))

    def value(z):
        return z * ncdf(z)

    def grad(g, z):
        return g * (ncdf(z) + z * inv_sqrt_2pi * exp(-half * z * z))

    return value, grad


@activation(saves="input")
def gelu_tanh(m):
    # 0.5 (1 + tanh u) written as sigmoid(2u): no cancellation for negative z.
    one, two, sigmoid = m.const(1.0), m.const(2.0), m.sigmoid
    k, k3 = m.const(math.sqrt(2 / math.pi)), m.const(math.sqrt(2 / math.pi) * 0.044715)
    k33 = m.const(3 * math.sqrt(2 / math.pi) * 0.044715)

    def value(z):
        return z * sigmoid(two * (k * z + k3 * z * z * z))

    def grad(g, z):
        z2 = z * z
        s = sigmoid(two * (k * z + k3 * z2 * z))
        return g * (s + z * two * (k + k33 * z2) * s * (one - s))

    return value, grad


@activation(saves="output")
def sigmoid(m):
    one = m.const(1.0)

    def grad(g, y):
        return g * y * (one - y)

    return m.sigmoid, grad


@activation(saves="output")
def tanh(m):
    one = m.const(1.0)

    def grad(g, y):
        return g * (one - y * y)  # 1 - tanh^2: the output is all it needs

    return m.tanh, grad


@activation(saves="input")
def silu(m):
    one, sigmoid = m.const(1.0), m.sigmoid

    def value(z):
        return z * sigmoid(z)

    def grad(g, z):
        s = sigmoid(z)
        return g * s * (one + z * (one - s))

    return value, grad


ACTIVATIONS: tuple[str, ...] = tuple(TABLE)

# Changes with this file, so that compiled kernels cached on disk are rebuilt when a formula is.
with open(__file__, "rb") as _f:
    DIGEST = hashlib.sha256(_f.read()).hexdigest()[:16]
