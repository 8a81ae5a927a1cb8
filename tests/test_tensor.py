"""The Tensor's attributes, constructors, dtypes, conversions and NumPy-style semantics."""

import numpy as np
import pytest

import gradtensor as gt


def test_attributes():
    t = gt.zeros(2, 3)
    assert t.shape == (2, 3) and t.ndim == 2 and t.numel() == 6 and len(t) == 2
    assert t.size() == (2, 3) and t.size(1) == 3 and t.size(-2) == 2 and t.dim() == 2
    assert t.dtype == gt.float32 and t.device == gt.device("cpu") and str(t.device) == "cpu"
    assert t.is_leaf and not t.requires_grad and t.grad is None
    assert t.T.shape == (3, 2)


def test_default_dtypes_follow_the_rules():
    assert gt.tensor(1.5).dtype == gt.float32
    assert gt.tensor([1, 2]).dtype == gt.int64
    assert gt.tensor([True]).dtype == gt.bool_
    assert gt.tensor(np.zeros(2)).dtype == gt.float32  # float64 NumPy data -> default float
    assert gt.tensor(np.zeros(2, np.float16)).dtype == gt.float16
    assert gt.tensor(np.zeros(2), dtype=gt.float64).dtype == gt.float64
    gt.set_default_dtype(gt.float64)
    try:
        assert gt.tensor(1.5).dtype == gt.float64 and gt.zeros(2).dtype == gt.float64
    finally:
        gt.set_default_dtype(gt.float32)
    with pytest.raises(TypeError):
        gt.set_default_dtype(gt.int64)


def test_python_scalars_do_not_promote():
    x = gt.ones(2)
    assert (x * 2.5).dtype == gt.float32
    assert (2.5 - x).dtype == gt.float32
    assert (x**2).dtype == gt.float32


def test_tensor_copies_and_from_numpy_shares():
    a = np.ones(3, dtype=np.float32)
    t = gt.tensor(a)
    s = gt.from_numpy(a)
    a[0] = 5
    assert t.data[0] == 1 and s.data[0] == 5
    assert s.dtype == gt.float32


def test_constructors():
    assert gt.zeros((2, 3)).shape == (2, 3)
    assert gt.ones(2, dtype=gt.float64).dtype == gt.float64
    assert gt.full((2,), 7.0).tolist() == [7.0, 7.0]
    assert gt.full((2,), 7).dtype == gt.int64
    assert gt.empty(3).shape == (3,)
    assert gt.zeros_like(gt.ones(2, 2)).tolist() == [[0, 0], [0, 0]]
    assert gt.ones_like(gt.zeros(2, dtype=gt.int32)).dtype == gt.int32
    assert gt.arange(4).tolist() == [0, 1, 2, 3] and gt.arange(4).dtype == gt.int64
    assert gt.arange(0, 1, 0.25).dtype == gt.float32
    assert gt.eye(3).numpy().trace() == 3
    assert gt.randn(2, 3).shape == (2, 3) and gt.rand(4).dtype == gt.float32


def test_manual_seed_makes_random_repeatable():
    gt.manual_seed(7)
    a = gt.randn(5).tolist()
    gt.manual_seed(7)
    assert gt.randn(5).tolist() == a
    u = gt.rand(1000).numpy()
    assert 0 <= u.min() and u.max() < 1


def test_conversions():
    t = gt.tensor([[1.0, 2.0]])
    assert t.tolist() == [[1.0, 2.0]]
    assert gt.tensor(3.0).item() == 3.0 and float(gt.tensor(2.0)) == 2.0
    assert np.asarray(t).shape == (1, 2)
    assert t.astype(gt.float64).dtype == gt.float64
    assert t.astype("int64").tolist() == [[1, 2]]
    assert t.to(gt.float64).dtype == gt.float64
    assert t.to("cpu") is t and t.cpu() is t


def test_repr_shows_values_dtype_and_grad_fn():
    x = gt.tensor([1.0, 2.0], requires_grad=True)
    assert repr(x) == "tensor([1., 2.], dtype=float32, requires_grad=True)"
    y = x * 2
    assert "grad_fn=<multiplyBackward>" in repr(y)
    assert repr(gt.tensor([1, 2])) == "tensor([1, 2])"


