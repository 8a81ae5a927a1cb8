"""The implementations compared, one adapter per library: `chain(x0)` (LINKS links of multiply,
add, tanh on a tiny tensor, summed), `linear(x, w, b, gy, act)` (act(x @ w.T + b), backward
against the cotangent gy) and `mlp(params, x, t, lr)` (an SGD step of an MLP of Linear + ReLU
layers, softmax cross-entropy; params [(W (out, in), b)]); gradtensor and PyTorch also do
`conv(x, w, b, gy, padding)` (relu(conv2d(x, w, b)), backward against gy) and `cnn(params, x, t,
lr, pools)` (an SGD step of a CNN: a 4-D W is a Conv2d padded to keep the size, then ReLU, then a
2x2 MaxPool2d where its entry in pools is true; Flatten; Linear + ReLU layers, the last without
ReLU). All start from the same float32 NumPy arrays and return an Impl: `result()` gives the value
and gradients from the starting weights as NumPy arrays (the check before timing), `step()` does
the timed work. Libraries load on use, or Skip."""

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


def to_numpy(a: Any) -> np.ndarray:  # any library's array (or scalar), on the host
    if hasattr(a, "detach"):  # torch
        return a.detach().cpu().numpy()
    if type(a).__module__.startswith("cupy"):
        return a.get()
    return to_numpy(a.data) if type(a).__module__.startswith("gradtensor") else np.asarray(a)


_host = lambda value, *grads: (to_numpy(value), [to_numpy(g) for g in grads])
# nested lists and tuples of arrays (JAX's and autograd's results) as one flat list
_flat = lambda tree: (
    [a for t in tree for a in _flat(t)] if isinstance(tree, list | tuple) else [tree]
)


def no_conv(self, *args: Any) -> Impl:
    raise Skip("no convolution here: the conv suite compares gradtensor with PyTorch")


