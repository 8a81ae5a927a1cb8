"""cupy.ElementwiseKernel, for the subset of CUDA C++ that gradtensor's fused kernels are written
in (kernels.fuse_cuda): statements `type name = expression;` and `name = expression;` over the
parameters and earlier names, with + - * /, unary minus, parentheses, fabs() and sqrt(), on
float32 and float64 parameters. Anything else is refused, so a kernel outside the subset fails
here as it would otherwise pass untested. Each step is rounded in its declared type, as a GPU
rounds it without contraction (`--fmad=false`); a call broadcasts its arguments as CuPy does and
writes the output arrays it is given (or new ones), on the current device."""

from __future__ import annotations

import re
from typing import Any

import numpy as np

from ._core import _current_device, _device_op, _operand, _wrap, ndarray

_TYPES = {"float32": np.float32, "float64": np.float64}
_CTYPES = {"float": np.float32, "double": np.float64}
_STATEMENT = re.compile(r"^(?:(float|double) )?([A-Za-z_]\w*) = (.+)$")
_TOKEN = re.compile(r"\s*(?:([A-Za-z_]\w*)|([-+*/(),]))")


def _params(text: str, what: str) -> list[tuple[str, Any]]:
    out = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        kind, _, name = part.partition(" ")
        if kind not in _TYPES or not name.isidentifier():
            raise NotImplementedError(f"the CuPy stand-in's ElementwiseKernel: {what} {part!r}")
        out.append((name, _TYPES[kind]))
    return out


class ElementwiseKernel:
    def __init__(self, in_params: str, out_params: str, operation: str, name: str = "kernel",
                 reduce_dims: bool = True, preamble: str = "", no_return: bool = False,
                 return_tuple: bool = False, options: tuple = ()):  # fmt: skip
        if preamble or no_return:
            raise NotImplementedError("the CuPy stand-in's ElementwiseKernel: preamble, no_return")
        self.name, self.options, self.return_tuple = name, tuple(options), return_tuple
        self.ins, self.outs = _params(in_params, "input"), _params(out_params, "output")
        known = {n: t for n, t in self.ins + self.outs}
        self.steps = []  # (name, its type, a Python expression over the names)
        for statement in filter(None, (s.strip() for s in operation.split(";"))):
            m = _STATEMENT.match(statement)
            if m is None:
                raise NotImplementedError(f"the CuPy stand-in's ElementwiseKernel: {statement!r}")
            ctype, target, expr = m.groups()
            if ctype is not None:
                known[target] = _CTYPES[ctype]
            elif target not in dict(self.outs):
                raise NotImplementedError(f"{name}: {target} is neither declared nor an output")
            self.steps.append((target, known[target], self._python(expr, known)))

    def _python(self, expr: str, known: dict) -> str:
        out, at = [], 0
        while at < len(expr.rstrip()):
            m = _TOKEN.match(expr, at)
            if m is None:
                raise NotImplementedError(f"the CuPy stand-in's ElementwiseKernel: {expr!r}")
            word, sign = m.groups()
            if word in ("fabs", "sqrt"):
                out.append("_abs" if word == "fabs" else "_sqrt")
            elif word is not None:
                if word not in known:
                    raise NotImplementedError(f"{self.name}: {word} is not defined")
                out.append(word)
            else:
                out.append(sign)
            at = m.end()
        return " ".join(out)

    @_device_op
    def __call__(self, *args: Any) -> Any:
        n = len(self.ins)
        if len(args) not in (n, n + len(self.outs)):
            raise TypeError(f"Wrong number of arguments for {self.name!r}")
        dev = _current_device()
        env: dict[str, Any] = {"_abs": np.abs, "_sqrt": np.sqrt}
        for (name, t), a in zip(self.ins, args):
            v = _operand(a, dev)
            if isinstance(v, np.ndarray) and v.dtype != t:
                raise TypeError(f"{self.name}: {name} is {v.dtype}, declared {np.dtype(t)}")
            env[name] = v if isinstance(v, np.ndarray) else t(v)
        shape = np.broadcast_shapes(*(np.shape(env[name]) for name, _ in self.ins))
        outs = list(args[n:])
        for k, (name, t) in enumerate(self.outs):
            if k >= len(outs):
                outs.append(_wrap(np.empty(shape, t), dev))
            elif not isinstance(outs[k], ndarray) or outs[k].dtype != t:
                raise TypeError(f"{self.name}: output {name} must be a {np.dtype(t)} array")
        with np.errstate(all="ignore"):
            for name, t, expr in self.steps:
                value = np.asarray(eval(expr, env))  # noqa: S307 (the subset only)
                if value.dtype != t:  # a GPU computes each step in its declared type
                    raise TypeError(f"{self.name}: {name} is computed in {value.dtype}")
                env[name] = value
        for out, (name, _) in zip(outs, self.outs):
            out._a[...] = np.broadcast_to(env[name], out.shape)
        return tuple(outs) if len(outs) > 1 or self.return_tuple else outs[0]
