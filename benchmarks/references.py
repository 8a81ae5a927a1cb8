"""The implementations compared: gradtensor, and what a user would otherwise write or install.

Every library builds the same three workloads from the same float32 arrays:

- `chain(x0)`: a chain of tiny elementwise ops (multiply, add, tanh), summed, forward + backward;
- `linear(x, w, b, gy, act)`: act(x @ w.T + b) forward, then backward against the cotangent gy;
- `mlp(params, x, t, lr)`: one SGD training step of an MLP (Linear + ReLU layers, softmax
  cross-entropy), params a list of (W (out, in), b).

Each returns an `Impl`: `result()` gives the value and the gradients as NumPy arrays, computed from
the starting weights (the check before timing), and `step()` does the timed unit of work (for the
MLP it updates the weights). A library that cannot run a workload raises `Skip` with the reason.
A library is imported only when it is used; a missing one is reported, never an error.
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from benchmarks.bench_overhead import LINKS, chain, chain_gt, chain_torch

Arrays = list[np.ndarray]


class Skip(Exception):
    """This library cannot run this workload here; the message says why."""


@dataclass
class Impl:
    step: Callable[[], Any]
    result: Callable[[], tuple[Any, Arrays]]


def optional(name: str) -> Any:
    """The module, or raise Skip naming what is missing."""
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        raise Skip(f"{name} is not installed ({exc})") from None
    except Exception as exc:  # a broken install (e.g. a CUDA library that fails to load)
        raise Skip(f"{name} could not be imported ({type(exc).__name__}: {exc})") from None


def to_numpy(a: Any) -> np.ndarray:
    """Any library's array (or scalar) as a NumPy array on the host."""
    if hasattr(a, "detach"):  # torch
        return a.detach().cpu().numpy()
    if hasattr(a, "get") and type(a).__module__.startswith("cupy"):
        return a.get()
    if hasattr(a, "data") and type(a).__module__.startswith("gradtensor"):
        return to_numpy(a.data)
    return np.asarray(a)


def _sizes(params: list[tuple[np.ndarray, np.ndarray]]) -> list[int]:
    return [params[0][0].shape[1]] + [w.shape[0] for w, _ in params]


# -- gradtensor --------------------------------------------------------------------------------


# gradtensor's MLP step uses nn.MLP + optim.SGD when the tree has them; otherwise weights held as
# tensors, F.linear and a hand-written no_grad update. The switch is this one line.
def _use_nn_modules(gt: Any) -> bool:
    return hasattr(gt.nn, "MLP") and hasattr(gt.optim, "SGD")