def test_astype_gradient_casts_back():
    x = gt.tensor([1.0, 2.0], requires_grad=True)
    y = x.astype(gt.float64) * gt.tensor([3.0, 4.0], dtype=gt.float64)
    y.sum().backward()
    assert x.grad.dtype == gt.float32
    np.testing.assert_allclose(x.grad.numpy(), [3.0, 4.0])
    assert not x.astype(gt.int64).requires_grad


def test_comparisons_give_bool_without_grad():
    x = gt.tensor([1.0, 2.0, 3.0], requires_grad=True)
    m = x > 1.5
    assert m.dtype == gt.bool_ and not m.requires_grad
    assert m.tolist() == [False, True, True]
    assert (x == 2).tolist() == [False, True, False]
    assert ((x > 1) & (x < 3)).tolist() == [False, True, False]
    assert (~m).tolist() == [True, False, False]


def test_numpy_arrays_on_the_left_defer_to_tensor():
    x = gt.ones(2, requires_grad=True)
    y = np.array([1.0, 2.0]) * x
    # The array keeps its float64, as in PyTorch: float32 times float64 data is float64.
    assert isinstance(y, gt.Tensor) and y.requires_grad and y.dtype == gt.float64
    assert (np.array([1.0, 2.0], np.float32) * x).dtype == gt.float32


def test_an_array_operand_keeps_its_precision():
    x = gt.tensor([0.0], dtype=gt.float64)
    assert (x + np.array([0.1])).item() == 0.1  # not 0.1 rounded to float32 on the way


def test_numpy_cannot_silently_drop_a_graph():
    x = gt.ones(2, requires_grad=True)
    with pytest.raises(RuntimeError, match="requires grad"):
        np.dot(x, x)
    assert np.dot(x.detach(), x.detach()) == 2.0


def test_indexing_semantics_follow_numpy():
    a = np.arange(12.0).reshape(3, 4)
    t = gt.tensor(a, dtype=gt.float64)
    for key in [
        1,
        (1, 2),
        slice(None, None, -1),
        (slice(None), [0, 2]),
        a > 5,
        (None, 1),
        (Ellipsis, 0),
        ([0, 0, 2], [1, 1, 3]),
    ]:
        np.testing.assert_array_equal(t[key].numpy(), a[key])
    np.testing.assert_array_equal(t[gt.tensor([2, 0])].numpy(), a[[2, 0]])


def test_indexing_gradient_scatter_adds_repeats():
    x = gt.tensor([1.0, 2.0, 3.0], requires_grad=True)
    x[[0, 0, 2, 0]].sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [3.0, 0.0, 1.0])
    x.grad = None
    x[x > 1.5].sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [0.0, 1.0, 1.0])
    x.grad = None
    x[::-1][0].backward()
    np.testing.assert_array_equal(x.grad.numpy(), [0.0, 0.0, 1.0])


def test_tensor_split_follows_numpy_array_split():
    a = np.arange(10.0)
    for spec in (5, 3, [2, 7], [3], [-4, 8]):
        got = gt.tensor_split(gt.tensor(a), spec)
        want = np.array_split(a, spec)
        assert [g.tolist() for g in got] == [w.tolist() for w in want]


def test_var_and_std_divide_by_n_minus_one_unless_told():
    a = np.random.default_rng(0).standard_normal((4, 5))
    t = gt.tensor(a, dtype=gt.float64)
    np.testing.assert_allclose(t.var().item(), a.var(ddof=1))  # PyTorch's default correction
    np.testing.assert_allclose(t.var(unbiased=False).item(), a.var())
    np.testing.assert_allclose(t.std(axis=0, ddof=0).numpy(), a.std(axis=0))  # NumPy's keyword
    np.testing.assert_allclose(t.var(1, keepdim=True, correction=2).numpy(),
                               a.var(axis=1, keepdims=True, ddof=2))  # fmt: skip
    with pytest.raises(TypeError, match=r"var: give one of correction, ddof and unbiased"):
        t.var(correction=1, ddof=0)
    with pytest.raises(TypeError, match=r"std\(\) got an unexpected keyword argument 'bias'"):
        t.std(bias=1)