class Tape:  # gradtensor and PyTorch: tensors with .grad, .backward() and an SGD optimizer
    scope = staticmethod(contextlib.nullcontext)

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

    def mlp(self, params, x, t, lr, momentum=0.0, built=None):
        model, tensors, opt = built or self.model(params, lr, momentum)
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

    def conv(self, x, w, b, gy, padding):
        leaves = [self.t(a, True) for a in (x, w, b)]
        fwd = lambda: self.relu(self.F.conv2d(*leaves, padding=padding))
        return self._impl(leaves, fwd, self.t(gy))

    def cnn(self, params, x, t, lr, pools):
        nn, layers, convs, prev = self.nn, [], iter(pools), 0
        for w, _ in params:  # the same modules in both libraries
            if w.ndim == 4:
                k = w.shape[2]
                layers += [nn.Conv2d(w.shape[1], w.shape[0], k, padding=k // 2), nn.ReLU()]
                layers += [nn.MaxPool2d(2)] * next(convs)
            else:
                layers += [nn.Flatten()] * (prev == 4)
                layers += [nn.Linear(w.shape[1], w.shape[0]), nn.ReLU()]
            prev = w.ndim
        model = nn.Sequential(*layers[:-1]).to(self.device)
        tensors = [p for m in layers if hasattr(m, "weight") for p in (m.weight, m.bias)]
        for p, a in zip(tensors, [a for wb in params for a in wb]):
            p.data[...] = self.t(a).data  # the same starting weights
        return self.mlp(params, x, t, lr, built=(model, tensors, self.optim.SGD(tensors, lr=lr)))


class GradTensor(Tape):
    """gradtensor itself, with its fused kernels on (the default) or off (the plain array path)."""

    def __init__(self, device: str, kernels: bool = True):
        self.gt, self.F = optional("gradtensor"), optional("gradtensor.nn.functional")
        self.device = device
        self.t = lambda a, grad=False: self.gt.tensor(a, requires_grad=grad, device=device)
        self.tanh, self.scope = self.gt.tanh, lambda: self.gt.use_kernels(kernels)
        self.nn, self.optim, self.relu = self.gt.nn, self.gt.optim, self.gt.relu
        self.layer = lambda x, w, b, act: self.F.linear(x, w, b, activation=act)

    def model(self, params, lr, momentum):
        sizes = [params[0][0].shape[1]] + [w.shape[0] for w, _ in params]
        model = self.gt.nn.MLP(sizes, device=self.device)  # ReLU hidden layers: all Linear
        for layer, (w, b) in zip(model.layers, params):
            layer.weight.data[...], layer.bias.data[...] = self.t(w).data, self.t(b).data
        tensors = [p for layer in model.layers for p in (layer.weight, layer.bias)]
        return model, tensors, self.gt.optim.SGD(tensors, lr=lr, momentum=momentum)


class Compiled(GradTensor):
    """gradtensor with the whole training step (zero_grad, forward, loss, backward, update) under
    gt.compile: recorded at its first call, replayed on arrays after (with `graph`, as a CUDA
    graph)."""

    conv = linear = no_conv

    def __init__(self, device: str, graph: bool = False):
        super().__init__(device)
        self.graph = graph

    def chain(self, x0):
        compiled = self.gt.compile(super().chain(x0).step, cuda_graph=self.graph)

        def result() -> tuple:
            compiled(), compiled()  # recorded twice
            return _host(*compiled())  # replayed

        return Impl(compiled, result)

    def mlp(self, params, x, t, lr, momentum=0.0, built=None):
        eager = super().mlp(params, x, t, lr, momentum, built)
        forward, backward, step, tensors = eager.parts

        def loss_and_grads() -> tuple:
            loss = forward()
            backward(loss)
            return loss, *(p.grad for p in tensors)

        checked = self.gt.compile(loss_and_grads, cuda_graph=self.graph)

        def result() -> tuple:
            checked()  # recorded
            return _host(*checked())  # replayed: what is checked against gradtensor eager

        compiled = self.gt.compile(lambda: (backward(forward()), step()), cuda_graph=self.graph)
        return Impl(compiled, result, (forward, backward, step, tensors))


class Torch(Tape):
    def __init__(self, device: str):
        self.torch = torch = optional("torch")
        self.F, self.tanh, self.device = torch.nn.functional, torch.tanh, device
        self.nn, self.optim, self.relu = torch.nn, torch.optim, torch.relu
        if device == "cuda" and not torch.cuda.is_available():
            raise Skip("this PyTorch build sees no CUDA GPU")
        # float32 means float32: no TF32 in matmuls or convolutions
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
        acts = {"relu": torch.relu, "gelu": self.F.gelu}
        self.t = lambda a, grad=False: torch.tensor(a, device=device, requires_grad=grad)
        self.layer = lambda x, w, b, act: acts[act](self.F.linear(x, w, b))

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


class ByHand:
    """NumPy (or CuPy) by hand, the no-framework floor: forward and backward written out with the
    array library. (The library's own array path is not plain NumPy: its erf is Numba's.)"""

    def __init__(self, device: str):
        self.xp = np if device == "cpu" else optional("cupy")
        self.copy = np.array if device == "cpu" else self.xp.asarray

    conv = cnn = no_conv

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
        if act == "gelu":  # NumPy has no erf
            erf = optional(("cupyx." if xp is not np else "") + "scipy.special")

        def fwd_bwd(z: Any) -> tuple:  # act(z) and gy * act'(z), one array op a step
            if act == "relu":
                return xp.maximum(z, 0), gy * (z > 0)
            cdf = 0.5 * (1 + erf.erf(z / math.sqrt(2)))
            return z * cdf, gy * (cdf + z * xp.exp(-0.5 * z * z) / math.sqrt(2 * math.pi))

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


class Kernels:
    """gradtensor.kernels alone on arrays: the fused layer without the Tensor API around it."""

    def __init__(self, device: str):
        self.k = optional("gradtensor.kernels")
        self.copy = np.array if device == "cpu" else optional("cupy").asarray

    def linear(self, x, w, b, gy, act):
        k, (x, w, b, gy) = self.k, (self.copy(a) for a in (x, w, b, gy))

        def run() -> tuple:
            y, aux = k.linear_act_forward(x, w, b, act)
            return y, *k.linear_act_backward(gy, x, w, aux, act)

        return Impl(run, lambda: _host(*run()))

    def chain(self, *args):
        raise Skip("the kernels alone are a layer and an update, not general ops")

    mlp = conv = cnn = chain


class Functional:
    """JAX, run eagerly (traced on every call) or under jax.jit, and HIPS autograd (a tape over
    NumPy, the closest relative of gradtensor's design): gradients of plain functions."""

    def __init__(self, device: str, name: str):
        if name == "autograd" and device != "cpu":
            raise Skip("HIPS autograd runs on NumPy only (CPU)")
        lib = "autograd" if name == "autograd" else "jax"
        ag, self.np, sp = (optional(m) for m in (lib, f"{lib}.numpy", f"{lib}.scipy.special"))
        self.jit = self.put = self.ready = lambda a: a
        self.vjp = lambda f, *args: ag.make_vjp(lambda a: f(*a))(args)[::-1]
        if lib == "jax":
            try:
                dev = ag.devices("gpu" if device == "cuda" else "cpu")[0]
            except RuntimeError as exc:
                raise Skip(f"JAX has no backend for {device} here ({exc})") from None
            # float32 matmuls at full precision (on a GPU JAX would otherwise allow TF32)
            ag.config.update("jax_default_matmul_precision", "highest")
            self.jit = ag.jit if name == "jax-jit" else self.jit
            self.put = lambda a: ag.device_put(a, dev)
            self.ready, self.vjp = ag.block_until_ready, ag.vjp
        self.grad, self.value_and_grad, self.logsumexp = ag.grad, ag.value_and_grad, sp.logsumexp
        m = self.np
        gelu = lambda z: z * 0.5 * (1 + sp.erf(z * (1 / math.sqrt(2))))
        self.acts = {"relu": lambda z: m.maximum(z, 0), "gelu": gelu}

    conv = cnn = no_conv

    def _impl(self, fn: Callable, *args: Any, step: Callable | None = None) -> Impl:
        fn, args = self.jit(fn), [self.put(a) for a in args]
        run = lambda: self.ready(fn(*args))
        return Impl(step or run, lambda: _host(*_flat(run())))

    def chain(self, x0):
        return self._impl(self.value_and_grad(lambda x: chain(self.np.tanh, x)), x0)

    def linear(self, x, w, b, gy, act):
        def fwd_bwd(x: Any, w: Any, b: Any, g: Any) -> tuple:
            y, pullback = self.vjp(lambda x, w, b: self.acts[act](x @ w.T + b), x, w, b)
            return y, pullback(g)

        return self._impl(fwd_bwd, x, w, b, gy)

    def mlp(self, params, x, t, lr):
        def loss(ps: list, x: Any, t: Any) -> Any:
            for w, b in ps[:-1]:
                x = self.np.maximum(x @ w.T + b, 0)
            z = x @ ps[-1][0].T + ps[-1][1]
            return self.np.mean(self.logsumexp(z, axis=1) - z[self.np.arange(len(t)), t])

        def sgd(ps: list, x: Any, t: Any) -> list:
            grads = self.grad(loss)(ps, x, t)
            return [[w - lr * gw, b - lr * gb] for (w, b), (gw, gb) in zip(ps, grads)]

        sgd, state = self.jit(sgd), [self.put(a) for a in (params, x, t)]

        def step() -> None:
            state[0] = self.ready(sgd(*state))

        return self._impl(self.value_and_grad(loss), params, x, t, step=step)


# key -> (label, maker, its one device or None), in the tables' order; gradtensor first: it is
# what the others are checked against
LIBRARIES: dict[str, tuple[str, Callable[[str], Any], str | None]] = {
    "gradtensor": ("gradtensor", GradTensor, None),
    "gradtensor-nokernels": ("gradtensor, kernels off", lambda d: GradTensor(d, False), None),
    "gradtensor-compile": ("gradtensor, gt.compile", Compiled, None),
    "gradtensor-graph": (
        "gradtensor, gt.compile + CUDA graph",
        lambda d: Compiled(d, True),
        "cuda",
    ),
    "numpy": ("NumPy by hand", ByHand, "cpu"),
    "cupy": ("CuPy by hand", ByHand, "cuda"),
    "torch": ("PyTorch", Torch, None),
    "jax": ("JAX (no jit)", lambda d: Functional(d, "jax"), None),
    "jax-jit": ("JAX jit", lambda d: Functional(d, "jax-jit"), None),
    "autograd": ("HIPS autograd", lambda d: Functional(d, "autograd"), None),
    "kernels": ("gradtensor.kernels alone", Kernels, None),
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