class GradTensor:
    """gradtensor itself, with its fused kernels on (the default) or off (the plain array path)."""

    def __init__(self, device: str, kernels: bool = True):
        self.gt = importlib.import_module("gradtensor")
        self.F = importlib.import_module("gradtensor.nn.functional")
        self.device, self.kernels = device, kernels
        self.key = "gradtensor" if kernels else "gradtensor-nokernels"
        self.label = "gradtensor" if kernels else "gradtensor, kernels off"

    def _t(self, a: np.ndarray, requires_grad: bool = False) -> Any:
        return self.gt.tensor(a, requires_grad=requires_grad, device=self.device)

    def sync(self) -> None:
        self.gt.cuda.synchronize()

    def chain(self, x0: np.ndarray) -> Impl:
        gt = self.gt
        step = chain_gt(x0) if self.device == "cpu" else None
        x = self._t(x0, requires_grad=True)

        def run() -> Any:
            s = chain(gt.tanh, x)
            s.backward()
            return s

        def result() -> tuple[Any, Arrays]:
            s = run()
            g, x.grad = x.grad, None
            return to_numpy(s), [to_numpy(g)]

        def step_device() -> None:
            run()
            x.grad = None

        return Impl(step or step_device, result)

    def linear(self, x: np.ndarray, w: np.ndarray, b: np.ndarray, gy: np.ndarray, act: str) -> Impl:
        gt, F = self.gt, self.F
        xt, wt, bt = (self._t(a, requires_grad=True) for a in (x, w, b))
        g = self._t(gy)

        def run() -> Any:
            with gt.use_kernels(self.kernels):
                y = F.linear(xt, wt, bt, activation=act)
                y.backward(g)
            return y

        def step() -> None:
            run()
            xt.grad = wt.grad = bt.grad = None

        def result() -> tuple[Any, Arrays]:
            y = run()
            grads = [to_numpy(t.grad) for t in (xt, wt, bt)]
            xt.grad = wt.grad = bt.grad = None
            return to_numpy(y), grads

        return Impl(step, result)

    def mlp(self, params: list, x: np.ndarray, t: np.ndarray, lr: float) -> Impl:
        gt, F = self.gt, self.F
        xt, tt = self._t(x), self.gt.tensor(t, device=self.device)
        if _use_nn_modules(gt):
            model = gt.nn.MLP(_sizes(params), device=self.device)
            layers = [m for m in model.layers if isinstance(m, gt.nn.Linear)]
            for layer, (w, b) in zip(layers, params, strict=True):
                xp = type(layer.weight.data)
                layer.weight.data[...] = w if xp is np.ndarray else self._t(w).data
                layer.bias.data[...] = b if xp is np.ndarray else self._t(b).data
            tensors = [p for layer in layers for p in (layer.weight, layer.bias)]
            opt = gt.optim.SGD(tensors, lr=lr)
            zero_grad, update = opt.zero_grad, opt.step
        else:
            tensors = [self._t(a, requires_grad=True) for wb in params for a in wb]
            pairs = list(zip(tensors[::2], tensors[1::2]))

            def model(h: Any) -> Any:
                for i, (w, b) in enumerate(pairs):
                    h = F.linear(h, w, b, activation="relu" if i < len(pairs) - 1 else None)
                return h

            def zero_grad() -> None:
                for p in tensors:
                    p.grad = None

            def update() -> None:
                with gt.no_grad():
                    for p in tensors:
                        p -= lr * p.grad

        def loss() -> Any:
            with gt.use_kernels(self.kernels):
                out = F.cross_entropy(model(xt), tt)
                out.backward()
            return out

        def step() -> None:
            zero_grad()
            loss()
            update()

        def result() -> tuple[Any, Arrays]:
            zero_grad()
            out = loss()
            grads = [to_numpy(p.grad) for p in tensors]
            zero_grad()
            return to_numpy(out), grads

        return Impl(step, result)


# -- NumPy (or CuPy) by hand: the no-framework floor --------------------------------------------