def test_reductions_accept_dim_and_keepdim_aliases():
    t = gt.ones(2, 3)
    assert t.sum(dim=1).shape == (2,) and t.sum(dim=1, keepdim=True).shape == (2, 1)
    assert t.mean(axis=(0, 1)).shape == ()
    with pytest.raises(TypeError, match="not both"):
        t.sum(axis=0, dim=1)


def test_argmax_argmin_any_all():
    t = gt.tensor([[1.0, 5.0, 2.0], [7.0, 0.0, 3.0]])
    assert t.argmax().item() == 3 and t.argmax(axis=1).tolist() == [1, 0]
    assert t.argmin(axis=0).tolist() == [0, 1, 0]
    assert (t > 6).any().item() and not (t > 6).all().item()


def test_matmul_numpy_rules():
    rng = np.random.default_rng(0)
    for sa, sb in [
        ((3,), (3,)),
        ((2, 3), (3,)),
        ((3,), (3, 4)),
        ((5, 2, 3), (3, 4)),
        ((2, 1, 2, 3), (4, 3, 2)),
    ]:
        a, b = rng.standard_normal(sa), rng.standard_normal(sb)
        got = gt.tensor(a, dtype=gt.float64) @ gt.tensor(b, dtype=gt.float64)
        np.testing.assert_allclose(got.numpy(), a @ b)


def test_shape_helpers():
    t = gt.zeros(2, 1, 3)
    assert t.squeeze().shape == (2, 3) and t.squeeze(1).shape == (2, 3)
    assert t.unsqueeze(0).shape == (1, 2, 1, 3) and gt.expand_dims(t, -1).shape == (2, 1, 3, 1)
    assert t.flatten().shape == (6,) and t.flatten(1).shape == (2, 3)
    assert t.permute(2, 0, 1).shape == (3, 2, 1) and t.swapaxes(0, 2).shape == (3, 1, 2)
    assert t.transpose(0, 2).shape == (3, 1, 2) and t.T.shape == (3, 1, 2)
    assert t.reshape(-1).shape == (6,) and t.reshape((3, 2)).shape == (3, 2)
    assert gt.broadcast_to(gt.zeros(3), (2, 3)).shape == (2, 3)
    assert gt.stack([gt.zeros(2), gt.ones(2)], axis=1).shape == (2, 2)
    assert gt.cat([gt.zeros(2), gt.ones(3)]).shape == (5,)


def test_clip_with_tensor_bounds_is_differentiable():
    x = gt.tensor([0.0, 5.0], requires_grad=True)
    hi = gt.tensor(1.0, requires_grad=True)
    gt.clip(x, 0.5, hi).sum().backward()
    assert x.grad.tolist() == [0.0, 0.0] and hi.grad.item() == 1.0


def test_iteration_and_len():
    t = gt.tensor([[1.0, 2.0], [3.0, 4.0]])
    assert [row.tolist() for row in t] == [[1.0, 2.0], [3.0, 4.0]]
    with pytest.raises(TypeError):
        len(gt.tensor(1.0))


def test_dlpack_round_trip_with_numpy():
    a = np.arange(4.0)
    t = gt.from_dlpack(a)
    a[0] = 9
    assert t.tolist()[0] == 9


def test_clone_is_differentiable_and_independent():
    x = gt.tensor([1.0, 2.0], requires_grad=True)
    c = x.clone()
    assert c.data is not x.data
    (c * 3).sum().backward()
    assert x.grad.tolist() == [3.0, 3.0]


def test_dlpack_with_pytorch_shares_memory_both_ways():
    torch = pytest.importorskip("torch", reason="PyTorch is not installed (interop partner)")
    t = gt.tensor([1.0, 2.0, 3.0])
    tt = torch.from_dlpack(t)
    tt[0] = 7.0
    assert t.tolist()[0] == 7.0
    back = gt.from_dlpack(torch.arange(3.0))
    assert back.tolist() == [0.0, 1.0, 2.0] and back.dtype == gt.float32


def test_cpu_tensor_has_no_cuda_array_interface():
    assert not hasattr(gt.ones(2), "__cuda_array_interface__")


# -- bitwise operators, lists of tensors, indexing and reductions at their edges --------------


