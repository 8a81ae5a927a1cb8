"""Bad input gets a clear error from gradtensor that names the op, shapes, dtypes or argument."""

import warnings

import numpy as np
import pytest

import gradtensor as gt
import gradtensor.nn.functional as F


def test_matmul_shapes_that_do_not_align():
    with pytest.raises(ValueError, match=r"matmul: shapes \(2, 3\) and \(4, 5\) do not align"):
        gt.ones(2, 3) @ gt.ones(4, 5)


def test_matmul_of_a_scalar():
    with pytest.raises(ValueError, match="matmul: operands must be at least 1-D"):
        gt.matmul(gt.tensor(2.0), gt.ones(2))


@pytest.mark.parametrize("op", ["add", "subtract", "multiply", "divide", "maximum", "power"])
def test_broadcast_mismatch_names_op_and_shapes(op):
    with pytest.raises(ValueError, match=rf"{op}: shapes \(2, 3\) and \(4,\) cannot be broadcast"):
        getattr(gt, op)(gt.ones(2, 3), gt.ones(4))


def test_backward_on_non_scalar_without_gradient():
    x = gt.ones(3, requires_grad=True)
    with pytest.raises(RuntimeError, match="scalar"):
        (x * 2).backward()


def test_backward_on_a_tensor_that_does_not_require_grad():
    with pytest.raises(RuntimeError, match="does not require grad"):
        gt.ones(3).sum().backward()


def test_gradient_of_the_wrong_shape():
    x = gt.ones(3, requires_grad=True)
    with pytest.raises(ValueError, match=r"gradient of shape \(2,\)"):
        (x * 2).backward(gt.ones(2))


@pytest.mark.parametrize("dtype", [gt.int64, gt.int32, gt.bool_])
def test_requires_grad_on_integer_or_bool(dtype):
    with pytest.raises(TypeError, match="floating-point"):
        gt.tensor([1, 0], dtype=dtype, requires_grad=True)
    with pytest.raises(TypeError, match="floating-point"):
        gt.zeros(2, dtype=dtype).requires_grad_()
    with pytest.raises(TypeError, match="floating-point"):
        gt.zeros(2, dtype=dtype, requires_grad=True)


def test_unknown_keyword_is_named():
    with pytest.raises(TypeError, match="axes"):
        gt.sum(gt.ones(2, 2), axes=0)
    with pytest.raises(TypeError, match="foo"):
        F.softmax(gt.ones(3), foo=1)


@pytest.mark.parametrize(
    "op",
    [
        "sum",
        "mean",
        "max",
        "min",
        "amax",
        "amin",
        "var",
        "std",
        "logsumexp",
        "prod",
        "argmax",
        "argmin",
        "squeeze",
    ],  # fmt: skip
)
def test_axis_out_of_range(op):
    with pytest.raises(ValueError, match=rf"{op}: axis 2 is out of range"):
        getattr(gt, op)(gt.ones(2, 3), axis=2)


def test_axis_of_the_wrong_type():
    with pytest.raises(TypeError, match="axis must be an int"):
        gt.sum(gt.ones(2), axis=0.5)


def test_reshape_to_an_impossible_shape():
    with pytest.raises(ValueError, match=r"reshape: .*size 6.*\(4,\)"):
        gt.ones(2, 3).reshape(4)


def test_index_out_of_bounds():
    with pytest.raises(IndexError, match="getitem: index 5 is out of bounds"):
        gt.ones(3)[5]


def test_cross_entropy_bad_targets():
    with pytest.raises(TypeError, match="cross_entropy|nll_loss"):
        F.cross_entropy(gt.ones(2, 3), gt.tensor([0.5, 1.0]))
    with pytest.raises(IndexError, match=r"cross_entropy: target classes must lie in \[0, 3\)"):
        F.cross_entropy(gt.ones(2, 3), gt.tensor([0, 3]))
    with pytest.raises(IndexError, match="nll_loss: target classes must lie in"):
        F.nll_loss(gt.ones(2, 3), gt.tensor([0, 3]))
    with pytest.raises(ValueError, match=r"expected input \(N, C\) and target \(N,\)"):
        F.cross_entropy(gt.ones(2, 3), gt.tensor([0, 1, 2]))
    with pytest.raises(ValueError, match="reduction"):
        F.cross_entropy(gt.ones(2, 3), gt.tensor([0, 1]), reduction="avg")


