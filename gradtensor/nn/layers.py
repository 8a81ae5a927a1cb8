"""Layers: Linear (one fused op with its activation), MLP, the containers (Sequential, ModuleList,
ModuleDict), Flatten, activations, Dropout."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

from ..ops import ACTIVATIONS
from ..tensor import Tensor, empty, full
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
        """PyTorch's start (init.layer_default_)."""
        init.layer_default_(self.weight, self.bias)

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


class ModuleList(Module):
    """Modules held in a list, registered as children "0", "1", ... (no forward of its own).

    >>> blocks = nn.ModuleList([nn.Linear(4, 4) for _ in range(3)]); len(blocks)
    3
    """

    def __init__(self, modules: Iterable[Module] | None = None):
        super().__init__()
        if modules is not None:
            self.extend(modules)

    def _index(self, i: int) -> int:
        n = len(self._modules)
        if isinstance(i, bool) or not isinstance(i, int) or not -n <= i < n:
            raise IndexError(f"ModuleList: index {i!r} is out of range for {n} modules")
        return i % n

    def _refill(self, mods: list[Module]) -> None:
        for k in list(self._modules):
            delattr(self, k)
        for i, m in enumerate(mods):
            self.add_module(str(i), m)

    def __getitem__(self, i: int | slice) -> Any:
        if isinstance(i, slice):
            return ModuleList(list(self._modules.values())[i])
        return self._modules[str(self._index(i))]

    def __setitem__(self, i: int, module: Module) -> None:
        self.add_module(str(self._index(i)), module)

    def __delitem__(self, i: int | slice) -> None:
        mods = list(self._modules.values())
        del mods[i if isinstance(i, slice) else self._index(i)]
        self._refill(mods)

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[Module]:
        return iter(list(self._modules.values()))

    def __iadd__(self, modules: Iterable[Module]) -> ModuleList:
        return self.extend(modules)

    def __add__(self, other: Iterable[Module]) -> ModuleList:
        return ModuleList([*self, *other])

    def append(self, module: Module) -> ModuleList:
        self.add_module(str(len(self._modules)), module)
        return self

    def extend(self, modules: Iterable[Module]) -> ModuleList:
        if isinstance(modules, Module) and not isinstance(modules, (ModuleList, Sequential)):
            raise TypeError("ModuleList.extend: expected an iterable of Modules, got a Module")
        for m in list(modules):
            self.append(m)
        return self

    def insert(self, index: int, module: Module) -> None:
        mods = list(self._modules.values())
        mods.insert(index, module)
        self._refill(mods)

    def pop(self, index: int = -1) -> Module:
        m = self[index]
        del self[index]
        return m


class ModuleDict(Module):
    """Modules held by name, in insertion order (no forward of its own).

    >>> heads = nn.ModuleDict({"cls": nn.Linear(8, 3), "box": nn.Linear(8, 4)}); list(heads)
    ['cls', 'box']
    """

    def __init__(self, modules: Mapping[str, Module] | Iterable | None = None):
        super().__init__()
        if modules is not None:
            self.update(modules)

    def __getitem__(self, key: str) -> Module:
        try:
            return self._modules[key]
        except KeyError:
            raise KeyError(f"ModuleDict: no module named {key!r}") from None

    def __setitem__(self, key: str, module: Module) -> None:
        self.add_module(key, module)

    def __delitem__(self, key: str) -> None:
        self[key]  # noqa: B018  (the KeyError that names the key)
        delattr(self, key)

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._modules))

    def __contains__(self, key: object) -> bool:
        return key in self._modules

    def keys(self) -> Iterable[str]:
        return self._modules.keys()

    def items(self) -> Iterable[tuple[str, Module]]:
        return self._modules.items()

    def values(self) -> Iterable[Module]:
        return self._modules.values()

    def update(self, modules: Mapping[str, Module] | Iterable) -> None:
        pairs = modules.items() if isinstance(modules, Mapping) else modules
        for pair in pairs:
            if not isinstance(pair, (tuple, list)) or len(pair) != 2:
                raise TypeError(f"ModuleDict.update: expected (name, module) pairs, got {pair!r}")
            self[pair[0]] = pair[1]

    def pop(self, key: str) -> Module:
        m = self[key]
        del self[key]
        return m

    def clear(self) -> None:
        for k in list(self._modules):
            delattr(self, k)


