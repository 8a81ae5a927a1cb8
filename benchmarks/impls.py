"""The implementations compared: one short adapter per library, for the workloads it can run.

`chain(x0)` (LINKS links of multiply, add, tanh on a tiny tensor, summed), `linear(x, w, b, gy,
act)` (act(x @ w.T + b), backward against the cotangent gy) and `mlp(params, x, t, lr)` (one SGD
step of an MLP of Linear + ReLU layers with softmax cross-entropy; params [(W (out, in), b)]) all
start from the same float32 NumPy arrays and return an `Impl`: `result()` gives the value and the
gradients as NumPy arrays from the starting weights (None: a floor with nothing to check),
`step()` the timed unit of work. A library is imported when used; one that cannot run, `Skip`s.
"""

from __future__ import annotations

import collections
import contextlib
import importlib
import math
from collections.abc import Callable
from typing import Any

import numpy as np

LINKS = 50  # each link is 3 ops: multiply, add, tanh
OPS = 3 * LINKS + 1  # and the final sum
_K, _C = math.sqrt(2 / math.pi), 0.044715  # GELU's tanh approximation
# parts: an MLP step's forward, backward, update and parameters (bench_mlp, gpu_check)
Impl = collections.namedtuple("Impl", "step result parts", defaults=((),))


class Skip(Exception):
    """This library cannot run this workload here; the message says why."""


def chain(tanh: Callable, x: Any) -> Any:
    for _ in range(LINKS):
        x = tanh(x * 1.01 + 0.1)
    return x.sum()


def optional(name: str) -> Any:
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        raise Skip(f"{name} is not installed ({exc})") from None
    except Exception as exc:  # a broken install, e.g. a CUDA library that fails to load
        raise Skip(f"{name} could not be imported ({type(exc).__name__}: {exc})") from None


def to_numpy(a: Any) -> np.ndarray:
    """Any library's array (or scalar) as a NumPy array on the host."""
    if hasattr(a, "detach"):  # torch
        return a.detach().cpu().numpy()
    if type(a).__module__.startswith("cupy"):
        return a.get()
    return to_numpy(a.data) if type(a).__module__.startswith("gradtensor") else np.asarray(a)


_host = lambda value, *grads: (to_numpy(value), [to_numpy(g) for g in grads])


class Tape:  # gradtensor and PyTorch: tensors with .grad, .backward() and an SGD optimizer
    def scope(self) -> Any:
        return contextlib.nullcontext()

    def _impl(self, leaves: list, forward: Callable, cotangent: Any = None) -> Impl:
        def run() -> tuple:
            with self.scope():
                y = forward()
                y.backward(cotangent)
            grads = [p.grad for p in leaves]
            for p in leaves:
                p.grad = None
            return y, *grads

        return Impl(run, lambda: _host(*run()))

    def chain(self, x0):
        x = self.t(x0, True)
        return self._impl([x], lambda: chain(self.tanh, x))

    def linear(self, x, w, b, gy, act):
        leaves = [self.t(a, True) for a in (x, w, b)]
        return self._impl(leaves, lambda: self.layer(*leaves, act), self.t(gy))

    def mlp(self, params, x, t, lr, momentum=0.0):
        model, tensors, opt = self.model(params, lr, momentum)
        xt, tt = self.t(x), self.t(t)

        def forward() -> Any:
            opt.zero_grad()
            with self.scope():
                return self.F.cross_entropy(model(xt), tt)

        def backward(loss: Any) -> None:
            with self.scope():
                loss.backward()

        def result() -> Any:
            loss = forward()
            backward(loss)
            return _host(loss, *(p.grad for p in tensors))

        parts = (forward, backward, opt.step, tensors)
        return Impl(lambda: (backward(forward()), opt.step()), result, parts)