def test_linear_bad_shapes_and_activation():
    with pytest.raises(ValueError, match=r"linear: input of shape \(2, 3\) and weight of shape"):
        F.linear(gt.ones(2, 3), gt.ones(4, 5))
    with pytest.raises(ValueError, match="linear: unknown activation 'swish'"):
        F.linear(gt.ones(2, 3), gt.ones(4, 3), activation="swish")
    with pytest.raises(ValueError, match="linear: bias of shape"):
        F.linear(gt.ones(2, 3), gt.ones(4, 3), gt.ones(3))


def test_inplace_result_shape_mismatch():
    t = gt.zeros(3)
    with pytest.raises(ValueError, match=r"\+=: the result has shape \(2, 3\)"):
        t += gt.ones(2, 3)


def test_inplace_float_into_int():
    t = gt.zeros(3, dtype=gt.int64)
    with pytest.raises(TypeError, match="float"):
        t += 0.5


def test_numpy_on_a_tensor_that_requires_grad():
    with pytest.raises(RuntimeError, match="detach"):
        gt.ones(2, requires_grad=True).numpy()


def test_item_of_many_elements_and_bool_ambiguity():
    with pytest.raises(ValueError, match="one-element"):
        gt.ones(2).item()
    with pytest.raises(ValueError, match="ambiguous"):
        bool(gt.ones(2))


def test_split_sizes_that_do_not_fit():
    with pytest.raises(ValueError, match=r"split: sizes \[2, 2\] do not add up to the 5 elements"):
        gt.split(gt.ones(5), [2, 2])
    with pytest.raises(ValueError, match="split: the size of each piece must be positive, got 0"):
        gt.split(gt.ones(5), 0)
    with pytest.raises(ValueError, match="chunk: chunks must be a positive int, got 0"):
        gt.ones(5).chunk(0)
    with pytest.raises(ValueError, match="tensor_split: the number of pieces must be positive"):
        gt.tensor_split(gt.ones(5), -1)


def test_concatenate_and_stack_mismatches():
    with pytest.raises(ValueError, match="concatenate"):
        gt.concatenate([gt.ones(2, 3), gt.ones(2, 4)], axis=0)
    with pytest.raises(ValueError, match="stack: all tensors must have one shape"):
        gt.stack([gt.ones(2), gt.ones(3)])


def test_cuda_request_without_cuda_says_why():
    if gt.cuda.is_available():
        pytest.skip("a CUDA GPU is present, so asking for it does not fail")
    with pytest.raises(RuntimeError, match="CUDA is not available: "):
        gt.zeros(2, device="cuda")


def test_unknown_device_and_dtype():
    with pytest.raises(ValueError, match="unknown device type 'tpu'"):
        gt.zeros(2, device="tpu")
    with pytest.raises(TypeError, match="unknown dtype"):
        gt.zeros(2, dtype="float128x")


def test_object_data_is_rejected():
    with pytest.raises(TypeError, match="tensor: cannot make a tensor"):
        gt.tensor(["a", "b"])


def test_errors_do_not_leak_numpy_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ValueError):
            gt.ones(2, 3) + gt.ones(3, 2)


