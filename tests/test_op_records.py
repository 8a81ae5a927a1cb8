"""Every op's record of bad inputs: each is refused with the error it names, and the message
names the op (generated from the registry, as the gradchecks are)."""

import re

import pytest

from gradtensor.ops import REGISTRY, Sample
from gradtensor.testing import sample_call

CASES = [
    pytest.param(op, bad, id=f"{name}-{i}")
    for name, op in sorted(REGISTRY.items())
    for i, bad in enumerate(op.errors)
]


@pytest.mark.parametrize("op,bad", CASES)
def test_bad_input_is_refused_with_a_message_naming_the_op(op, bad):
    fn, xs = sample_call(op, bad)
    with pytest.raises(bad.error) as err:
        fn(*xs)
    message = str(err.value)
    assert re.search(bad.match, message), f"{op.name}: {message!r} does not match {bad.match!r}"
    assert op.name in message, f"the message does not name {op.name}: {message!r}"


def test_records_hold_errors():
    assert len(CASES) >= 1, "no op records a bad input"


def _is_shape(a):
    return isinstance(a, tuple) and all(type(n) is int for n in a)


# Bad inputs every op of a kind must refuse, derived from the records: a broadcasting op given
# shapes that do not broadcast, and an op with a dim given one the input does not have.
BROADCASTING = sorted(
    name
    for name, op in REGISTRY.items()
    if getattr(op, "elementwise", False)
    and op.samples
    and sum(map(_is_shape, op.samples[0].args)) >= 2
)
WITH_DIM = sorted(
    (name, key)
    for name, op in REGISTRY.items()
    for key in ("axis", "dim")
    if any(type(s.kwargs.get(key)) is int and _is_shape(s.args[0]) for s in op.samples)
)


@pytest.mark.parametrize("name", BROADCASTING)
def test_a_broadcasting_op_refuses_shapes_that_do_not_broadcast(name):
    op = REGISTRY[name]
    sample = op.samples[0]
    shapes = iter([(2, 3), (4,)])
    args = [next(shapes, (2, 3)) if _is_shape(a) else a for a in sample.args]
    fn, xs = sample_call(op, Sample(*args, **sample.kwargs))
    with pytest.raises(ValueError, match=rf"^{re.escape(name)}: .*\(2, 3\).*\(4,\)"):
        fn(*xs)


@pytest.mark.parametrize("name,key", WITH_DIM)
def test_an_op_refuses_a_dim_its_input_does_not_have(name, key):
    op = REGISTRY[name]
    sample = next(s for s in op.samples if type(s.kwargs.get(key)) is int)
    fn, xs = sample_call(op, Sample(*sample.args, **{**sample.kwargs, key: 7}))
    with pytest.raises((ValueError, IndexError), match=rf"^{re.escape(name)}: .*7.*out of range"):
        fn(*xs)


def test_the_derived_bad_inputs_cover_the_families():
    assert {"add", "maximum", "where", "remainder", "hypot"} <= set(BROADCASTING)
    assert {"sum", "logsumexp", "var", "softmax"} <= {n for n, _ in WITH_DIM}