class ByHand:
    """Forward and backward written out by hand with the array library: no tape, no framework."""

    def __init__(self, device: str):
        self.device = device
        if device == "cpu":
            self.xp, self.key, self.label = np, "numpy", "NumPy by hand"
        else:
            self.xp = optional("cupy")
            self.key, self.label = "cupy", "CuPy by hand"

    def sync(self) -> None:
        if self.device != "cpu":
            self.xp.cuda.Device().synchronize()

    def _a(self, a: np.ndarray) -> Any:
        return a.copy() if self.xp is np else self.xp.asarray(a)

    def _erf(self) -> Callable:
        try:
            if self.xp is np:
                from scipy.special import erf
            else:
                from cupyx.scipy.special import erf
        except ImportError:
            raise Skip("GELU needs erf, which NumPy lacks and SciPy is not installed") from None
        return erf

    def chain(self, x0: np.ndarray) -> Impl:
        xp, x = self.xp, self._a(x0)

        def run() -> tuple[Any, Any]:
            ys, y = [], x
            for _ in range(LINKS):
                y = xp.tanh(y * 1.01 + 0.1)
                ys.append(y)
            s = y.sum()
            g = xp.ones_like(y)
            for y in reversed(ys):  # d tanh(1.01 u + 0.1) / du = 1.01 (1 - y^2)
                g = g * (1 - y * y) * 1.01
            return s, g

        def result() -> tuple[Any, Arrays]:
            s, g = run()
            return to_numpy(s), [to_numpy(g)]

        return Impl(run, result)

    def linear(self, x: np.ndarray, w: np.ndarray, b: np.ndarray, gy: np.ndarray, act: str) -> Impl:
        xp = self.xp
        x, w, b, gy = (self._a(a) for a in (x, w, b, gy))
        if act == "relu":

            def forward_backward(z: Any) -> tuple[Any, Any]:
                return xp.maximum(z, 0), gy * (z > 0)
        elif act == "gelu":
            erf = self._erf()

            def forward_backward(z: Any) -> tuple[Any, Any]:
                cdf = 0.5 * (1 + erf(z * (1 / math.sqrt(2))))
                pdf = xp.exp(-0.5 * z * z) * (1 / math.sqrt(2 * math.pi))
                return z * cdf, gy * (cdf + z * pdf)
        elif act == "tanh":

            def forward_backward(z: Any) -> tuple[Any, Any]:
                y = xp.tanh(z)
                return y, gy * (1 - y * y)
        else:
            raise Skip(f"no hand-written {act}")

        def run() -> tuple[Any, ...]:
            z = x @ w.T
            z += b
            y, gz = forward_backward(z)
            return y, gz @ w, gz.T @ x, gz.sum(axis=0)

        def result() -> tuple[Any, Arrays]:
            y, *grads = run()
            return to_numpy(y), [to_numpy(g) for g in grads]

        return Impl(run, result)

    def mlp(self, params: list, x: np.ndarray, t: np.ndarray, lr: float) -> Impl:
        xp = self.xp
        ws = [(self._a(w), self._a(b)) for w, b in params]
        x, t = self._a(x), self._a(t)
        n, rows = x.shape[0], xp.arange(x.shape[0])

        def run(update: bool) -> tuple[Any, Arrays]:
            hs = [x]  # each layer's input; the ReLU outputs double as their own masks
            for i, (w, b) in enumerate(ws):
                z = hs[-1] @ w.T
                z += b
                if i < len(ws) - 1:
                    xp.maximum(z, 0, out=z)
                hs.append(z)
            logits = hs.pop()
            m = logits.max(axis=1, keepdims=True)
            e = xp.exp(logits - m)
            s = e.sum(axis=1, keepdims=True)
            loss = (xp.log(s[:, 0]) + m[:, 0] - logits[rows, t]).mean()
            g = e / s  # d loss / d logits = (softmax - onehot) / n
            g[rows, t] -= 1
            g /= n
            grads: Arrays = []
            for i in range(len(ws) - 1, -1, -1):
                w, b = ws[i]
                gw, gb = g.T @ hs[i], g.sum(axis=0)
                if i > 0:
                    g = g @ w  # with the weights as they were in the forward pass
                    g *= hs[i] > 0
                if update:
                    w -= lr * gw
                    b -= lr * gb
                else:
                    grads[:0] = [gw, gb]
            return loss, grads

        def result() -> tuple[Any, Arrays]:
            loss, grads = run(update=False)
            return to_numpy(loss), [to_numpy(g) for g in grads]

        return Impl(lambda: run(update=True), result)


# -- PyTorch eager -----------------------------------------------------------------------------


