"""SGD, Adam, AdamW and RMSprop, with PyTorch's update rules and defaults.

Each `_update` works on arrays in place, in the order PyTorch's own update does its float32
arithmetic, so the two agree to float32 rounding step after step. Hyperparameters are read from
the group on every step, which is how learning-rate schedulers reach them.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from .. import backend
from ..tensor import Tensor
from .optimizer import Optimizer, required


def _check(name: str, group: dict[str, Any], key: str, ok: bool, what: str) -> None:
    if not ok:
        raise ValueError(f"{name}: {key} must be {what}, got {group[key]!r}")


class SGD(Optimizer):
    """Stochastic gradient descent, with optional (Nesterov) momentum and L2 weight decay.

    v = momentum * v + (1 - dampening) * g;  p -= lr * (g + momentum * v if nesterov else v)

    >>> opt = gt.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    """

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = required,
        momentum: float = 0.0,
        dampening: float = 0.0,
        nesterov: bool = False,
        weight_decay: float = 0.0,
    ):
        defaults = dict(
            lr=lr,
            momentum=momentum,
            dampening=dampening,
            nesterov=nesterov,
            weight_decay=weight_decay,
        )
        super().__init__(params, defaults)

    def _check_hyper(self, g: dict[str, Any]) -> None:
        _check("SGD", g, "lr", g["lr"] >= 0, "non-negative")
        _check("SGD", g, "momentum", g["momentum"] >= 0, "non-negative")
        _check("SGD", g, "weight_decay", g["weight_decay"] >= 0, "non-negative")
        if g["nesterov"] and (g["momentum"] <= 0 or g["dampening"] != 0):
            raise ValueError("SGD: Nesterov momentum needs momentum > 0 and dampening = 0")

    def _update(
        self, d: Any, g: Any, group: dict[str, Any], state: dict[str, Any], p: Tensor
    ) -> None:
        xp = backend.array_module(d)
        lr, mom, wd = float(group["lr"]), float(group["momentum"]), float(group["weight_decay"])
        s, t = self._buffers(p, 2)
        if wd != 0:
            xp.multiply(d, wd, out=s)  # g + wd * p, without touching p.grad
            xp.add(g, s, out=s)
            g = s
        if mom != 0:
            buf = state.get("momentum_buffer")
            if buf is None:
                buf = state["momentum_buffer"] = Tensor._make(g.copy())
            else:
                b = buf.data
                xp.multiply(b, mom, out=b)
                damp = float(group["dampening"])
                if damp == 0:
                    xp.add(b, g, out=b)
                else:
                    xp.multiply(g, 1 - damp, out=t)
                    xp.add(b, t, out=b)
            if group["nesterov"]:
                xp.multiply(buf.data, mom, out=t)
                xp.add(g, t, out=t)
                g = t
            else:
                g = buf.data
        xp.multiply(g, -lr, out=s)
        xp.add(d, s, out=d)


class Adam(Optimizer):
    """Adam: per-coordinate steps from bias-corrected running means of g and g^2.

    m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2;
    p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)
    weight_decay adds wd * p to g (L2); AdamW decays p itself instead. amsgrad uses max(v) so far.

    >>> opt = gt.optim.Adam(model.parameters(), lr=1e-3)
    """

    _decoupled = False

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        amsgrad: bool = False,
    ):
        defaults = dict(
            lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay, amsgrad=amsgrad
        )
        super().__init__(params, defaults)

    def _check_hyper(self, g: dict[str, Any]) -> None:
        name = type(self).__name__
        _check(name, g, "lr", g["lr"] >= 0, "non-negative")
        _check(name, g, "eps", g["eps"] >= 0, "non-negative")
        _check(name, g, "weight_decay", g["weight_decay"] >= 0, "non-negative")
        b = g["betas"]
        _check(
            name, g, "betas", len(b) == 2 and all(0 <= x < 1 for x in b), "two numbers in [0, 1)"
        )

    def _update(
        self, d: Any, g: Any, group: dict[str, Any], state: dict[str, Any], p: Tensor
    ) -> None:
        xp = backend.array_module(d)
        lr, eps, wd = float(group["lr"]), float(group["eps"]), float(group["weight_decay"])
        b1, b2 = (float(b) for b in group["betas"])
        amsgrad = group["amsgrad"]
        if not state:
            state["step"] = 0
            state["exp_avg"] = self._zeros_state(d)
            state["exp_avg_sq"] = self._zeros_state(d)
            if amsgrad:
                state["max_exp_avg_sq"] = self._zeros_state(d)
        s, t = self._buffers(p, 2)
        state["step"] = step = state["step"] + 1
        if wd != 0:
            if self._decoupled:
                xp.multiply(d, 1 - lr * wd, out=d)
            else:
                xp.multiply(d, wd, out=s)
                xp.add(g, s, out=s)
                g = s
        m, v = state["exp_avg"].data, state["exp_avg_sq"].data
        xp.subtract(g, m, out=t)  # m += (1 - b1) (g - m): a lerp towards g
        xp.multiply(t, 1 - b1, out=t)
        xp.add(m, t, out=m)
        xp.multiply(v, b2, out=v)  # v = b2 v + ((1 - b2) g) g
        xp.multiply(g, 1 - b2, out=t)
        xp.multiply(t, g, out=t)
        xp.add(v, t, out=v)
        if amsgrad:
            vmax = state["max_exp_avg_sq"].data
            xp.maximum(vmax, v, out=vmax)
            v = vmax
        step_size = lr / (1 - b1**step)
        xp.sqrt(v, out=t)  # denominator: sqrt(v) / sqrt(1 - b2^t) + eps
        xp.divide(t, math.sqrt(1 - b2**step), out=t)
        xp.add(t, eps, out=t)
        xp.multiply(m, -step_size, out=s)  # g is no longer needed, so s is free
        xp.divide(s, t, out=s)
        xp.add(d, s, out=d)


class AdamW(Adam):
    """Adam with decoupled weight decay: p *= 1 - lr * weight_decay before the Adam step.

    >>> opt = gt.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=1e-2)
    """

    _decoupled = True

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 1e-2,
        amsgrad: bool = False,
    ):
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad)


class RMSprop(Optimizer):
    """RMSprop: divide g by a running root mean square of recent gradients.

    s = alpha s + (1 - alpha) g^2;  p -= lr * g / (sqrt(s - mean(g)^2 if centered else s) + eps)

    >>> opt = gt.optim.RMSprop(model.parameters(), lr=1e-2)
    """

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1e-2,
        alpha: float = 0.99,
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        momentum: float = 0.0,
        centered: bool = False,
    ):
        defaults = dict(
            lr=lr,
            alpha=alpha,
            eps=eps,
            weight_decay=weight_decay,
            momentum=momentum,
            centered=centered,
        )
        super().__init__(params, defaults)

    def _check_hyper(self, g: dict[str, Any]) -> None:
        for key in ("lr", "eps", "weight_decay", "momentum", "alpha"):
            _check("RMSprop", g, key, g[key] >= 0, "non-negative")

    def _update(
        self, d: Any, g: Any, group: dict[str, Any], state: dict[str, Any], p: Tensor
    ) -> None:
        xp = backend.array_module(d)
        lr, alpha, eps = float(group["lr"]), float(group["alpha"]), float(group["eps"])
        wd, mom = float(group["weight_decay"]), float(group["momentum"])
        if not state:
            state["step"] = 0
            state["square_avg"] = self._zeros_state(d)
            if mom > 0:
                state["momentum_buffer"] = self._zeros_state(d)
            if group["centered"]:
                state["grad_avg"] = self._zeros_state(d)
        state["step"] += 1
        s, t = self._buffers(p, 2)
        if wd != 0:
            xp.multiply(d, wd, out=s)
            xp.add(g, s, out=s)
            g = s
        sq = state["square_avg"].data
        xp.multiply(sq, alpha, out=sq)  # sq = alpha sq + ((1 - alpha) g) g
        xp.multiply(g, 1 - alpha, out=t)
        xp.multiply(t, g, out=t)
        xp.add(sq, t, out=sq)
        if group["centered"]:
            ga = state["grad_avg"].data
            xp.subtract(g, ga, out=t)  # ga += (1 - alpha) (g - ga)
            xp.multiply(t, 1 - alpha, out=t)
            xp.add(ga, t, out=ga)
            xp.multiply(ga, ga, out=t)
            xp.subtract(sq, t, out=t)
            xp.sqrt(t, out=t)
        else:
            xp.sqrt(sq, out=t)
        xp.add(t, eps, out=t)  # t is now the denominator
        if mom > 0:
            buf = state["momentum_buffer"].data
            xp.multiply(buf, mom, out=buf)
            xp.divide(g, t, out=s)
            xp.add(buf, s, out=buf)
            xp.multiply(buf, -lr, out=s)
        else:
            xp.multiply(g, -lr, out=s)
            xp.divide(s, t, out=s)
        xp.add(d, s, out=d)