class GradTensor(Tape):
    """gradtensor itself, with its fused kernels on (the default) or off (the plain array path)."""

    def __init__(self, device: str, kernels: bool = True):
        self.gt, self.F = optional("gradtensor"), optional("gradtensor.nn.functional")
        self.tanh, self.device, self.kernels = self.gt.tanh, device, kernels

    def t(self, a, requires_grad=False):
        return self.gt.tensor(a, requires_grad=requires_grad, device=self.device)

    def scope(self):
        return self.gt.use_kernels(self.kernels)

    def layer(self, x, w, b, act):
        return self.F.linear(x, w, b, activation=act)

    def model(self, params, lr, momentum):
        sizes = [params[0][0].shape[1]] + [w.shape[0] for w, _ in params]
        model = self.gt.nn.MLP(sizes, device=self.device)  # ReLU hidden layers: all Linear
        for layer, (w, b) in zip(model.layers, params):
            layer.weight.data[...], layer.bias.data[...] = self.t(w).data, self.t(b).data
        tensors = [p for layer in model.layers for p in (layer.weight, layer.bias)]
        return model, tensors, self.gt.optim.SGD(tensors, lr=lr, momentum=momentum)


class Torch(Tape):
    def __init__(self, device: str):
        self.torch = torch = optional("torch")
        self.F, self.tanh, self.device = torch.nn.functional, torch.tanh, device
        if device == "cuda" and not torch.cuda.is_available():
            raise Skip("this PyTorch build sees no CUDA GPU")
        # float32 means float32: no TF32 in matmuls or convolutions
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
        gelu_tanh = lambda z: self.F.gelu(z, approximate="tanh")
        self.acts = dict(identity=lambda z: z, relu=torch.relu, gelu=self.F.gelu,
                         gelu_tanh=gelu_tanh, sigmoid=torch.sigmoid, tanh=torch.tanh)  # fmt: skip

    def t(self, a, requires_grad=False):
        return self.torch.tensor(a, device=self.device, requires_grad=requires_grad)

    def layer(self, x, w, b, act):
        return self.acts[act](self.F.linear(x, w, b))

    def model(self, params, lr, momentum):
        nn = self.torch.nn
        layers = [nn.Linear(w.shape[1], w.shape[0], device=self.device) for w, _ in params]
        with self.torch.no_grad():
            for layer, (w, b) in zip(layers, params):
                layer.weight.copy_(self.t(w))
                layer.bias.copy_(self.t(b))
        model = nn.Sequential(*[m for layer in layers for m in (layer, nn.ReLU())][:-1])
        tensors = [p for layer in layers for p in (layer.weight, layer.bias)]
        return model, tensors, self.torch.optim.SGD(tensors, lr=lr, momentum=momentum)


class Kernels:
    """gradtensor's fused kernels on plain arrays, without the Tensor API. `path` forces the GPU
    kernels' path A or B, or "gemms" runs the layer's three GEMMs alone (large layers' floor);
    numpy_blas puts the CPU kernels' GEMMs on NumPy's BLAS: what fusion alone buys."""

    def __init__(self, device: str, path: str | None = None, numpy_blas: bool = False):
        self.xp = np if device == "cpu" else optional("cupy")
        self.mod = optional("gradtensor.kernels" + ("" if path is None else ".cuda"))
        self.path, self.blas = path, numpy_blas and optional("gradtensor.kernels.blas")
        if self.blas and self.blas.NAME == "numpy":
            raise Skip("the kernels' GEMMs are NumPy's already")

    def linear(self, x, w, b, gy, act):
        x, w, b, gy = (self.xp.asarray(a) for a in (x, w, b, gy))
        kw = {"path": self.path} if self.path else {}
        if self.path == "gemms":
            return Impl(lambda: (x @ w.T, gy @ w, gy.T @ x), lambda: None)

        def run() -> tuple:
            prev = self.blas and self.blas.select("numpy")
            try:
                y, aux = self.mod.linear_act_forward(x, w, b, act, **kw)
                return y, *self.mod.linear_act_backward(gy, x, w, aux, act, **kw)
            finally:
                if prev:
                    self.blas.select(prev)

        return Impl(run, lambda: _host(*run()))


