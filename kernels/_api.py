"""The contract every linear+activation backend shares: the activations and the argument checks;
and where the host kernels' result arrays come from (`POOL`, `results`)."""

from __future__ import annotations

import os
import sys
import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import numpy as np

from .activations import ACTIVATIONS, TABLE

# What each activation's backward reads as `aux`: the output ("output"; then aux may be y itself,
# so a caller must not modify y in place before the backward pass), the pre-activation ("input")
# or nothing (None).
AUX_KIND: dict[str, str | None] = {name: entry.saves for name, entry in TABLE.items()}


# Host arrays of at least POOL_MIN_BYTES that the kernels' calls make come from POOL: glibc hands
# large blocks back to the system when they are freed, and the next array of that size then pays
# a page fault for every page it touches (benchmarks/results/kernel-decisions.md). POOL_BYTES
# (GRADTENSOR_POOL_BYTES; 0 turns the pool off) bounds what the pool keeps.
POOL_MIN_BYTES = 64 * 1024
POOL_BYTES = int(os.environ.get("GRADTENSOR_POOL_BYTES", 256 * 1024 * 1024))
_PER_SHAPE = 8  # arrays kept of one shape and dtype


class _Pool:
    """Host arrays by shape and dtype, handed out again once nothing else holds them (neither a
    caller nor a view): `empty(shape, dtype)` is np.empty that reuses memory. The shapes used
    least recently go first when the pool would keep more than POOL_BYTES."""

    def __init__(self) -> None:
        self.kept: OrderedDict[tuple, list] = OrderedDict()
        self.bytes = 0
        self.lock = threading.Lock()

    def empty(self, shape: Any, dtype: Any) -> np.ndarray:
        key = (shape if type(shape) is tuple else (shape,), dtype)
        arrays = self.kept.get(key)
        if arrays is not None:
            for a in arrays:
                if sys.getrefcount(a) == 3:  # the list's, a's and the argument's: free
                    return a
        a = np.empty(shape, dtype)
        if a.nbytes >= POOL_MIN_BYTES:
            self._keep(key, a)
        return a

    def _keep(self, key: tuple, a: np.ndarray) -> None:
        with self.lock:
            arrays = self.kept.setdefault(key, [])
            self.kept.move_to_end(key)
            if len(arrays) >= _PER_SHAPE or a.nbytes > POOL_BYTES:
                return
            while self.bytes + a.nbytes > POOL_BYTES and len(self.kept) > 1:
                _, old = self.kept.popitem(last=False)  # their holders keep them; the pool lets go
                self.bytes -= sum(b.nbytes for b in old)
            arrays.append(a)
            self.bytes += a.nbytes


POOL = _Pool()


def _pooled(key: str, shape: Any, dtype: Any) -> np.ndarray:
    return POOL.empty(shape, dtype)


def results(keep: bool) -> Callable:
    """`alloc(key, shape, dtype)`: where a plan's run gets its host result and scratch arrays.
    From the pool (a fresh array or a free one of that shape); or, with keep=True, the array the
    same key got at the run before, once nothing else holds it any longer (neither the caller
    nor a view of it): a plan replayed by gt.compile then allocates nothing once warm, and an
    array a caller still holds (a loss kept in a list, a gradient kept from the step before) is
    never written over. A plan's shapes are fixed, so a key names one array."""
    if not keep:
        return _pooled
    held: dict[str, Any] = {}
    refs = sys.getrefcount

    def alloc(key: str, shape: Any, dtype: Any) -> Any:
        a = held.get(key)
        if a is None or refs(a) > 3:  # held's, a's and the argument's: nobody else's
            a = held[key] = np.empty(shape, dtype)
        return a

    return alloc


def check_activation(fn: str, activation: Any) -> str:
    """The activation's name, or a ValueError naming `fn` and the choices."""
    if not isinstance(activation, str) or activation not in TABLE:
        raise ValueError(
            f"{fn}: unknown activation {activation!r}; expected one of {', '.join(ACTIVATIONS)}"
        )
    return activation


def _describe(a: Any) -> str:
    t = type(a)
    return f"{t.__module__}.{t.__qualname__}"