def test_stable_functions_at_large_magnitudes_in_float32():
    x = gt.tensor([-1e4, -30.0, 0.0, 30.0, 1e4], requires_grad=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any NumPy overflow/invalid warning fails the test
        outs = {
            "log_softmax": F.log_softmax(x, axis=0),
            "softplus": F.softplus(x),
            "sigmoid": F.sigmoid(x),
            "bce": F.binary_cross_entropy_with_logits(
                x, gt.tensor([0.0, 1.0, 1.0, 0.0, 1.0]), reduction="none"
            ),
            "ce": F.cross_entropy(x.reshape(1, 5), gt.tensor([0])).reshape(1),
        }
        for name, y in outs.items():
            assert np.isfinite(y.detach().numpy()).all(), name
            (g,) = gt.grad(y.sum(), x)
            assert np.isfinite(g.numpy()).all(), name
    np.testing.assert_allclose(
        F.softplus(x).detach().numpy(), [0, 9.357623e-14, np.log(2), 30, 1e4], rtol=1e-6
    )
    np.testing.assert_allclose(F.sigmoid(x).detach().numpy()[[0, 4]], [0.0, 1.0])


# -- every public function names itself when given bad input ----------------------------------

_p = gt.nn.Parameter(gt.ones(3))
NAMED_ERRORS = [
    ("tensor", lambda: gt.tensor(np.array([object()]))),
    ("tensor", lambda: gt.tensor("abc")),
    ("tensor", lambda: gt.tensor(np.ones(2, complex))),
    ("tensor", lambda: gt.tensor([[1, 2], [3]])),
    ("tensor", lambda: gt.tensor([1.0], dtype="foo")),
    ("zeros", lambda: gt.zeros(-1)),
    ("zeros", lambda: gt.zeros(2.5)),
    ("ones", lambda: gt.ones("a")),
    ("full", lambda: gt.full((2,), "x")),
    ("arange", lambda: gt.arange("a")),
    ("arange", lambda: gt.arange(0, 5, 0)),
    ("eye", lambda: gt.eye(-1)),
    ("eye", lambda: gt.eye(2.5)),
    ("randn", lambda: gt.randn(-1)),
    ("randn", lambda: gt.randn(2, dtype=gt.int64)),
    ("randint", lambda: gt.randint(5, 1, (2,))),
    ("randint", lambda: gt.randint(0, 5, "a")),
    ("manual_seed", lambda: gt.manual_seed("a")),
    ("manual_seed", lambda: gt.manual_seed(-1)),
    ("set_default_dtype", lambda: gt.set_default_dtype(object)),
    ("from_numpy", lambda: gt.from_numpy([1])),
    ("sum", lambda: gt.ones(2, 2).sum(axis=True)),
    ("sum", lambda: gt.ones(2, 2).sum(axis="a")),
    ("reshape", lambda: gt.ones(4).reshape("a")),
    ("getitem", lambda: gt.ones(3)[1.5]),
    ("getitem", lambda: gt.ones(3)[0, 0]),
    ("concatenate", lambda: gt.cat([gt.ones(2, 3), gt.ones(3, 2)])),
    ("concatenate", lambda: gt.cat("ab")),
    ("clip", lambda: gt.clip(gt.ones(3), "a", 1)),
    ("softmax", lambda: F.softmax(gt.ones(2), 5)),
    ("gelu", lambda: F.gelu("abc")),
    ("mse_loss", lambda: F.mse_loss(gt.ones(2), "ab")),
    ("dropout", lambda: F.dropout(gt.ones(2), "a")),
    ("linear", lambda: F.linear(gt.ones(0, 3), gt.ones(2, 4))),
    ("expand_dims", lambda: gt.expand_dims("abc", 0)),
    ("copy", lambda: gt.copy(object())),
    ("abs", lambda: gt.abs(np.full(3, "x"))),
    ("SGD", lambda: gt.optim.SGD([_p], lr="a")),
    ("SGD", lambda: gt.optim.SGD([{"params": [_p], "lr": "x"}], lr=0.1)),
    ("Adam", lambda: gt.optim.Adam([_p], betas="ab")),
    ("backward", lambda: gt.ones(2, requires_grad=True).sum().backward("a")),
    ("grad", lambda: gt.grad(5, gt.ones(2, requires_grad=True))),
    ("grad", lambda: gt.grad(gt.ones(2, requires_grad=True).sum(), "a")),
    ("format", lambda: f"{gt.ones(2):.2f}"),
]


@pytest.mark.parametrize("name,call", NAMED_ERRORS, ids=[f"{n}-{i}" for i, (n, _) in
                                                         enumerate(NAMED_ERRORS)])  # fmt: skip
def test_bad_input_errors_name_the_function_once(name, call):
    with pytest.raises((TypeError, ValueError, IndexError, RuntimeError)) as info:
        call()
    msg = str(info.value)
    assert msg.startswith(f"{name}: ") or msg.startswith(f"{name}."), msg
    assert not msg.startswith(f"{name}: {name}"), msg


def test_a_0d_tensor_takes_a_format_spec():
    assert f"{gt.tensor(0.123456):.3f}" == "0.123"
    assert f"{gt.tensor([2.5]):.1f}" == "2.5"
    assert f"{gt.ones(2)}" == str(gt.ones(2))


def test_grad_hint_names_its_own_keyword():
    x = gt.ones(3, requires_grad=True)
    with pytest.raises(RuntimeError, match="grad_outputs="):
        gt.grad(x * 2, x)
    with pytest.raises(RuntimeError, match="gradient="):
        (x * 2).backward()
