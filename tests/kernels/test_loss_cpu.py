"""The cross-entropy loops against the array path they stand in for (gradtensor.ops.loss)."""

import numpy as np
import pytest

import gradtensor as gt
import gradtensor.nn.functional as F
from gradtensor import kernels
from gradtensor.ops.loss import _cross_entropy, _cross_entropy_grad

RTOL = {np.float32: 2e-6, np.float64: 1e-14}


def _logits(dtype, rows=7, classes=5, seed=0):
    x = np.random.default_rng(seed).standard_normal((rows, classes)).astype(dtype) * 4
    x[1] = -np.inf  # a row with no finite logit
    x[2, 1] = np.nan
    x[3, 0] = np.inf
    x[4, 2] = np.finfo(dtype).max  # exp of the unshifted logit would overflow
    return x


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("ignore_index", [-100, 3])
def test_the_loops_give_the_array_paths_loss_and_gradient(dtype, reduction, ignore_index):
    x = _logits(dtype)
    t = np.array([0, 4, 1, -100 if ignore_index == -100 else 0, 2, 3, 3])
    with np.errstate(all="ignore"):  # the row of -inf: log(0), as the op's forward meets it
        y, aux = _cross_entropy.fwd(np, x, t, reduction=reduction, ignore_index=ignore_index)
        g = np.linspace(0.5, 2, 7).astype(dtype) if reduction == "none" else np.asarray(1.5, dtype)
        want, _ = _cross_entropy_grad(
            g, y, x, t, needs=(True, False), aux=aux, reduction=reduction, ignore_index=ignore_index
        )
    impl = _cross_entropy.impls[0]
    assert impl.accepts(x, t)
    with np.errstate(all="ignore"):
        y2, aux2 = impl.forward(np, x, t, reduction=reduction, ignore_index=ignore_index)
        got, _ = impl.backward(
            g, y2, x, t, needs=(True, False), aux=aux2, reduction=reduction,
            ignore_index=ignore_index,
        )  # fmt: skip
    np.testing.assert_allclose(y2, y, rtol=RTOL[dtype], equal_nan=True)
    assert np.array_equal(np.isnan(got), np.isnan(want))
    np.testing.assert_allclose(got, want, rtol=RTOL[dtype], atol=1e-7, equal_nan=True)
    assert got.dtype == x.dtype and np.asarray(y2).dtype == x.dtype


def test_a_class_out_of_range_is_refused_with_the_range():
    x = np.zeros((3, 4), np.float32)
    for bad in ([0, 4, 1], [0, -1, 1]):
        with pytest.raises(
            IndexError, match=r"target classes must lie in \[0, 4\); got -?\d\.\.\d"
        ):
            kernels.cross_entropy_forward(x, np.array(bad), -100)
    with pytest.raises(IndexError, match=r"cross_entropy: target classes must lie in \[0, 4\)"):
        F.cross_entropy(gt.tensor(x), gt.tensor(np.array([0, 5, 1])))


@pytest.mark.parametrize(
    "x, t",
    [
        (np.zeros((3, 4), np.float32, order="F"), np.zeros(3, int)),
        (np.zeros((0, 4), np.float32), np.zeros(0, int)),
        (np.zeros((3, 0), np.float32), np.zeros(3, int)),
        (np.zeros((3, 4), np.float16), np.zeros(3, int)),
        (np.zeros((3, 4, 2), np.float32), np.zeros((3, 2), int)),
        (np.zeros((3, 4), np.float32), np.zeros(3)),
        (np.zeros((3, 4), np.float32), np.zeros(2, int)),
    ],
    ids=["column-major", "no rows", "no classes", "float16", "3-D", "float targets", "short"],
)
def test_what_the_loops_do_not_take_goes_to_the_array_path(x, t):
    assert not kernels.cross_entropy_accepts(x, t)


def test_the_op_with_and_without_kernels_agrees():
    x = gt.tensor(
        np.random.default_rng(1).standard_normal((4, 5)), dtype="float64", requires_grad=True
    )
    t = gt.tensor(np.array([1, 2, -100, 4]))
    grads = []
    for on in (True, False):
        with gt.use_kernels(on):
            loss = F.cross_entropy(x, t, label_smoothing=0.0)
            (g,) = gt.autograd.grad(loss, [x])
        grads.append((loss.item(), g.data))
    np.testing.assert_allclose(grads[0][0], grads[1][0], rtol=1e-14)
    np.testing.assert_allclose(grads[0][1], grads[1][1], rtol=1e-13)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_kept_plans_give_the_calls_results_and_spare_what_the_caller_holds(reduction):
    x = _logits(np.float32)
    t = np.array([0, 4, 1, 3, 2, 3, 3])
    g = np.linspace(0.5, 2, 7).astype(np.float32) if reduction == "none" else np.float32(1.5)
    g = np.asarray(g)
    impl = _cross_entropy.impls[0]
    params = dict(reduction=reduction, ignore_index=3)
    with np.errstate(all="ignore"):
        y, aux = impl.forward(np, x, t, **params)
        want, _ = impl.backward(g, y, x, t, needs=(True, False), aux=aux, **params)
        forward = impl.plan(np, x, t, keep=True, **params)
        backward = impl.plan_backward(g, y, x, t, needs=(True, False), aux=aux, keep=True, **params)

        def run():
            y2, aux2 = forward(x, t)
            gx, _ = backward(g, x, t, aux2)
            assert np.array_equal(np.asarray(y2), np.asarray(y), equal_nan=True)
            assert np.array_equal(gx, want, equal_nan=True)
            return y2, gx

        y2, gx = run()
        places = [a.__array_interface__["data"][0] for a in (y2, gx)]
        del y2, gx
        y3, gx3 = run()
        assert [a.__array_interface__["data"][0] for a in (y3, gx3)] == places  # reused
        y4, gx4 = run()  # y3 and gx3 are still held: new arrays
        assert not np.shares_memory(y3, y4) and not np.shares_memory(gx3, gx4)
