"""Every op, grouped by kind. Importing this package registers them all in `REGISTRY`."""

from .activations import ACTIVATIONS, relu, sigmoid, softplus, tanh
from .elementwise import (
    abs,
    add,
    bitwise_and,
    bitwise_left_shift,
    bitwise_not,
    bitwise_or,
    bitwise_right_shift,
    bitwise_xor,
    clamp,
    clip,
    cos,
    divide,
    equal,
    erf,
    exp,
    greater,
    greater_equal,
    isfinite,
    isnan,
    less,
    less_equal,
    log,
    log1p,
    logical_and,
    logical_not,
    logical_or,
    maximum,
    minimum,
    multiply,
    negative,
    not_equal,
    power,
    sign,
    sin,
    sqrt,
    subtract,
    where,
)
from .fused import linear
from .linalg import matmul
from .loss import cross_entropy_op as _cross_entropy_op  # noqa: F401  (registers the op)
from .reduce import (
    all,
    amax,
    amin,
    any,
    argmax,
    argmin,
    logsumexp,
    max,
    mean,
    median,
    min,
    prod,
    sort,
    std,
    sum,
    topk,
    var,
)
from .registry import (
    REGISTRY,
    Bad,
    Composite,
    Primitive,
    Sample,
    composite,
    kernels_enabled,
    primitive,
    unbroadcast,
    use_kernels,
)
from .shape import (
    astype,
    broadcast_to,
    cat,
    chunk,
    concatenate,
    copy,
    expand,
    expand_dims,
    flatten,
    flip,
    getitem,
    permute,
    repeat,
    reshape,
    reverse_dims,
    setitem,
    split,
    squeeze,
    stack,
    swapaxes,
    swapdims,
    take_along_dim,
    tensor_split,
    to_device,
    transpose,
    unsqueeze,
)

neg = negative
sub = subtract
mul = multiply
div = divide
true_divide = divide
pow = power
dot = matmul

__all__ = [n for n in dir() if not n.startswith("_")]