class Torch:
    key, label = "torch", "PyTorch"

    def __init__(self, device: str):
        self.torch = optional("torch")
        self.device = device
        if device == "cuda":
            if not self.torch.cuda.is_available():
                raise Skip("this PyTorch build sees no CUDA GPU")
            # float32 means float32: no TF32 in matmuls or convolutions
            self.torch.backends.cuda.matmul.allow_tf32 = False
            self.torch.backends.cudnn.allow_tf32 = False

    def sync(self) -> None:
        if self.device == "cuda":
            self.torch.cuda.synchronize()

    def _t(self, a: np.ndarray, requires_grad: bool = False) -> Any:
        return self.torch.tensor(a, device=self.device, requires_grad=requires_grad)

    def _act(self, act: str) -> Callable:
        torch, F = self.torch, self.torch.nn.functional
        acts = {
            "identity": lambda z: z,
            "relu": torch.relu,
            "gelu": F.gelu,
            "tanh": torch.tanh,
            "sigmoid": torch.sigmoid,
            "gelu_tanh": lambda z: F.gelu(z, approximate="tanh"),
        }
        return acts[act]

    def chain(self, x0: np.ndarray) -> Impl:
        torch = self.torch
        step = chain_torch(torch, x0) if self.device == "cpu" else None
        x = self._t(x0, requires_grad=True)

        def run() -> Any:
            s = chain(torch.tanh, x)
            s.backward()
            return s

        def result() -> tuple[Any, Arrays]:
            s = run()
            g, x.grad = x.grad, None
            return to_numpy(s), [to_numpy(g)]

        def step_device() -> None:
            run()
            x.grad = None

        return Impl(step or step_device, result)

    def linear(self, x: np.ndarray, w: np.ndarray, b: np.ndarray, gy: np.ndarray, act: str) -> Impl:
        F = self.torch.nn.functional
        f = self._act(act)
        xt, wt, bt = (self._t(a, requires_grad=True) for a in (x, w, b))
        g = self._t(gy)

        def run() -> Any:
            y = f(F.linear(xt, wt, bt))
            y.backward(g)
            return y

        def step() -> None:
            run()
            xt.grad = wt.grad = bt.grad = None

        def result() -> tuple[Any, Arrays]:
            y = run()
            grads = [to_numpy(a.grad) for a in (xt, wt, bt)]
            xt.grad = wt.grad = bt.grad = None
            return to_numpy(y), grads

        return Impl(step, result)

    def mlp(self, params: list, x: np.ndarray, t: np.ndarray, lr: float) -> Impl:
        torch = self.torch
        nn, F = torch.nn, torch.nn.functional
        mods: list[Any] = []
        for i, (w, b) in enumerate(params):
            layer = nn.Linear(w.shape[1], w.shape[0], device=self.device)
            with torch.no_grad():
                layer.weight.copy_(self._t(w))
                layer.bias.copy_(self._t(b))
            mods += [layer, nn.ReLU()] if i < len(params) - 1 else [layer]
        model = nn.Sequential(*mods)
        tensors = [p for m in mods if isinstance(m, nn.Linear) for p in (m.weight, m.bias)]
        opt = torch.optim.SGD(tensors, lr=lr)
        xt, tt = self._t(x), self._t(t)

        def loss() -> Any:
            out = F.cross_entropy(model(xt), tt)
            out.backward()
            return out

        def step() -> None:
            opt.zero_grad()
            loss()
            opt.step()

        def result() -> tuple[Any, Arrays]:
            opt.zero_grad()
            out = loss()
            grads = [to_numpy(p.grad) for p in tensors]
            opt.zero_grad()
            return to_numpy(out), grads

        return Impl(step, result)


# -- JAX ----------------------------------------------------------------------------------------


