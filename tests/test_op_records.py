"""Every op's record of bad inputs: each is refused with the error it names, and the message
names the op (generated from the registry, as the gradchecks are)."""

import re

import pytest

from gradtensor.ops import REGISTRY
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
