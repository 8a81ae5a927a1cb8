"""SGD, Adam, AdamW and RMSprop, with PyTorch's update rules and defaults.

Each `_apply` works on arrays in place, in the order PyTorch's own update does its float32
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


def _grad(p: Tensor) -> Any:
    """The gradient's array; None where a CUDA graph's step reads it from the graph instead."""
    return None if p._grad is None else p._grad.data


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

    def _prepare(self, p: Tensor, group: dict[str, Any], state: dict[str, Any]) -> tuple:
        mom = float(group["momentum"])
        buf, first = None, False
        if mom != 0:
            first = "momentum_buffer" not in state
            if first:  # PyTorch starts the buffer at the first gradient itself
                state["momentum_buffer"] = self._zeros_state(p.data)
            buf = state["momentum_buffer"].data
        h = {
            "lr": float(group["lr"]),
            "weight_decay": float(group["weight_decay"]),
            "momentum": mom,
            "first": first,
            "dampening": float(group["dampening"]),
            "nesterov": bool(group["nesterov"]),
        }
        return [p.data, _grad(p), buf], h

    _kernel = "sgd_update"
    _varying = ("lr",)

    @staticmethod
    def _step_scalars(h: dict[str, Any]) -> dict[str, float]:
        return {"neg_lr": -h["lr"]}

    @staticmethod
    def _apply(
        d: Any, g: Any, b: Any, s: Any, t: Any, h: dict[str, Any], k: dict | None = None
    ) -> None:
        xp = backend.array_module(d)
        k = k or SGD._step_scalars(h)
        if h["weight_decay"] != 0:
            xp.multiply(d, h["weight_decay"], out=s)  # g + wd * p, without touching p.grad
            xp.add(g, s, out=s)
            g = s
        if b is not None:
            mom = h["momentum"]
            if h["first"]:
                b[...] = g
            else:
                xp.multiply(b, mom, out=b)
                if h["dampening"] == 0:
                    xp.add(b, g, out=b)
                else:
                    xp.multiply(g, 1 - h["dampening"], out=t)
                    xp.add(b, t, out=b)
            if h["nesterov"]:
                xp.multiply(b, mom, out=t)
                xp.add(g, t, out=t)
                g = t
            else:
                g = b
        xp.multiply(g, k["neg_lr"], out=s)
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

    def _prepare(self, p: Tensor, group: dict[str, Any], state: dict[str, Any]) -> tuple:
        d = p.data
        if not state:
            state["step"] = 0
            state["exp_avg"] = self._zeros_state(d)
            state["exp_avg_sq"] = self._zeros_state(d)
        if group["amsgrad"] and "max_exp_avg_sq" not in state:
            state["max_exp_avg_sq"] = self._zeros_state(d)
        state["step"] = step = state["step"] + 1
        lr, (b1, b2) = float(group["lr"]), (float(b) for b in group["betas"])
        h = dict(
            lr=lr,
            weight_decay=float(group["weight_decay"]),
            decoupled=self._decoupled,
            beta1=b1,
            beta2=b2,
            eps=float(group["eps"]),
            step_size=lr / (1 - b1**step),
            bias_correction2_sqrt=math.sqrt(1 - b2**step),
        )
        vmax = state["max_exp_avg_sq"].data if group["amsgrad"] else None
        return [d, _grad(p), state["exp_avg"].data, state["exp_avg_sq"].data, vmax], h

    _kernel = "adam_update"
    _varying = ("lr", "step_size", "bias_correction2_sqrt")

    @staticmethod
    def _step_scalars(h: dict[str, Any]) -> dict[str, float]:
        return {
            "decay": 1 - h["lr"] * h["weight_decay"],
            "neg_step": -h["step_size"],
            "bc2_sqrt": h["bias_correction2_sqrt"],
        }

    @staticmethod
    def _apply(
        d: Any, g: Any, m: Any, v: Any, vmax: Any, s: Any, t: Any, h: dict[str, Any],
        k: dict | None = None,
    ) -> None:  # fmt: skip
        xp = backend.array_module(d)
        k = k or Adam._step_scalars(h)
        if h["weight_decay"] != 0:
            if h["decoupled"]:
                xp.multiply(d, k["decay"], out=d)
            else:
                xp.multiply(d, h["weight_decay"], out=s)
                xp.add(g, s, out=s)
                g = s
        xp.subtract(g, m, out=t)  # m += (1 - b1) (g - m): a lerp towards g
        xp.multiply(t, 1 - h["beta1"], out=t)
        xp.add(m, t, out=m)
        xp.multiply(v, h["beta2"], out=v)  # v = b2 v + ((1 - b2) g) g
        xp.multiply(g, 1 - h["beta2"], out=t)
        xp.multiply(t, g, out=t)
        xp.add(v, t, out=v)
        if vmax is not None:
            xp.maximum(vmax, v, out=vmax)
            v = vmax
        if d.dtype == xp.float16:
            # eps (1e-8) is 0 in float16, and 0 / 0 where v is 0: the step is formed in float32,
            # as fused GPU optimizers do, and rounded once.
            den = xp.sqrt(v.astype(xp.float32)) / k["bc2_sqrt"] + h["eps"]
            xp.add(d, (m.astype(xp.float32) * k["neg_step"] / den).astype(d.dtype), out=d)
            return
        xp.sqrt(v, out=t)  # denominator: sqrt(v) / sqrt(1 - b2^t) + eps
        xp.divide(t, k["bc2_sqrt"], out=t)
        xp.add(t, h["eps"], out=t)
        xp.multiply(m, k["neg_step"], out=s)  # g is no longer needed, so s is free
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

    def _prepare(self, p: Tensor, group: dict[str, Any], state: dict[str, Any]) -> tuple:
        d = p.data
        mom, centered = float(group["momentum"]), bool(group["centered"])
        if not state:
            state["step"] = 0
            state["square_avg"] = self._zeros_state(d)
        if mom > 0 and "momentum_buffer" not in state:
            state["momentum_buffer"] = self._zeros_state(d)
        if centered and "grad_avg" not in state:
            state["grad_avg"] = self._zeros_state(d)
        state["step"] += 1
        ga = state["grad_avg"].data if centered else None
        buf = state["momentum_buffer"].data if mom > 0 else None
        h = dict(
            lr=float(group["lr"]),
            alpha=float(group["alpha"]),
            eps=float(group["eps"]),
            weight_decay=float(group["weight_decay"]),
            momentum=mom,
        )
        return [d, _grad(p), state["square_avg"].data, ga, buf], h

    _kernel = "rmsprop_update"
    _varying = ("lr",)
    _step_scalars = staticmethod(SGD._step_scalars)

    @staticmethod
    def _apply(
        d: Any, g: Any, sq: Any, ga: Any, buf: Any, s: Any, t: Any, h: dict[str, Any],
        k: dict | None = None,
    ) -> None:  # fmt: skip
        xp = backend.array_module(d)
        k = k or SGD._step_scalars(h)
        alpha = h["alpha"]
        if h["weight_decay"] != 0:
            xp.multiply(d, h["weight_decay"], out=s)
            xp.add(g, s, out=s)
            g = s
        xp.multiply(sq, alpha, out=sq)  # sq = alpha sq + ((1 - alpha) g) g
        xp.multiply(g, 1 - alpha, out=t)
        xp.multiply(t, g, out=t)
        xp.add(sq, t, out=sq)
        if ga is not None:
            xp.subtract(g, ga, out=t)  # ga += (1 - alpha) (g - ga)
            xp.multiply(t, 1 - alpha, out=t)
            xp.add(ga, t, out=ga)
            xp.multiply(ga, ga, out=t)
            xp.subtract(sq, t, out=t)
            xp.sqrt(t, out=t)
        else:
            xp.sqrt(sq, out=t)
        xp.add(t, h["eps"], out=t)  # t is now the denominator
        if buf is not None:
            xp.multiply(buf, h["momentum"], out=buf)
            xp.divide(g, t, out=s)
            xp.add(buf, s, out=buf)
            xp.multiply(buf, k["neg_lr"], out=s)
        else:
            xp.multiply(g, k["neg_lr"], out=s)
            xp.divide(s, t, out=s)
        xp.add(d, s, out=d)