class Flatten(Module):
    """Merge dimensions start_dim..end_dim into one (all but the batch dimension by default)."""

    def __init__(self, start_dim: int = 1, end_dim: int = -1):
        super().__init__()
        self.start_dim, self.end_dim = start_dim, end_dim

    def forward(self, x: Tensor) -> Tensor:
        return x.flatten(self.start_dim, self.end_dim)

    def extra_repr(self) -> str:
        return f"start_dim={self.start_dim}, end_dim={self.end_dim}"


class Unflatten(Module):
    """Split dimension `dim` into the shape `unflattened_size` (which may hold one -1)."""

    def __init__(self, dim: int, unflattened_size: Sequence[int]):
        super().__init__()
        self.dim, self.unflattened_size = dim, tuple(unflattened_size)

    def forward(self, x: Tensor) -> Tensor:
        if not -x.ndim <= self.dim < x.ndim:
            raise IndexError(f"Unflatten: dim {self.dim} is out of range for a {x.ndim}-d input")
        d = self.dim % x.ndim
        return x.reshape(x.shape[:d] + self.unflattened_size + x.shape[d + 1 :])

    def extra_repr(self) -> str:
        return f"dim={self.dim}, unflattened_size={self.unflattened_size}"


class Identity(Module):
    """Returns its input unchanged (a placeholder layer); takes and ignores any arguments."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__()

    def forward(self, x: Any) -> Any:
        return x


class _Activation(Module):
    """An activation function as a module, so it can sit in a Sequential: `fn(x, **args)`, with
    the arguments named in `args` kept as attributes (and shown by repr). `inplace=True`, where
    PyTorch has it, writes the result into the input, as PyTorch's does."""

    fn: Any = None
    args: tuple[str, ...] = ()

    def __init__(self, inplace: bool = False):
        super().__init__()
        self.inplace = inplace

    def forward(self, x: Tensor) -> Tensor:
        kw = {a: getattr(self, a) for a in self.args}
        if self.inplace:
            kw["inplace"] = True
        return type(self).fn(x, **kw)

    def extra_repr(self) -> str:
        parts = [f"{a}={getattr(self, a)!r}" for a in self.args]
        return ", ".join(parts + ["inplace=True"] * bool(self.inplace))


class ReLU(_Activation):
    """max(x, 0)."""

    fn = F.relu


class ReLU6(_Activation):
    """min(max(x, 0), 6)."""

    fn = F.relu6


class Sigmoid(_Activation):
    """1 / (1 + exp(-x))."""

    fn = F.sigmoid


class Tanh(_Activation):
    fn = F.tanh


class SiLU(_Activation):
    """x * sigmoid(x)."""

    fn = F.silu


class Mish(_Activation):
    """x * tanh(softplus(x))."""

    fn = F.mish


class SELU(_Activation):
    """scale * elu(x, alpha), with the self-normalising constants."""

    fn = F.selu


class Hardswish(_Activation):
    """x * relu6(x + 3) / 6."""

    fn = F.hardswish


class Hardsigmoid(_Activation):
    """relu6(x + 3) / 6."""

    fn = F.hardsigmoid


class Softsign(_Activation):
    """x / (1 + |x|)."""

    fn = F.softsign


class LogSigmoid(_Activation):
    """log(sigmoid(x)), computed stably."""

    fn = F.logsigmoid


class Softplus(_Activation):
    """log(1 + exp(beta * x)) / beta, and x where beta * x > threshold."""

    fn, args = F.softplus, ("beta", "threshold")

    def __init__(self, beta: float = 1.0, threshold: float = 20.0):
        super().__init__()
        self.beta, self.threshold = beta, threshold