class ByHand:
    """NumPy (or CuPy) by hand, the no-framework floor: forward and backward written out with the
    array library. (The library's own array path is not plain NumPy: its erf is Numba's.)"""

    def __init__(self, device: str):
        self.xp = np if device == "cpu" else optional("cupy")
        self.copy = np.array if device == "cpu" else self.xp.asarray

    def chain(self, x0):
        xp, x = self.xp, self.copy(x0)

        def run() -> tuple:
            ys = [x]
            for _ in range(LINKS):
                ys.append(xp.tanh(ys[-1] * 1.01 + 0.1))
            g = xp.ones_like(x)
            for y in ys[:0:-1]:  # d tanh(1.01 u + 0.1) / du = 1.01 (1 - y^2)
                g = g * (1 - y * y) * 1.01
            return ys[-1].sum(), g

        return Impl(run, lambda: _host(*run()))

    def linear(self, x, w, b, gy, act):
        xp, (x, w, b, gy) = self.xp, (self.copy(a) for a in (x, w, b, gy))
        if act == "gelu":
            try:
                erf = importlib.import_module(("cupyx." if xp is not np else "") + "scipy.special")
            except ImportError:
                raise Skip("GELU needs erf, which NumPy lacks and SciPy is not installed") from None

        def fwd_bwd(z: Any) -> tuple:  # act(z) and gy * act'(z), one array op a step
            if act in ("identity", "relu"):
                return (z, gy) if act == "identity" else (xp.maximum(z, 0), gy * (z > 0))
            if act in ("tanh", "sigmoid"):
                y = xp.tanh(z) if act == "tanh" else 1 / (1 + xp.exp(-z))
                return y, gy * ((1 - y * y) if act == "tanh" else y * (1 - y))
            if act == "gelu":
                cdf = 0.5 * (1 + erf.erf(z / math.sqrt(2)))
                return z * cdf, gy * (cdf + z * xp.exp(-0.5 * z * z) / math.sqrt(2 * math.pi))
            t = xp.tanh(_K * (z + _C * z * z * z))
            du = 0.5 * (1 + t) + 0.5 * z * (1 - t * t) * _K * (1 + 3 * _C * z * z)
            return 0.5 * z * (1 + t), gy * du

        def run() -> tuple:
            z = x @ w.T
            z += b
            y, gz = fwd_bwd(z)
            return y, gz @ w, gz.T @ x, gz.sum(axis=0)

        return Impl(run, lambda: _host(*run()))

    def mlp(self, params, x, t, lr):
        xp, ws = self.xp, [(self.copy(w), self.copy(b)) for w, b in params]
        x, t, rows = self.copy(x), self.copy(t), xp.arange(x.shape[0])

        def run(update: bool) -> tuple:
            hs = [x]  # each layer's input; the ReLU outputs double as their own masks
            for i, (w, b) in enumerate(ws):
                z = hs[-1] @ w.T
                z += b
                hs.append(xp.maximum(z, 0, out=z) if i < len(ws) - 1 else z)
            logits = hs.pop()
            m = logits.max(axis=1, keepdims=True)
            e = xp.exp(logits - m)
            s = e.sum(axis=1, keepdims=True)
            loss = (xp.log(s[:, 0]) + m[:, 0] - logits[rows, t]).mean()
            g = e / s  # d loss / d logits = (softmax - onehot) / n
            g[rows, t] -= 1
            g /= len(rows)
            grads = []
            for i in range(len(ws) - 1, -1, -1):
                (w, b), gw, gb = ws[i], g.T @ hs[i], g.sum(axis=0)
                if i > 0:
                    g = g @ w  # with the weights as they were in the forward pass
                    g *= hs[i] > 0
                if update:
                    w -= lr * gw
                    b -= lr * gb
                grads[:0] = [gw, gb]
            return loss, *grads

        return Impl(lambda: run(True), lambda: _host(*run(False)))