def test_bitwise_operators_on_integers_are_bitwise():
    a = gt.tensor([1, -8, 32])
    n = np.array([1, -8, 32])
    for got, want in [
        (a & a, n & n),
        (a | 6, n | 6),
        (a ^ 3, n ^ 3),
        (~a, ~n),
        (a << 2, n << 2),
        (a >> 1, n >> 1),
        (5 & a, 5 & n),
        (5 | a, 5 | n),
        (5 ^ a, 5 ^ n),
    ]:
        assert got.dtype == gt.int64
        np.testing.assert_array_equal(got.numpy(), want)
    b = gt.tensor([6, 3])
    b &= gt.tensor([3, 1])
    b |= 8
    np.testing.assert_array_equal(b.numpy(), [10, 9])


def test_bitwise_operators_on_bools_are_logical_and_floats_are_refused():
    m = gt.tensor([True, False, True])
    np.testing.assert_array_equal((m & gt.tensor([True, True, False])).numpy(), [1, 0, 0])
    np.testing.assert_array_equal((~m).numpy(), [False, True, False])
    np.testing.assert_array_equal((m ^ True).numpy(), [False, True, False])
    with pytest.raises(TypeError, match="bitwise_and: only integer and bool operands.*float32"):
        gt.ones(3) & 1
    with pytest.raises(TypeError, match="bitwise_not.*float32"):
        ~gt.ones(3)
    with pytest.raises(TypeError, match="bitwise_left_shift: only integer operands.*bool"):
        m << 1


def test_reductions_of_a_list_of_tensors_keep_the_graph():
    x = gt.tensor([1.0, 2.0], requires_grad=True)
    m = gt.mean([x, x + 2])
    assert m.requires_grad
    assert m.item() == 2.5
    m.backward()
    np.testing.assert_array_equal(x.grad.numpy(), [0.5, 0.5])
    s = gt.sum([[x, x], [x * 3, x]], axis=0)
    assert s.shape == (2, 2) and s.requires_grad
    with pytest.raises(ValueError, match="max: a list of tensors must hold one shape"):
        gt.max([x, gt.ones(3)])


def test_boolean_mask_of_the_wrong_length_is_refused():
    x = gt.ones(10, 11)
    with pytest.raises(IndexError, match=r"boolean mask of shape \(2,\).*\(10,\)"):
        x[gt.tensor([True, False])]
    with pytest.raises(IndexError, match=r"boolean mask of shape \(10,\).*\(11,\)"):
        x[..., np.ones(10, bool)]
    mask = np.arange(11) % 2 == 0
    assert x[:, mask].shape == (10, 6)
    assert x[np.ones((10, 11), bool)].shape == (110,)
    assert x[None, np.ones(10, bool)].shape == (1, 10, 11)


def test_matmul_with_a_number_and_transpose_of_a_0d_tensor():
    with pytest.raises(ValueError, match=r"matmul: operands must be at least 1-D.*\(3,\) and \(\)"):
        gt.matmul(gt.ones(3), 2.0)
    t = gt.tensor(1.5)
    assert gt.permute(t, ()).item() == 1.5 and t.transpose(0, -1).shape == () and t.T.shape == ()
    with pytest.raises(ValueError, match=r"permute: dims \(\) are not a permutation"):
        gt.ones(2, 3).permute(())
    with pytest.raises(ValueError, match=r"permute: dims \(0, 0\) are not a permutation"):
        gt.ones(2, 3).permute(0, 0)
    with pytest.raises(TypeError, match=r"transpose\(\) missing 2 required positional"):
        gt.ones(2, 3).transpose()


@pytest.mark.parametrize("fn", ["mean", "var", "std", "mse"])
def test_float16_reductions_accumulate_in_float32(fn):
    x = gt.ones(100_000, dtype=gt.float16) * 3
    if fn == "mse":
        out = gt.nn.functional.mse_loss(x, gt.zeros(100_000, dtype=gt.float16))
        want = 9.0
    else:
        out = getattr(x, fn)()
        want = {"mean": 3.0, "var": 0.0, "std": 0.0}[fn]
    assert out.dtype == gt.float16
    assert out.item() == want


def test_float16_sum_is_accumulated_in_float32():
    x = gt.full((4096,), 0.1, dtype=gt.float16)
    exact = 4096 * float(np.float16(0.1))
    assert abs(x.sum().item() - exact) <= 0.5  # float16 running sums stall near 256
