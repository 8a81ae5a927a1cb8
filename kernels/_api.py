"""The contract every linear+activation backend shares: names, codes and argument checks."""

from __future__ import annotations

from typing import Any

ACTIVATIONS: tuple[str, ...] = ("identity", "relu", "gelu", "gelu_tanh", "sigmoid", "tanh")

# Integer codes let the compiled kernels branch on the activation without string handling.
IDENTITY, RELU, GELU, GELU_TANH, SIGMOID, TANH = range(len(ACTIVATIONS))
ACTIVATION_CODES: dict[str, int] = {name: i for i, name in enumerate(ACTIVATIONS)}

# Which array the backward pass reads as `aux`: the output itself is free (no extra memory, no
# extra writes) whenever the derivative can be written in terms of it; the GELUs cannot, so they
# keep the pre-activation; identity needs nothing. Since aux may be y itself, a caller must not
# modify y in place before the backward pass.
AUX_KIND: dict[str, str | None] = {
    "identity": None,
    "relu": "output",
    "sigmoid": "output",
    "tanh": "output",
    "gelu": "preactivation",
    "gelu_tanh": "preactivation",
}


def activation_code(fn: str, activation: Any) -> int:
    """Map an activation name to its kernel code, or raise a ValueError naming it."""
    code = ACTIVATION_CODES.get(activation) if isinstance(activation, str) else None
    if code is None:
        raise ValueError(
            f"{fn}: unknown activation {activation!r}; expected one of {', '.join(ACTIVATIONS)}"
        )
    return code


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
) -> int:
    """Validate forward arguments; return the activation code."""
    fn = "linear_act_forward"
    code = activation_code(fn, activation)
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
    return code


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
) -> int:
    """Validate backward arguments; return the activation code."""
    fn = "linear_act_backward"
    code = activation_code(fn, activation)
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
    return code