def _check_arrays(fn: str, named: dict[str, Any], array_types: tuple[type, ...], kind: str) -> None:
    for name, a in named.items():
        if not isinstance(a, array_types):
            raise ValueError(f"{fn}: {name} must be a {kind} array, got {_describe(a)}")


def _check_dtypes(fn: str, named: dict[str, Any], dtypes: tuple[Any, ...]) -> None:
    first_name, first = next(iter(named.items()))
    if first.dtype not in dtypes:
        allowed = ", ".join(str(d) for d in dtypes)
        raise ValueError(f"{fn}: unsupported dtype {first.dtype} for {first_name}; use {allowed}")
    for a in named.values():
        if a.dtype != first.dtype:
            listed = ", ".join(f"{n} {v.dtype}" for n, v in named.items())
            raise ValueError(f"{fn}: dtypes must match, got {listed}")


def _check_ndim(fn: str, name: str, a: Any, ndim: int, axes: str) -> None:
    if a.ndim != ndim:
        raise ValueError(f"{fn}: {name} must be {ndim}-D {axes}, got shape {tuple(a.shape)}")


def check_forward(
    x: Any,
    weight: Any,
    bias: Any,
    activation: Any,
    array_types: tuple[type, ...],
    kind: str,
    dtypes: tuple[Any, ...],
) -> None:
    """Validate forward arguments."""
    fn = "linear_act_forward"
    check_activation(fn, activation)
    named = {"x": x, "weight": weight}
    if bias is not None:
        named["bias"] = bias
    _check_arrays(fn, named, array_types, kind)
    _check_ndim(fn, "x", x, 2, "(batch, in_features)")
    _check_ndim(fn, "weight", weight, 2, "(out_features, in_features)")
    if x.shape[1] != weight.shape[1]:
        raise ValueError(
            f"{fn}: x {tuple(x.shape)} and weight {tuple(weight.shape)} do not align: "
            f"x has {x.shape[1]} in_features, weight has {weight.shape[1]}"
        )
    if bias is not None and tuple(bias.shape) != (weight.shape[0],):
        raise ValueError(
            f"{fn}: bias must have shape ({weight.shape[0]},) to match weight "
            f"{tuple(weight.shape)}, got {tuple(bias.shape)}"
        )
    _check_dtypes(fn, named, dtypes)


def check_backward(
    gy: Any,
    x: Any,
    weight: Any,
    aux: Any,
    activation: Any,
    bias: Any,
    array_types: tuple[type, ...],
    kind: str,
    dtypes: tuple[Any, ...],
) -> None:
    """Validate backward arguments."""
    fn = "linear_act_backward"
    check_activation(fn, activation)
    if not isinstance(bias, bool):
        raise ValueError(f"{fn}: bias must be True or False, got {bias!r}")
    named = {"gy": gy, "x": x, "weight": weight}
    needs_aux = AUX_KIND[activation] is not None
    if needs_aux:
        if aux is None:
            raise ValueError(
                f"{fn}: activation {activation!r} needs the aux returned by linear_act_forward, "
                "got None"
            )
        named["aux"] = aux
    _check_arrays(fn, named, array_types, kind)
    _check_ndim(fn, "gy", gy, 2, "(batch, out_features)")
    _check_ndim(fn, "x", x, 2, "(batch, in_features)")
    _check_ndim(fn, "weight", weight, 2, "(out_features, in_features)")
    batch, n_in = x.shape
    n_out = weight.shape[0]
    if weight.shape[1] != n_in:
        raise ValueError(
            f"{fn}: x {tuple(x.shape)} and weight {tuple(weight.shape)} do not align: "
            f"x has {n_in} in_features, weight has {weight.shape[1]}"
        )
    if tuple(gy.shape) != (batch, n_out):
        raise ValueError(
            f"{fn}: gy must have shape (batch, out_features) = ({batch}, {n_out}) for x "
            f"{tuple(x.shape)} and weight {tuple(weight.shape)}, got {tuple(gy.shape)}"
        )
    if needs_aux and tuple(aux.shape) != (batch, n_out):
        raise ValueError(
            f"{fn}: aux for {activation!r} must have shape ({batch}, {n_out}), "
            f"got {tuple(aux.shape)}"
        )
    _check_dtypes(fn, named, dtypes)
