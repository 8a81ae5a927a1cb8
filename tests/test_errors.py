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
    ["sum", "mean", "max", "min", "var", "std", "logsumexp", "prod", "argmax", "argmin", "squeeze"],
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


def test_split_into_unequal_sections():
    with pytest.raises(ValueError, match="split: an axis of size 5 cannot be split into 2"):
        gt.split(gt.ones(5), 2)


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