class ELU(_Activation):
    """x where x > 0, else alpha * (exp(x) - 1)."""

    fn, args = F.elu, ("alpha",)

    def __init__(self, alpha: float = 1.0, inplace: bool = False):
        super().__init__(inplace)
        self.alpha = alpha


class CELU(ELU):
    """x where x > 0, else alpha * (exp(x / alpha) - 1)."""

    fn = F.celu


class LeakyReLU(_Activation):
    """x where x > 0, else negative_slope * x."""

    fn, args = F.leaky_relu, ("negative_slope",)

    def __init__(self, negative_slope: float = 0.01, inplace: bool = False):
        super().__init__(inplace)
        self.negative_slope = negative_slope


class Hardtanh(_Activation):
    """x clamped to [min_val, max_val]."""

    fn, args = F.hardtanh, ("min_val", "max_val")

    def __init__(self, min_val: float = -1.0, max_val: float = 1.0, inplace: bool = False):
        super().__init__(inplace)
        if min_val > max_val:
            raise ValueError("Hardtanh: min_val cannot be greater than max_val")
        self.min_val, self.max_val = min_val, max_val


class GELU(_Activation):
    """Gaussian error linear unit; approximate='tanh' for the tanh formula."""

    fn, args = F.gelu, ("approximate",)

    def __init__(self, approximate: str = "none"):
        super().__init__()
        if approximate not in ("none", "tanh"):
            raise ValueError(f"GELU: approximate must be 'none' or 'tanh', not {approximate!r}")
        self.approximate = approximate

    def extra_repr(self) -> str:
        return "" if self.approximate == "none" else f"approximate={self.approximate!r}"


class GLU(_Activation):
    """a * sigmoid(b) for the two halves a, b of the input along dim."""

    fn, args = F.glu, ("dim",)

    def __init__(self, dim: int = -1):
        super().__init__()
        self.dim = dim


def _softmax_dim(x: Tensor, dim: int | None) -> int:
    # PyTorch's rule for a Softmax built without dim (which it warns of): 0 for 0-, 1- and 3-d
    # inputs, else 1.
    return dim if dim is not None else (0 if x.ndim in (0, 1, 3) else 1)


class Softmax(Module):
    """exp(x) / sum(exp(x)) along dim."""

    def __init__(self, dim: int | None = None):
        super().__init__()
        self.dim = dim

    def forward(self, x: Tensor) -> Tensor:
        return F.softmax(x, _softmax_dim(x, self.dim))

    def extra_repr(self) -> str:
        return f"dim={self.dim}"


class LogSoftmax(Softmax):
    """log(softmax(x)) along dim, computed stably."""

    def forward(self, x: Tensor) -> Tensor:
        return F.log_softmax(x, _softmax_dim(x, self.dim))


class PReLU(Module):
    """x where x > 0, else weight * x, with a learnable weight: one, or one per channel
    (num_parameters = the input's dimension 1), starting at `init`."""

    def __init__(
        self, num_parameters: int = 1, init: float = 0.25, *, device: Any = None, dtype: Any = None
    ):
        super().__init__()
        self.num_parameters = num_parameters
        self.weight = Parameter(full((num_parameters,), init, dtype=dtype, device=device))

    def forward(self, x: Tensor) -> Tensor:
        return F.prelu(x, self.weight)

    def extra_repr(self) -> str:
        return f"num_parameters={self.num_parameters}"


class Dropout(Module):
    """In training mode zero each element with probability p and scale the rest by 1/(1-p);
    in eval mode pass the input through."""

    def __init__(self, p: float = 0.5, inplace: bool = False):
        super().__init__()
        if not 0 <= p <= 1:
            raise ValueError(f"Dropout: p must be in [0, 1], got {p}")
        self.p, self.inplace = p, inplace

    def forward(self, x: Tensor) -> Tensor:
        return F.dropout(x, self.p, self.training, self.inplace)

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
