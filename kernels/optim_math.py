"""The optimizer updates' per-element maths, written once for every backend.

Plain Python on scalars (arithmetic and math.sqrt only): kernels.optim_cpu compiles these with
`numba.njit` and kernels.optim_cuda with `numba.cuda.jit(device=True)`, and each backend's loop
only loads, calls and stores. The order of operations is that of the array-op update in
`gradtensor.optim` (PyTorch's), so the CPU kernels agree with it bit for bit.

Every scalar comes in already in the arrays' dtype, derived coefficients (1 - beta, -lr) included;
state a configuration does not use comes back unchanged, and the caller does not store it.
"""

from __future__ import annotations

import math


def sgd(p, g, b, neg_lr, wd, mom, one_minus_damp, damp, nesterov, first, has_buf):
    """New (param, momentum_buffer); `first` starts the buffer at the gradient (PyTorch)."""
    if wd != 0:
        g = g + p * wd
    if has_buf:
        if first:
            b = g
        elif damp == 0:
            b = b * mom + g
        else:
            b = b * mom + g * one_minus_damp
        g = g + b * mom if nesterov else b
    return p + g * neg_lr, b


def adam(p, g, m, v, vmax, wd, decay, c1, b2, c2, eps, neg_step, bc2_sqrt, decoupled, amsgrad):
    """New (param, exp_avg, exp_avg_sq, max_exp_avg_sq); AdamW decays p when `decoupled`."""
    if wd != 0:
        if decoupled:
            p = p * decay
        else:
            g = g + p * wd
    m = m + (g - m) * c1
    v = v * b2 + g * c2 * g
    most = v
    if amsgrad:
        if v < vmax or vmax != vmax:  # np.maximum: a NaN on either side wins
            most = vmax
    return p + m * neg_step / (math.sqrt(most) / bc2_sqrt + eps), m, v, most


def rmsprop(p, g, sq, ga, b, neg_lr, alpha, c, eps, wd, mom, centered, has_buf):
    """New (param, square_avg, grad_avg, momentum_buffer); c is 1 - alpha."""
    if wd != 0:
        g = g + p * wd
    sq = sq * alpha + g * c * g
    if centered:
        ga = ga + (g - ga) * c
        denom = math.sqrt(sq - ga * ga) + eps
    else:
        denom = math.sqrt(sq) + eps
    if has_buf:
        b = b * mom + g / denom
        p = p + b * neg_lr
    else:
        p = p + g * neg_lr / denom
    return p, sq, ga, b