class Jax:
    """jax.grad / jax.vjp run eagerly (traced on every call), or the same function under jax.jit."""

    def __init__(self, device: str, jit: bool):
        self.jax = optional("jax")
        self.jnp = importlib.import_module("jax.numpy")
        self.jit = jit
        self.key, self.label = ("jax-jit", "JAX jit") if jit else ("jax", "JAX (no jit)")
        platform = "gpu" if device == "cuda" else "cpu"
        try:
            self.dev = self.jax.devices(platform)[0]
        except RuntimeError as exc:
            raise Skip(f"JAX has no {platform} backend here ({exc})") from None
        # float32 matmuls at full precision (on a GPU JAX would otherwise allow TF32)
        self.jax.config.update("jax_default_matmul_precision", "highest")

    def sync(self) -> None:  # every step blocks on its own results
        pass

    def _a(self, a: np.ndarray) -> Any:
        return self.jax.device_put(a, self.dev)

    def _fn(self, f: Callable) -> Callable:
        return self.jax.jit(f) if self.jit else f

    def _act(self, act: str) -> Callable:
        jax, jnp = self.jax, self.jnp
        acts = {
            "identity": lambda z: z,
            "relu": jax.nn.relu,
            "tanh": jnp.tanh,
            "gelu": lambda z: jax.nn.gelu(z, approximate=False),
            "gelu_tanh": lambda z: jax.nn.gelu(z, approximate=True),
            "sigmoid": jax.nn.sigmoid,
        }
        return acts[act]

    def chain(self, x0: np.ndarray) -> Impl:
        jax = self.jax
        fn = self._fn(jax.value_and_grad(lambda x: chain(self.jnp.tanh, x)))
        x = self._a(x0)

        def run() -> Any:
            return jax.block_until_ready(fn(x))

        def result() -> tuple[Any, Arrays]:
            s, g = run()
            return to_numpy(s), [to_numpy(g)]

        return Impl(run, result)

    def linear(self, x: np.ndarray, w: np.ndarray, b: np.ndarray, gy: np.ndarray, act: str) -> Impl:
        jax, f = self.jax, self._act(act)
        args = [self._a(a) for a in (x, w, b, gy)]

        def forward_backward(x: Any, w: Any, b: Any, g: Any) -> tuple:
            y, pullback = jax.vjp(lambda x, w, b: f(x @ w.T + b), x, w, b)
            return (y, *pullback(g))

        fn = self._fn(forward_backward)

        def run() -> Any:
            return jax.block_until_ready(fn(*args))

        def result() -> tuple[Any, Arrays]:
            y, *grads = run()
            return to_numpy(y), [to_numpy(g) for g in grads]

        return Impl(run, result)

    def mlp(self, params: list, x: np.ndarray, t: np.ndarray, lr: float) -> Impl:
        jax, jnp = self.jax, self.jnp

        def loss(ps: list, x: Any, t: Any) -> Any:
            h = x
            for w, b in ps[:-1]:
                h = jax.nn.relu(h @ w.T + b)
            w, b = ps[-1]
            logp = jax.nn.log_softmax(h @ w.T + b, axis=1)
            return -jnp.take_along_axis(logp, t[:, None], axis=1).mean()

        value_and_grad = self._fn(jax.value_and_grad(loss))

        def sgd(ps: list, x: Any, t: Any) -> list:
            grads = jax.grad(loss)(ps, x, t)
            return jax.tree_util.tree_map(lambda p, g: p - lr * g, ps, grads)

        sgd = self._fn(sgd)
        state = {"ps": [(self._a(w), self._a(b)) for w, b in params]}
        x, t = self._a(x), self._a(t)

        def step() -> None:
            state["ps"] = jax.block_until_ready(sgd(state["ps"], x, t))

        def result() -> tuple[Any, Arrays]:
            value, grads = jax.block_until_ready(value_and_grad(state["ps"], x, t))
            return to_numpy(value), [to_numpy(g) for wb in grads for g in wb]

        return Impl(step, result)


# -- HIPS autograd -----------------------------------------------------------------------------


class Autograd:
    """HIPS autograd: a tape over NumPy, the closest relative of gradtensor's design."""

    key, label = "autograd", "HIPS autograd"

    def __init__(self, device: str):
        if device != "cpu":
            raise Skip("HIPS autograd runs on NumPy only (CPU)")
        self.ag = optional("autograd")
        self.anp = importlib.import_module("autograd.numpy")

    def sync(self) -> None:
        pass

    def chain(self, x0: np.ndarray) -> Impl:
        fn = self.ag.value_and_grad(lambda x: chain(self.anp.tanh, x))
        x = x0.copy()

        def result() -> tuple[Any, Arrays]:
            s, g = fn(x)
            return np.asarray(s), [g]

        return Impl(lambda: fn(x), result)

    def linear(self, x: np.ndarray, w: np.ndarray, b: np.ndarray, gy: np.ndarray, act: str) -> Impl:
        anp = self.anp
        if act == "relu":
            f = lambda z: anp.maximum(z, 0)
        elif act == "gelu":
            from autograd.scipy.special import erf

            f = lambda z: z * 0.5 * (1 + erf(z * (1 / math.sqrt(2))))
        elif act == "tanh":
            f = anp.tanh
        else:
            raise Skip(f"no autograd {act}")
        args = tuple(a.copy() for a in (x, w, b))

        def run() -> tuple[Any, Any]:
            vjp, y = self.ag.make_vjp(lambda p: f(p[0] @ p[1].T + p[2]))(args)
            return y, vjp(gy)

        def result() -> tuple[Any, Arrays]:
            y, grads = run()
            return y, list(grads)

        return Impl(run, result)

    def mlp(self, params: list, x: np.ndarray, t: np.ndarray, lr: float) -> Impl:
        anp = self.anp
        from autograd.scipy.special import logsumexp

        rows = np.arange(x.shape[0])

        def loss(ps: list) -> Any:
            h = x
            for w, b in ps[:-1]:
                h = anp.maximum(h @ w.T + b, 0)
            w, b = ps[-1]
            z = h @ w.T + b
            return anp.mean(logsumexp(z, axis=1) - z[rows, t])

        value_and_grad = self.ag.value_and_grad(loss)
        ps = [(w.copy(), b.copy()) for w, b in params]

        def step() -> None:
            _, grads = value_and_grad(ps)
            for (w, b), (gw, gb) in zip(ps, grads, strict=True):
                w -= lr * gw
                b -= lr * gb

        def result() -> tuple[Any, Arrays]:
            value, grads = value_and_grad(ps)
            return np.asarray(value), [g for wb in grads for g in wb]

        return Impl(step, result)