class Jax:
    """jax.grad / jax.vjp run eagerly (traced on every call), or the same function under jax.jit."""

    def __init__(self, device: str, jit: bool):
        self.jax, self.jnp = optional("jax"), optional("jax.numpy")
        self.jit = self.jax.jit if jit else (lambda f: f)
        try:
            self.dev = self.jax.devices("gpu" if device == "cuda" else "cpu")[0]
        except RuntimeError as exc:
            raise Skip(f"JAX has no backend for {device} here ({exc})") from None
        # float32 matmuls at full precision (on a GPU JAX would otherwise allow TF32)
        self.jax.config.update("jax_default_matmul_precision", "highest")
        nn = self.jax.nn
        self.acts = dict(identity=lambda z: z, relu=nn.relu, tanh=self.jnp.tanh,
                         gelu=lambda z: nn.gelu(z, approximate=False), sigmoid=nn.sigmoid,
                         gelu_tanh=lambda z: nn.gelu(z, approximate=True))  # fmt: skip

    def _impl(self, fn: Callable, *args: Any, step: Callable | None = None) -> Impl:
        fn, args = self.jit(fn), [self.jax.device_put(a, self.dev) for a in args]
        run = lambda: self.jax.block_until_ready(fn(*args))
        return Impl(step or run, lambda: _host(*self.jax.tree.leaves(run())))

    def chain(self, x0):
        return self._impl(self.jax.value_and_grad(lambda x: chain(self.jnp.tanh, x)), x0)

    def linear(self, x, w, b, gy, act):
        def fwd_bwd(x: Any, w: Any, b: Any, g: Any) -> tuple:
            y, pullback = self.jax.vjp(lambda x, w, b: self.acts[act](x @ w.T + b), x, w, b)
            return y, pullback(g)

        return self._impl(fwd_bwd, x, w, b, gy)

    def mlp(self, params, x, t, lr):
        jax = self.jax

        def loss(ps: list, x: Any, t: Any) -> Any:
            for w, b in ps[:-1]:
                x = jax.nn.relu(x @ w.T + b)
            logp = jax.nn.log_softmax(x @ ps[-1][0].T + ps[-1][1], axis=1)
            return -self.jnp.take_along_axis(logp, t[:, None], axis=1).mean()

        sgd = lambda ps, x, t: jax.tree.map(lambda p, g: p - lr * g, ps, jax.grad(loss)(ps, x, t))
        sgd, state = self.jit(sgd), [jax.device_put(a, self.dev) for a in (params, x, t)]

        def step() -> None:
            state[0] = jax.block_until_ready(sgd(*state))

        return self._impl(jax.value_and_grad(loss), params, x, t, step=step)


class Autograd:
    """HIPS autograd: a tape over NumPy, the closest relative of gradtensor's design."""

    def __init__(self, device: str):
        if device != "cpu":
            raise Skip("HIPS autograd runs on NumPy only (CPU)")
        self.ag, self.np = optional("autograd"), optional("autograd.numpy")
        self.sp, anp = optional("autograd.scipy.special"), self.np
        self.acts = dict(identity=lambda z: z, relu=lambda z: anp.maximum(z, 0), tanh=anp.tanh,
                         sigmoid=lambda z: 1 / (1 + anp.exp(-z)),
                         gelu=lambda z: z * 0.5 * (1 + self.sp.erf(z * (1 / math.sqrt(2)))),
                         gelu_tanh=lambda z: 0.5 * z * (1 + anp.tanh(_K * (z + _C * z**3))),
                         )  # fmt: skip

    def chain(self, x0):
        fn, x = self.ag.value_and_grad(lambda x: chain(self.np.tanh, x)), x0.copy()
        return Impl(lambda: fn(x), lambda: _host(*fn(x)))

    def linear(self, x, w, b, gy, act):
        args = (x.copy(), w.copy(), b.copy())

        def run() -> tuple:
            vjp, y = self.ag.make_vjp(lambda p: self.acts[act](p[0] @ p[1].T + p[2]))(args)
            return y, *vjp(gy)

        return Impl(run, lambda: _host(*run()))

    def mlp(self, params, x, t, lr):
        rows, ps = np.arange(x.shape[0]), [(w.copy(), b.copy()) for w, b in params]

        def loss(ps: list) -> Any:
            h = x
            for w, b in ps[:-1]:
                h = self.np.maximum(h @ w.T + b, 0)
            z = h @ ps[-1][0].T + ps[-1][1]
            return self.np.mean(self.sp.logsumexp(z, axis=1) - z[rows, t])

        value_and_grad = self.ag.value_and_grad(loss)

        def step() -> None:
            for (w, b), (gw, gb) in zip(ps, value_and_grad(ps)[1]):
                w -= lr * gw
                b -= lr * gb

        flat = lambda v, gs: _host(v, *(g for wb in gs for g in wb))
        return Impl(step, lambda: flat(*value_and_grad(ps)))


