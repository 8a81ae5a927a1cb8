"""PyTorch habits give PyTorch's results: every idiom below runs on a gradtensor tensor and on a
PyTorch tensor, and the values, shapes, dtypes and gradients must agree."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import gradtensor as gt

torch = pytest.importorskip("torch", reason="PyTorch is not installed (it is the test oracle)")

X = np.array([[0.3, -1.2, 0.3, 2.0], [1.5, 1.5, -0.7, 0.0], [-2.0, 0.4, 0.9, 0.9]])  # with ties
X3 = np.arange(24.0).reshape(2, 3, 4) / 7 - 1.5
INTS = np.array([[5, -3, 12], [7, 0, -8]])

# name -> (input, idiom); the idiom uses only what both libraries spell the same way
IDIOMS: dict[str, tuple[np.ndarray, Any]] = {
    "transpose(0, 1)": (X, lambda x: x.transpose(0, 1)),
    "transpose(-1, 0), 3-d": (X3, lambda x: x.transpose(-1, 0)),
    "permute(2, 0, 1)": (X3, lambda x: x.permute(2, 0, 1)),
    "permute((1, 0))": (X, lambda x: x.permute((1, 0))),
    "T": (X, lambda x: x.T),
    "swapaxes": (X3, lambda x: x.swapaxes(0, 2)),
    "max(dim=1)": (X, lambda x: tuple(x.max(dim=1))),
    "max(1).values": (X, lambda x: x.max(1).values),
    "max(0, keepdim=True)": (X, lambda x: tuple(x.max(0, keepdim=True))),
    "min(dim=0).indices": (X, lambda x: x.min(dim=0).indices),
    "min(1)[0]": (X, lambda x: x.min(1)[0]),
    "max()": (X, lambda x: x.max()),
    "amax(dim=(0, 1))": (X3, lambda x: x.amax(dim=(0, 1))),
    "amin(1, keepdim=True)": (X, lambda x: x.amin(1, keepdim=True)),
    "var()": (X, lambda x: x.var()),
    "var(1)": (X, lambda x: x.var(1)),
    "var(1, keepdim=True)": (X, lambda x: x.var(1, keepdim=True)),
    "var(unbiased=False)": (X, lambda x: x.var(unbiased=False)),
    "var(0, correction=0)": (X, lambda x: x.var(0, correction=0)),
    "var(dim=1, correction=2)": (X, lambda x: x.var(dim=1, correction=2)),
    "std()": (X, lambda x: x.std()),
    "std(0)": (X, lambda x: x.std(0)),
    "split(2, dim=1)": (X, lambda x: list(x.split(2, dim=1))),
    "split(2)": (X, lambda x: list(x.split(2))),
    "split([1, 3], 1)": (X, lambda x: list(x.split([1, 3], 1))),
    "chunk(3, 1)": (X, lambda x: list(x.chunk(3, 1))),
    "chunk(2)": (X, lambda x: list(x.chunk(2))),
    "tensor_split(3, dim=1)": (X, lambda x: list(x.tensor_split(3, dim=1))),
    "sort(1)": (X3, lambda x: tuple(x.sort(1))),
    # (PyTorch leaves the order of ties to sort and topk unspecified: no ties here)
    "sort(descending=True)": (X3, lambda x: tuple(x.sort(descending=True))),
    "topk(2)": (X3, lambda x: tuple(x.topk(2))),
    "topk(2, dim=0, largest=False)": (X3, lambda x: tuple(x.topk(2, dim=0, largest=False))),
    "median()": (X3, lambda x: x.median()),
    "median(1)": (X3, lambda x: tuple(x.median(1))),
    "median(dim=0, keepdim=True)": (X3[:, :2], lambda x: tuple(x.median(dim=0, keepdim=True))),
    "expand(2, 3, 4)": (X[:, :1], lambda x: x.expand(2, 3, 4)),
    "expand(-1, 4)": (X[:, :1], lambda x: x.expand(-1, 4)),
    "repeat(2, 1)": (X, lambda x: x.repeat(2, 1)),
    "repeat(2, 1, 3)": (X, lambda x: x.repeat(2, 1, 3)),
    "flip(0)": (X, lambda x: x.flip(0)),
    "flip((0, 2))": (X3, lambda x: x.flip((0, 2))),
    "max(other)": (X, lambda x: x.max(x.flip(0))),
    "size()": (X3, lambda x: tuple(x.size())),
    "size(1)": (X3, lambda x: x.size(1)),
    "size(-1)": (X3, lambda x: x.size(-1)),
    "numel()": (X3, lambda x: x.numel()),
    "dim()": (X3, lambda x: x.dim()),
    "clamp(min=0)": (X, lambda x: x.clamp(min=0)),
    "clamp(max=0.5)": (X, lambda x: x.clamp(max=0.5)),
    "clamp(-0.5, 0.5)": (X, lambda x: x.clamp(-0.5, 0.5)),
    "clip(-0.5, 0.5)": (X, lambda x: x.clip(-0.5, 0.5)),
    "int / int": (INTS, lambda x: x / 2),
    "int * float": (INTS, lambda x: x * 1.5),
    "int + float": (INTS, lambda x: x + 0.25),
    "int / int tensor": (INTS, lambda x: x / (x.abs() + 1)),
    "int ** 0.5": (INTS, lambda x: x.abs() ** 0.5),
    "int + int": (INTS, lambda x: x + 3),
    "int * int": (INTS, lambda x: x * 2),
    "int & int": (INTS, lambda x: x & 6),
    "int | int": (INTS, lambda x: x | 1),
    "int ^ int": (INTS, lambda x: x ^ x.abs()),
    "~int": (INTS, lambda x: ~x),
    "int << 2": (INTS, lambda x: x << 2),
    "int >> 1": (INTS, lambda x: x >> 1),
    "bool & bool": (INTS, lambda x: (x > 0) & (x < 10)),
    "~bool": (INTS, lambda x: ~(x > 0)),
    "format": (X, lambda x: f"{x.sum():.4f}"),
}


def _to_numpy(out: Any) -> Any:
    if isinstance(out, (list, tuple)):
        return type(out)(_to_numpy(o) for o in out)
    if isinstance(out, gt.Tensor):
        return out.detach().numpy()
    if isinstance(out, torch.Tensor):
        return out.detach().numpy()
    return out


def _assert_same(got: Any, want: Any, where: str) -> None:
    if isinstance(want, (list, tuple)):
        assert isinstance(got, (list, tuple)) and len(got) == len(want), f"{where}: {got!r}"
        for i, (g, w) in enumerate(zip(got, want)):
            _assert_same(g, w, f"{where}[{i}]")
    elif isinstance(want, np.ndarray):
        assert isinstance(got, np.ndarray), f"{where}: {type(got)} where PyTorch gives an array"
        assert got.shape == want.shape and got.dtype == want.dtype, (
            f"{where}: {got.shape} {got.dtype}, PyTorch {want.shape} {want.dtype}"
        )
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7, err_msg=where)
    else:
        assert got == want and type(got) is type(want), f"{where}: {got!r}, PyTorch {want!r}"


def _floats(out: Any) -> list:
    outs = out if isinstance(out, (list, tuple)) else [out]
    return [
        o for o in outs if hasattr(o, "dtype") and str(o.dtype).endswith(("float32", "float64"))
    ]


@pytest.mark.parametrize("name", IDIOMS)
def test_a_pytorch_idiom_gives_pytorchs_result(name):
    data, idiom = IDIOMS[name]
    floating = data.dtype.kind == "f"
    x = gt.tensor(data, dtype=gt.float64 if floating else gt.int64, requires_grad=floating)
    t = torch.tensor(data, requires_grad=floating)
    got, want = idiom(x), idiom(t)
    _assert_same(_to_numpy(got), _to_numpy(want), name)
    outs_g, outs_t = _floats(got), _floats(want)
    if floating and outs_t and all(o.requires_grad for o in outs_t):
        rng = np.random.default_rng(0)
        weights = [rng.standard_normal(o.shape) for o in outs_t]
        sum((o * gt.tensor(w, dtype=gt.float64)).sum() for o, w in zip(outs_g, weights)).backward()
        sum((o * torch.tensor(w)).sum() for o, w in zip(outs_t, weights)).backward()
        np.testing.assert_allclose(x.grad.numpy(), t.grad.numpy(), rtol=1e-10, atol=1e-12,
                                   err_msg=f"{name}: gradient")  # fmt: skip


@pytest.mark.parametrize("descending", [False, True])
def test_sort_puts_nan_where_pytorch_does(descending):
    a = np.array([[2.0, np.nan, -1.0, np.inf, 2.0, np.nan], [0.0, 1.0, -np.inf, 3.0, 1.0, 0.5]])
    got = gt.tensor(a, dtype=gt.float64).sort(1, descending=descending)
    want = torch.tensor(a).sort(dim=1, descending=descending, stable=True)
    np.testing.assert_array_equal(got.values.numpy(), want.values.numpy())
    np.testing.assert_array_equal(got.indices.numpy(), want.indices.numpy())
    flags = gt.tensor([[True, False, True, False]]).sort(1, descending=descending)
    tflags = torch.tensor([[True, False, True, False]]).sort(
        dim=1, descending=descending, stable=True
    )
    np.testing.assert_array_equal(flags.indices.numpy(), tflags.indices.numpy())


def test_transpose_wants_its_two_dims():
    with pytest.raises(TypeError, match="transpose"):
        gt.ones(2, 3).transpose()
    with pytest.raises(ValueError, match=r"transpose: axis 2 is out of range"):
        gt.ones(2, 3).transpose(0, 2)


def test_max_along_several_dims_points_to_amax():
    with pytest.raises(TypeError, match=r"max: dim must be one int, got \(0, 1\) \(amax"):
        gt.ones(2, 3).max(dim=(0, 1))


def test_size_of_a_dimension_out_of_range():
    with pytest.raises(IndexError, match=r"size: dimension 3 is out of range for a 3-d tensor"):
        gt.ones(2, 3, 4).size(3)


def test_gradients_keep_their_inputs_dtype_through_integer_operands():
    # float32 / an int64 tensor computes in float64 in NumPy; the gradient reaching the float32
    # layer below must be float32 again (the fused layer's kernels take one dtype), as in PyTorch.
    x = gt.ones(2, 3, requires_grad=True)
    w = gt.ones(4, 3, requires_grad=True)
    y = gt.nn.functional.linear(x, w, activation="relu")
    n = gt.tensor(3)
    loss = (y * n).sum() / n - (y - n).sum() / (n * 2)
    loss.backward()
    assert x.grad.dtype == w.grad.dtype == gt.float32
    np.testing.assert_allclose(x.grad.numpy(), np.full((2, 3), 4 * (1 - 1 / 6)), rtol=1e-6)
