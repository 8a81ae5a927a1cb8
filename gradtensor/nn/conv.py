"""Convolution and pooling layers, as PyTorch's (NCHW): Conv1d, Conv2d, ConvTranspose2d, the
max, average and adaptive poolings, Unfold and Fold; the maths is in gradtensor.ops.conv.

>>> nn.Conv2d(1, 6, 5)(gt.randn(64, 1, 28, 28)).shape
(64, 6, 24, 24)
"""

from __future__ import annotations

from typing import Any

from ..tensor import Tensor, empty
from . import functional as F
from . import init
from .module import Module
from .parameter import Parameter

_PADDING_MODES = ("zeros", "reflect", "replicate", "circular")


def _tuple(name: str, what: str, v: Any, n: int) -> tuple[int, ...]:
    t = tuple(v) if isinstance(v, (tuple, list)) else (v,) * n
    if len(t) != n or any(isinstance(k, bool) or not hasattr(k, "__index__") for k in t):
        raise ValueError(f"{name}: {what} must be an int or {n} ints, got {v!r}")
    return tuple(int(k) for k in t)


class _ConvNd(Module):
    """What Conv1d, Conv2d and ConvTranspose2d share: weights, their start, the repr."""

    _dims = 2
    _transposed = False

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: Any,
        stride: Any = 1,
        padding: Any = 0,
        dilation: Any = 1,
        groups: int = 1,
        bias: bool = True,
        padding_mode: str = "zeros",
        output_padding: Any = 0,
        device: Any = None,
        dtype: Any = None,
    ):
        super().__init__()
        name, n = type(self).__name__, self._dims
        for what, v in (("in_channels", in_channels), ("out_channels", out_channels)):
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ValueError(f"{name}: {what} must be a positive int, got {v!r}")
        if not isinstance(groups, int) or groups < 1:
            raise ValueError(f"{name}: groups must be a positive int, got {groups!r}")
        if in_channels % groups or out_channels % groups:
            raise ValueError(
                f"{name}: in_channels ({in_channels}) and out_channels ({out_channels}) must be "
                f"divisible by groups ({groups})"
            )
        if padding_mode not in _PADDING_MODES:
            raise ValueError(f"{name}: padding_mode must be one of {_PADDING_MODES}, not "
                             f"{padding_mode!r}")  # fmt: skip
        self.in_channels, self.out_channels, self.groups = in_channels, out_channels, groups
        self.kernel_size = _tuple(name, "kernel_size", kernel_size, n)
        self.stride = _tuple(name, "stride", stride, n)
        self.dilation = _tuple(name, "dilation", dilation, n)
        if isinstance(padding, str):
            if padding not in ("same", "valid"):
                raise ValueError(
                    f"{name}: padding must be 'same', 'valid' or ints, not {padding!r}"
                )
            if padding == "same" and any(s != 1 for s in self.stride):
                raise ValueError(f"{name}: padding='same' needs stride 1, got {self.stride}")
            self.padding: Any = padding
        else:
            self.padding = _tuple(name, "padding", padding, n)
        self.output_padding = _tuple(name, "output_padding", output_padding, n)
        self.padding_mode = padding_mode
        shape = (
            (in_channels, out_channels // groups) if self._transposed
            else (out_channels, in_channels // groups)
        ) + self.kernel_size  # fmt: skip
        self.weight = Parameter(empty(*shape, dtype=dtype, device=device))
        if bias:
            self.bias = Parameter(empty(out_channels, dtype=dtype, device=device))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """PyTorch's start (init.layer_default_)."""
        init.layer_default_(self.weight, self.bias)

    def _padded(self, x: Tensor) -> tuple[Tensor, Any]:
        """x padded by padding_mode where that is not zeros (then the conv pads no more)."""
        if self.padding_mode == "zeros":
            return x, self.padding
        k = self.kernel_size
        if self.padding == "same":
            tot = [d * (ki - 1) for d, ki in zip(self.dilation, k)]
            pads = [(t // 2, t - t // 2) for t in tot]
        else:
            pads = [(0, 0)] * len(k) if self.padding == "valid" else [(p, p) for p in self.padding]
        flat = [v for lo_hi in reversed(pads) for v in lo_hi]
        return F.pad(x, flat, mode=self.padding_mode), 0

    def extra_repr(self) -> str:
        n = self._dims
        s = (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
            f"stride={self.stride}"
        )
        if self.padding != (0,) * n:
            s += f", padding={self.padding}"
        if self.dilation != (1,) * n:
            s += f", dilation={self.dilation}"
        if self.output_padding != (0,) * n:
            s += f", output_padding={self.output_padding}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        if self.bias is None:
            s += ", bias=False"
        if self.padding_mode != "zeros":
            s += f", padding_mode={self.padding_mode}"
        return s


class Conv1d(_ConvNd):
    """1-D convolution over (N, C, L), weight (out, in/groups, k), as PyTorch's Conv1d."""

    _dims = 1

    def __init__(self, in_channels: int, out_channels: int, kernel_size: Any, stride: Any = 1,
                 padding: Any = 0, dilation: Any = 1, groups: int = 1, bias: bool = True,
                 padding_mode: str = "zeros", device: Any = None, dtype: Any = None):  # fmt: skip
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, groups,
                         bias, padding_mode, device=device, dtype=dtype)  # fmt: skip

    def forward(self, x: Tensor) -> Tensor:
        x, p = self._padded(x)
        return F.conv1d(x, self.weight, self.bias, self.stride, p, self.dilation, self.groups)


class Conv2d(_ConvNd):
    """2-D convolution over (N, C, H, W), weight (out, in/groups, kh, kw), as PyTorch's Conv2d.

    >>> nn.Conv2d(3, 16, 3, padding=1)
    Conv2d(3, 16, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1))
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: Any, stride: Any = 1,
                 padding: Any = 0, dilation: Any = 1, groups: int = 1, bias: bool = True,
                 padding_mode: str = "zeros", device: Any = None, dtype: Any = None):  # fmt: skip
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, groups,
                         bias, padding_mode, device=device, dtype=dtype)  # fmt: skip

    def forward(self, x: Tensor) -> Tensor:
        x, p = self._padded(x)
        return F.conv2d(x, self.weight, self.bias, self.stride, p, self.dilation, self.groups)


class ConvTranspose2d(_ConvNd):
    """Transposed 2-D convolution, weight (in, out/groups, kh, kw), as PyTorch's ConvTranspose2d;
    forward(x, output_size) picks the output_padding that gives that size."""

    _transposed = True

    def __init__(self, in_channels: int, out_channels: int, kernel_size: Any, stride: Any = 1,
                 padding: Any = 0, output_padding: Any = 0, groups: int = 1, bias: bool = True,
                 dilation: Any = 1, padding_mode: str = "zeros", device: Any = None,
                 dtype: Any = None):  # fmt: skip
        if padding_mode != "zeros" or isinstance(padding, str):
            raise ValueError("ConvTranspose2d: only padding_mode='zeros' and int padding are "
                             "supported (as in PyTorch)")  # fmt: skip
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, groups,
                         bias, padding_mode, output_padding, device, dtype)  # fmt: skip

    def forward(self, x: Tensor, output_size: Any = None) -> Tensor:
        op = self.output_padding
        if output_size is not None:
            want = tuple(output_size)[-2:]
            base = [
                (n - 1) * s - 2 * p + d * (k - 1) + 1
                for n, s, p, d, k in zip(
                    x.shape[-2:], self.stride, self.padding, self.dilation, self.kernel_size
                )
            ]
            op = tuple(w - b for w, b in zip(want, base))
            if any(not 0 <= v < max(s, d) for v, s, d in zip(op, self.stride, self.dilation)):
                raise ValueError(
                    f"ConvTranspose2d: output_size {want} is not reachable from input of shape "
                    f"{x.shape}: sizes from {tuple(base)} up to stride - 1 more are"
                )
        return F.conv_transpose2d(x, self.weight, self.bias, self.stride, self.padding, op,
                                  self.groups, self.dilation)  # fmt: skip


class MaxPool1d(Module):
    """The max of each window of (N, C, L), as PyTorch's MaxPool1d."""

    _fn = staticmethod(F.max_pool1d)

    def __init__(self, kernel_size: Any, stride: Any = None, padding: Any = 0, dilation: Any = 1,
                 return_indices: bool = False, ceil_mode: bool = False):  # fmt: skip
        super().__init__()
        self.kernel_size = kernel_size
        self.stride = stride if stride is not None else kernel_size
        self.padding, self.dilation = padding, dilation
        self.return_indices, self.ceil_mode = return_indices, ceil_mode

    def forward(self, x: Tensor) -> Any:
        return self._fn(x, self.kernel_size, self.stride, self.padding, self.dilation,
                        self.ceil_mode, self.return_indices)  # fmt: skip

    def extra_repr(self) -> str:
        return (
            f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}, "
            f"dilation={self.dilation}, ceil_mode={self.ceil_mode}"
        )


class MaxPool2d(MaxPool1d):
    """The max of each window of (N, C, H, W), as PyTorch's MaxPool2d."""

    _fn = staticmethod(F.max_pool2d)


class AvgPool1d(Module):
    """The mean of each window of (N, C, L), as PyTorch's AvgPool1d."""

    def __init__(self, kernel_size: Any, stride: Any = None, padding: Any = 0,
                 ceil_mode: bool = False, count_include_pad: bool = True):  # fmt: skip
        super().__init__()
        one = lambda v: (v,) if isinstance(v, int) else tuple(v)  # noqa: E731  (PyTorch's _single)
        self.kernel_size = one(kernel_size)
        self.stride = one(stride if stride is not None else kernel_size)
        self.padding = one(padding)
        self.ceil_mode, self.count_include_pad = ceil_mode, count_include_pad

    def forward(self, x: Tensor) -> Tensor:
        return F.avg_pool1d(x, self.kernel_size, self.stride, self.padding, self.ceil_mode,
                            self.count_include_pad)  # fmt: skip

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class AvgPool2d(Module):
    """The mean of each window of (N, C, H, W), as PyTorch's AvgPool2d."""

    def __init__(self, kernel_size: Any, stride: Any = None, padding: Any = 0,
                 ceil_mode: bool = False, count_include_pad: bool = True,
                 divisor_override: int | None = None):  # fmt: skip
        super().__init__()
        self.kernel_size = kernel_size
        self.stride = stride if stride is not None else kernel_size
        self.padding, self.ceil_mode = padding, ceil_mode
        self.count_include_pad, self.divisor_override = count_include_pad, divisor_override

    def forward(self, x: Tensor) -> Tensor:
        return F.avg_pool2d(x, self.kernel_size, self.stride, self.padding, self.ceil_mode,
                            self.count_include_pad, self.divisor_override)  # fmt: skip

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class AdaptiveAvgPool2d(Module):
    """The mean over an output_size grid of windows (None keeps that size), as PyTorch's."""

    def __init__(self, output_size: Any):
        super().__init__()
        self.output_size = output_size

    def forward(self, x: Tensor) -> Tensor:
        return F.adaptive_avg_pool2d(x, self.output_size)

    def extra_repr(self) -> str:
        return f"output_size={self.output_size}"


class Unfold(Module):
    """Sliding blocks as columns (N, C * kh * kw, blocks): im2col, as PyTorch's Unfold."""

    def __init__(self, kernel_size: Any, dilation: Any = 1, padding: Any = 0, stride: Any = 1):
        super().__init__()
        self.kernel_size, self.dilation = kernel_size, dilation
        self.padding, self.stride = padding, stride

    def forward(self, x: Tensor) -> Tensor:
        return F.unfold(x, self.kernel_size, self.dilation, self.padding, self.stride)

    def extra_repr(self) -> str:
        return (
            f"kernel_size={self.kernel_size}, dilation={self.dilation}, padding={self.padding}, "
            f"stride={self.stride}"
        )


class Fold(Unfold):
    """Columns summed back into (N, C, H, W): col2im, as PyTorch's Fold."""

    def __init__(self, output_size: Any, kernel_size: Any, dilation: Any = 1, padding: Any = 0,
                 stride: Any = 1):  # fmt: skip
        super().__init__(kernel_size, dilation, padding, stride)
        self.output_size = output_size

    def forward(self, x: Tensor) -> Tensor:
        return F.fold(x, self.output_size, self.kernel_size, self.dilation, self.padding,
                      self.stride)  # fmt: skip

    def extra_repr(self) -> str:
        return f"output_size={self.output_size}, " + super().extra_repr()
