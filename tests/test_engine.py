"""The engine alone: backward() over hand-made nodes whose derivative is a fake, no op involved."""

import numpy as np
import pytest

from gradtensor.autograd.engine import backward
from gradtensor.autograd.graph import Meta, Node
from gradtensor.tensor import Tensor


class Scale:
    """A fake derivative: each input's gradient is the output's times a constant."""

    def __init__(self, name, factors, log):
        self.name, self.factors, self.log = name, factors, log

    def backward(self, node, gouts, raw):
        self.log.append((self.name, raw))
        return [None if f is None else gouts[0] * f for f in self.factors]


def _leaf(value):
    t = Tensor._make(np.array(value, dtype=np.float64))
    t.requires_grad = True
    return t


def _node(fn, inputs, nxt):
    return Node(fn, inputs, Meta((), np.dtype(np.float64), None), {}, tuple(nxt))


def test_backward_runs_each_node_once_after_all_its_consumers_and_accumulates_at_leaves():
    log = []
    a, b = _leaf(1.0), _leaf(2.0)
    # u = f(a, b); v = g(u, a); root = h(u, v): u is reached twice, a three times.
    u = _node(Scale("u", [2.0, 3.0], log), [a, b], [a, b])
    v = _node(Scale("v", [5.0, 7.0], log), [None, a], [(u, 0), a])
    root = _node(Scale("root", [1.0, 10.0], log), [None, None], [(u, 0), (v, 0)])
    out = Tensor._make(np.array(0.0), root)
    backward([out], [Tensor._make(np.array(1.0))])
    # Reverse creation order: root, then v, then u (which waits for both of its consumers).
    assert log == [("root", True), ("v", True), ("u", True)]
    g_u = 1.0 + 10.0 * 5.0
    np.testing.assert_allclose(a.grad.data, 2.0 * g_u + 10.0 * 7.0)
    np.testing.assert_allclose(b.grad.data, 3.0 * g_u)
    assert isinstance(a.grad, Tensor) and a.grad.data.dtype == np.float64


def test_backward_with_inputs_returns_gradients_and_leaves_grad_alone():
    log = []
    a, b = _leaf(1.0), _leaf(2.0)
    n = _node(Scale("n", [4.0, None], log), [a, b], [a, None])
    out = Tensor._make(np.array(0.0), n)
    got = backward([out], [Tensor._make(np.array(2.0))], inputs=[a, b])
    np.testing.assert_allclose(got[0].data, 8.0)
    assert got[1] is None and a.grad is None and b.grad is None


def test_a_freed_graph_refuses_a_second_backward():
    log = []
    a = _leaf(1.0)
    n = _node(Scale("n", [1.0], log), [a], [a])
    out = Tensor._make(np.array(0.0), n)
    backward([out], [Tensor._make(np.array(1.0))])
    with pytest.raises(RuntimeError, match="second time"):
        backward([out], [Tensor._make(np.array(1.0))])


def test_a_chain_runs_in_order_and_a_join_after_it_waits_for_every_branch():
    # Each link of a chain has one pending child, which runs next without the heap; where a
    # chain meets another branch, the join must still wait for both.
    log = []
    a = _leaf(1.0)
    base = _node(Scale("base", [2.0], log), [a], [a])
    left = _node(Scale("left", [3.0], log), [None], [(base, 0)])
    links = [left]
    for i in range(4):
        links.append(_node(Scale(f"link{i}", [1.5], log), [None], [(links[-1], 0)]))
    right = _node(Scale("right", [5.0], log), [None], [(base, 0)])
    root = _node(Scale("root", [1.0, 1.0], log), [None, None], [(links[-1], 0), (right, 0)])
    backward([Tensor._make(np.array(0.0), root)], [Tensor._make(np.array(1.0))])
    names = [n for n, _ in log]
    assert names == ["root", "right", "link3", "link2", "link1", "link0", "left", "base"]
    np.testing.assert_allclose(a.grad.data, 2.0 * (3.0 * 1.5**4 + 5.0))
