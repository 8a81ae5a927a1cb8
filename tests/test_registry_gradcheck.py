"""Every registered op, proven: float64 finite-difference gradchecks of first and second order.

The cases are generated from the op registry, so an op is tested the moment it is registered.
"""

import numpy as np
import pytest

import gradtensor as gt
from gradtensor.ops import REGISTRY
from gradtensor.testing import gradcheck, gradgradcheck, sample_call

DIFFERENTIABLE = {name: op for name, op in REGISTRY.items() if getattr(op, "differentiable", True)}
CASES = [
    pytest.param(op, i, id=f"{name}-{i}")
    for name, op in sorted(DIFFERENTIABLE.items())
    for i in range(len(op.samples))
]


@pytest.mark.parametrize("name", sorted(DIFFERENTIABLE))
def test_every_differentiable_op_has_samples(name):
    assert DIFFERENTIABLE[name].samples, f"op {name!r} is registered without sample inputs"


@pytest.mark.parametrize("op,i", CASES)
def test_gradcheck(op, i):
    fn, xs = sample_call(op, op.samples[i])
    assert gradcheck(fn, xs, rtol=op.samples[i].rtol)


@pytest.mark.parametrize("op,i", CASES)
def test_gradgradcheck(op, i):
    fn, xs = sample_call(op, op.samples[i])
    assert gradgradcheck(fn, xs, rtol=op.samples[i].rtol)


COMPOSED = [
    pytest.param(op, i, id=f"{name}-{i}")
    for name, op in sorted(REGISTRY.items())
    if getattr(op, "composite", None) is not None
    for i in range(len(op.samples))
]


@pytest.mark.parametrize("kernels", [True, False], ids=["kernels", "arrays"])
@pytest.mark.parametrize("op,i", COMPOSED)
def test_a_declared_composite_has_the_ops_value_and_gradient(op, i, kernels):
    """Gradients of gradients of a fused op come from its composite: the two must agree."""
    assert len(COMPOSED) >= 10  # linear and cross_entropy declare theirs
    with gt.use_kernels(kernels):
        fn, xs = sample_call(op, op.samples[i])
        y = fn(*xs)
        params = {k: v for k, v in y.grad_fn.params.items() if k != "aux"}
        z = op.composite(*y.grad_fn.inputs, **params)
        np.testing.assert_allclose(y.detach().numpy(), z.detach().numpy(), rtol=1e-12, atol=1e-14)
        g = gt.tensor(np.random.default_rng(i).standard_normal(y.shape))
        ours = gt.grad(y, xs, g, allow_unused=True)
        theirs = gt.grad(z, xs, g, allow_unused=True)
    for a, b in zip(ours, theirs, strict=True):
        assert (a is None) == (b is None)
        if a is not None:
            np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-10, atol=1e-12)


def test_gradcheck_catches_a_wrong_derivative():
    @gt.ops.primitive("wrong_square_for_test", save="x", samples=[])
    def wrong(xp, x):
        return x * x

    wrong.defvjp(lambda g, y, x: g * x)  # should be 2 * g * x
    try:
        x = gt.tensor([1.0, 2.0], dtype=gt.float64, requires_grad=True)
        with pytest.raises(gt.testing.GradcheckError, match="input 0"):
            gradcheck(lambda t: wrong(t), [x])
    finally:
        del REGISTRY["wrong_square_for_test"]


def test_engine_rejects_a_gradient_of_the_wrong_shape():
    @gt.ops.primitive("bad_shape_for_test", save="", samples=[])
    def bad(xp, x):
        return x.sum()

    bad.defvjp(lambda g, y, x: g)  # forgets to broadcast back to x's shape
    try:
        x = gt.ones(3, requires_grad=True)
        with pytest.raises(RuntimeError, match="bad_shape_for_test.*shape"):
            bad(x).backward()
    finally:
        del REGISTRY["bad_shape_for_test"]
