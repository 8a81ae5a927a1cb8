"""Layers: Linear (one fused op with its activation), MLP, Sequential, activations, Dropout."""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import Any

from ..ops import ACTIVATIONS
from ..tensor import Tensor, empty
from . import functional as F
from . import init
from .module import Module
from .parameter import Parameter


class Linear(Module):
    """y = activation(x @ weight.T + bias), weight shaped (out_features, in_features).

    The activation runs inside the same fused op as the matmul. Weight and bias start uniform in
    +-1/sqrt(in_features), as in PyTorch.

    >>> nn.Linear(784, 128, activation="relu")(gt.randn(32, 784)).shape
    (32, 128)
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        activation: str | None = None,
        *,
        device: Any = None,
        dtype: Any = None,
    ):
        super().__init__()
        for name, n in (("in_features", in_features), ("out_features", out_features)):
            if not isinstance(n, int) or isinstance(n, bool) or n < 0:
                raise ValueError(f"Linear: {name} must be a non-negative int, got {n!r}")
        if activation is not None and activation not in ACTIVATIONS:
            raise ValueError(
                f"Linear: unknown activation {activation!r}; expected None or one of "
                f"{ACTIVATIONS} (for others, follow Linear with an activation module)"
            )
        self.in_features, self.out_features = in_features, out_features
        self.activation = activation
        self.weight = Parameter(empty(out_features, in_features, dtype=dtype, device=device))
        if bias:
            self.bias = Parameter(empty(out_features, dtype=dtype, device=device))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """PyTorch's default: kaiming_uniform_(a=sqrt(5)) is U(-1/sqrt(fan_in), 1/sqrt(fan_in))."""
        init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            bound = 1 / math.sqrt(self.in_features) if self.in_features > 0 else 0.0
            init.uniform_(self.bias, -bound, bound)

    def forward(self, x: Tensor) -> Tensor:
        return F.linear(x, self.weight, self.bias, activation=self.activation)

    def extra_repr(self) -> str:
        s = (
            f"in_features={self.in_features}, out_features={self.out_features}, "
            f"bias={self.bias is not None}"
        )
        return s + (f", activation={self.activation!r}" if self.activation else "")


class Sequential(Module):
    """Modules applied one after another: `nn.Sequential(nn.Linear(4, 8), nn.ReLU())`."""

    def __init__(self, *modules: Module):
        super().__init__()
        for i, m in enumerate(modules):
            if not isinstance(m, Module):
                raise TypeError(f"Sequential: argument {i} is a {type(m).__name__}, not a Module")
            self.add_module(str(i), m)

    def forward(self, x: Any) -> Any:
        for m in self._modules.values():
            x = m(x)
        return x

    def append(self, module: Module) -> Sequential:
        self.add_module(str(len(self._modules)), module)
        return self

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[Module]:
        return iter(self._modules.values())

    def __getitem__(self, index: int | slice) -> Any:
        mods = list(self._modules.values())
        if isinstance(index, slice):
            return Sequential(*mods[index])
        try:
            return mods[index]
        except IndexError:
            raise IndexError(
                f"Sequential: index {index} out of range for {len(mods)} modules"
            ) from None


class _Elementwise(Module):
    """An activation function as a module, so it can sit in a Sequential."""

    fn: Any = None

    def forward(self, x: Tensor) -> Tensor:
        return type(self).fn(x)


class ReLU(_Elementwise):
    """max(x, 0)."""

    fn = F.relu


class Sigmoid(_Elementwise):
    """1 / (1 + exp(-x))."""

    fn = F.sigmoid


class Tanh(_Elementwise):
    fn = F.tanh


class Softplus(_Elementwise):
    """log(1 + exp(x))."""

    fn = F.softplus


class SiLU(_Elementwise):
    """x * sigmoid(x)."""

    fn = F.silu


class Identity(Module):
    """Returns its input unchanged (a placeholder layer)."""

    def forward(self, x: Any) -> Any:
        return x


class GELU(Module):
    """Gaussian error linear unit; approximate='tanh' for the tanh formula."""

    def __init__(self, approximate: str = "none"):
        super().__init__()
        if approximate not in ("none", "tanh"):
            raise ValueError(f"GELU: approximate must be 'none' or 'tanh', not {approximate!r}")
        self.approximate = approximate

    def forward(self, x: Tensor) -> Tensor:
        return F.gelu(x, approximate=self.approximate)

    def extra_repr(self) -> str:
        return "" if self.approximate == "none" else f"approximate={self.approximate!r}"


class LeakyReLU(Module):
    """x where x > 0, else negative_slope * x."""

    def __init__(self, negative_slope: float = 0.01):
        super().__init__()
        self.negative_slope = negative_slope

    def forward(self, x: Tensor) -> Tensor:
        return F.leaky_relu(x, self.negative_slope)

    def extra_repr(self) -> str:
        return f"negative_slope={self.negative_slope}"


class Dropout(Module):
    """In training mode zero each element with probability p and scale the rest by 1/(1-p);
    in eval mode pass the input through."""

    def __init__(self, p: float = 0.5):
        super().__init__()
        if not 0 <= p <= 1:
            raise ValueError(f"Dropout: p must be in [0, 1], got {p}")
        self.p = p

    def forward(self, x: Tensor) -> Tensor:
        return F.dropout(x, self.p, self.training)

    def extra_repr(self) -> str:
        return f"p={self.p}"


# Activations F.linear cannot fuse get a module of their own after the layer.
_SEPARATE = {"softplus": Softplus, "leaky_relu": LeakyReLU}


class MLP(Module):
    """A multilayer perceptron of fused Linear layers: MLP([784, 128, 10]).

    Hidden layers use `activation`, the last `output_activation` (None: raw logits, what
    cross_entropy expects); dropout > 0 puts a Dropout after every hidden layer.

    >>> nn.MLP([64, 128, 10]).layers[0]
    Linear(in_features=64, out_features=128, bias=True, activation='relu')
    """

    def __init__(
        self,
        sizes: Sequence[int],
        activation: str | None = "relu",
        output_activation: str | None = None,
        dropout: float = 0.0,
        bias: bool = True,
        *,
        device: Any = None,
        dtype: Any = None,
    ):
        super().__init__()
        sizes = list(sizes)
        if len(sizes) < 2:
            raise ValueError(f"MLP: sizes needs an input and an output size at least, got {sizes}")
        for name in (activation, output_activation):
            if name is not None and name not in ACTIVATIONS and name not in _SEPARATE:
                raise ValueError(
                    f"MLP: unknown activation {name!r}; expected None or one of "
                    f"{ACTIVATIONS + tuple(_SEPARATE)}"
                )
        layers: list[Module] = []
        n = len(sizes) - 1
        for i in range(n):
            act = activation if i < n - 1 else output_activation
            fused = act if act in ACTIVATIONS or act is None else None
            layers.append(Linear(sizes[i], sizes[i + 1], bias, fused, device=device, dtype=dtype))
            if act in _SEPARATE:
                layers.append(_SEPARATE[act]())
            if i < n - 1 and dropout > 0:
                layers.append(Dropout(dropout))
        self.sizes = sizes
        self.layers = Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.layers(x)