# -- the registry ------------------------------------------------------------------------------

# key -> how to make it on a device; the order is the order of the table (gradtensor first: every
# other implementation is checked against it).
LIBRARIES: dict[str, Callable[[str], Any]] = {
    "gradtensor": lambda dev: GradTensor(dev, kernels=True),
    "gradtensor-nokernels": lambda dev: GradTensor(dev, kernels=False),
    "numpy": lambda dev: ByHand(dev),
    "torch": lambda dev: Torch(dev),
    "jax": lambda dev: Jax(dev, jit=False),
    "jax-jit": lambda dev: Jax(dev, jit=True),
    "autograd": lambda dev: Autograd(dev),
}
LABELS = {
    "gradtensor": "gradtensor",
    "gradtensor-nokernels": "gradtensor, kernels off",
    "numpy": "NumPy by hand",
    "cupy": "CuPy by hand",
    "torch": "PyTorch",
    "jax": "JAX (no jit)",
    "jax-jit": "JAX jit",
    "autograd": "HIPS autograd",
}


def load(keys: list[str], device: str) -> tuple[dict[str, Any], dict[str, str]]:
    """The libraries that can run here, and for the rest the reason they cannot."""
    libs, skipped = {}, {}
    for key in keys:
        try:
            lib = LIBRARIES[key](device)
        except Skip as exc:
            skipped[key] = str(exc)
            continue
        libs[lib.key] = lib
    return libs, skipped


def compare(
    got: tuple[Any, Arrays],
    ref: tuple[Any, Arrays],
    rtol: float = 1e-4,
    names: list[str] | None = None,
) -> float:
    """Raise AssertionError unless value and every gradient match the reference.

    Each array passes when max|got - ref| <= rtol * max|ref|: a scale-aware float32 tolerance
    that summing in another order cannot fail, but a wrong formula, a missing term or a
    transposed gradient does. There is deliberately no absolute floor: the chain's gradient is
    ~1e-10 and must still be checked. Returns the worst relative error.
    """
    (v, gs), (rv, rgs) = got, ref
    if len(gs) != len(rgs):
        raise AssertionError(f"{len(gs)} gradients where gradtensor has {len(rgs)}")
    names = names or [f"grad[{i}]" for i in range(len(rgs))]
    worst = 0.0
    for name, a, r in zip(["value"] + names, [v, *gs], [rv, *rgs], strict=True):
        a, r = np.asarray(a, dtype=np.float64), np.asarray(r, dtype=np.float64)
        if a.shape != r.shape:
            raise AssertionError(f"{name}: shape {a.shape}, gradtensor's is {r.shape}")
        scale = float(np.abs(r).max()) if r.size else 0.0
        err = float(np.abs(a - r).max()) if r.size else 0.0
        if not np.isfinite(err) or err > rtol * scale:
            raise AssertionError(
                f"{name} differs from gradtensor's: max|diff| {err:.3g} against max|ref| "
                f"{scale:.3g} (tolerance {rtol:g} relative)"
            )
        worst = max(worst, err / scale if scale else 0.0)
    return worst
