"""Every registered op, proven: float64 finite-difference gradchecks of first and second order.

The cases are generated from the op registry, so an op is tested the moment it is registered.
"""

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