# key -> (label, maker, the one device it runs on or None), in the tables' order; gradtensor
# comes first: every other implementation is checked against it.
LIBRARIES: dict[str, tuple[str, Callable[[str], Any], str | None]] = {
    "gradtensor": ("gradtensor", GradTensor, None),
    "gradtensor-nokernels": ("gradtensor, kernels off", lambda d: GradTensor(d, False), None),
    "kernels": ("kernels alone", Kernels, None),
    "kernels-numpy-blas": ("kernels on NumPy's BLAS", lambda d: Kernels(d, numpy_blas=True), "cpu"),
    "kernels-a": ("kernels, path A", lambda d: Kernels(d, "a"), "cuda"),
    "kernels-b": ("kernels, path B", lambda d: Kernels(d, "b"), "cuda"),
    "numpy": ("NumPy by hand", ByHand, "cpu"),
    "cupy": ("CuPy by hand", ByHand, "cuda"),
    "torch": ("PyTorch", Torch, None),
    "jax": ("JAX (no jit)", lambda d: Jax(d, jit=False), None),
    "jax-jit": ("JAX jit", lambda d: Jax(d, jit=True), None),
    "autograd": ("HIPS autograd", Autograd, None),
    "gemms": ("GEMMs alone", lambda d: Kernels(d, "gemms"), "cuda"),
}
LABELS = {k: v[0] for k, v in LIBRARIES.items()}


def load(keys: list[str], device: str) -> tuple[dict[str, Any], dict[str, str]]:
    """The libraries that can run here, and for the rest the reason they cannot. "numpy" means
    "cupy" on a GPU; another key for the other device is left out without a word."""
    libs, skipped = {}, {}
    for key in dict.fromkeys("cupy" if k == "numpy" and device != "cpu" else k for k in keys):
        try:
            if LIBRARIES[key][2] in (None, device):
                libs[key] = LIBRARIES[key][1](device)
        except Skip as exc:
            skipped[key] = str(exc)
    return libs, skipped


def compare(got: tuple, ref: tuple, names: list[str], rtol: float = 1e-4) -> dict[str, float]:
    """Each array's error relative to gradtensor's largest magnitude; AssertionError above rtol.

    That scale-aware float32 tolerance passes any summation order but not a wrong formula or a
    transposed gradient; it has no absolute floor, since the chain's gradient is ~1e-10."""
    (v, gs), (rv, rgs) = got, ref
    if len(gs) != len(rgs):
        raise AssertionError(f"{len(gs)} gradients where gradtensor has {len(rgs)}")
    errs = {}
    for name, a, r in zip(["value", *names], [v, *gs], [rv, *rgs]):
        a, r = np.asarray(a, dtype=np.float64), np.asarray(r, dtype=np.float64)
        if a.shape != r.shape:
            raise AssertionError(f"{name}: shape {a.shape}, gradtensor's is {r.shape}")
        scale, err = (float(np.abs(d).max()) if r.size else 0.0 for d in (r, a - r))
        if not err <= rtol * scale:  # NaN fails too
            raise AssertionError(f"{name} differs from gradtensor's: max|diff| {err:.3g} against "
                                 f"max|ref| {scale:.3g} (tolerance {rtol:g} relative)")  # fmt: skip
        errs[name] = err / scale if scale else 0.0
    return errs
