"""viz: the DOT text of the tape (its nodes, edges and labels), and rendering it."""

import re
import shutil

import pytest

import gradtensor as gt
import gradtensor.nn.functional as F
from gradtensor import nn, viz


def _parse(dot):
    """(labels by node id, set of (src, dst) edges) from to_dot's output."""
    labels = dict(re.findall(r'^\s+(\w+) \[.*?label="((?:[^"\\]|\\.)*)"\];$', dot, re.M))
    edges = set(re.findall(r"^\s+(\w+) -> (\w+)", dot, re.M))
    return labels, edges


def _by_first_line(labels, first):
    return [k for k, v in labels.items() if v.split("\\n")[0] == first]


def test_structure_of_a_small_expression():
    x = gt.tensor([-2.0], requires_grad=True)
    y = gt.tensor([5.0], requires_grad=True)
    z = gt.tensor([-4.0], requires_grad=True)
    f = (x + y) * z
    f.backward(retain_graph=True)
    dot = viz.to_dot(f, {"x": x, "y": y, "z": z})
    assert dot.startswith("digraph gradtensor {") and dot.rstrip().endswith("}")
    labels, edges = _parse(dot)
    (add,) = _by_first_line(labels, "add")
    (mul,) = _by_first_line(labels, "multiply")
    (nx,), (ny,), (nz,) = (_by_first_line(labels, n) for n in "xyz")
    root = next(k for k in labels if k not in (add, mul, nx, ny, nz))
    assert edges == {(nx, add), (ny, add), (add, mul), (nz, mul), (mul, root)}
    # Shape, dtype, value and gradient, the numbers of the textbook example.
    assert labels[nx] == "x\\n(1,) float32\\nvalue [-2.]\\ngrad [-4.]"
    assert labels[nz] == "z\\n(1,) float32\\nvalue [-4.]\\ngrad [3.]"
    assert "value [-12.]" in labels[root]
    assert labels[add] == "add\\n(1,) float32"


def test_shared_subexpressions_appear_once():
    w = gt.tensor([1.0, 2.0], requires_grad=True)
    h = w * w
    out = (h + h.exp()).sum()
    labels, edges = _parse(viz.to_dot(out))
    assert len(_by_first_line(labels, "multiply")) == 1
    (mul,) = _by_first_line(labels, "multiply")
    (leaf,) = [k for k, v in labels.items() if v.startswith("(2,) float32")]
    assert (leaf, mul) in edges
    assert sum(1 for s, _ in edges if s == mul) == 2  # feeds exp and add


def test_big_tensors_hide_values_constants_are_left_out():
    gt.manual_seed(0)
    model = nn.MLP([8, 4, 3])
    x = gt.randn(5, 8)  # an input that needs no gradient is not on the tape
    loss = F.cross_entropy(model(x), gt.tensor([0, 1, 2, 0, 1]))
    dot = viz.to_dot(loss, dict(model.named_parameters()))
    labels, edges = _parse(dot)
    # The node says which implementation ran: the kernels, where they are on.
    lins = _by_first_line(labels, "linear [kernel]" if gt.kernels_enabled() else "linear")
    assert len(lins) == 2
    assert any("activation='relu'" in labels[k] for k in lins)
    w0 = _by_first_line(labels, "layers.0.weight")[0]
    assert "value" not in labels[w0]  # 32 elements: no values
    b1 = _by_first_line(labels, "layers.1.bias")[0]
    assert "value [" in labels[b1]  # 3 elements: shown
    leaves = [k for k, v in labels.items() if v.startswith("layers.")]
    assert len(leaves) == 4
    assert "(5, 8)" not in dot  # the input x
    # After backward (graph freed) the text still renders: op names, no saved shapes.
    loss.backward()
    assert "linear" in viz.to_dot(loss)


def test_leaf_and_errors():
    t = gt.tensor([1.0, 2.0])
    labels, edges = _parse(viz.to_dot(t))
    assert list(labels.values()) == ["(2,) float32\\nvalue [1., 2.]"] and not edges
    with pytest.raises(TypeError, match="Tensor"):
        viz.to_dot([1, 2])
    with pytest.raises(ValueError, match=".svg, .png"):
        viz.render(t, "graph.gif")


def test_quotes_are_escaped():
    t = gt.tensor([1.0], requires_grad=True)
    dot = viz.to_dot(t * 2, {'a "quoted" name': t})
    assert 'a \\"quoted\\" name' in dot


def test_render_without_dot_says_how_to_get_it(monkeypatch, tmp_path):
    import builtins

    real_import = builtins.__import__

    def no_graphviz(name, *args, **kwargs):
        if name == "graphviz":
            raise ImportError("No module named 'graphviz'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_graphviz)
    monkeypatch.setattr(shutil, "which", lambda name: None)
    x = gt.tensor([1.0], requires_grad=True)
    with pytest.raises(RuntimeError, match="apt-get install graphviz.*pip install graphviz"):
        viz.render(x * 2, tmp_path / "g.svg")


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz's dot program is not installed")
def test_render_svg_and_png(tmp_path):
    x = gt.tensor([1.0, 2.0], requires_grad=True)
    y = (x * x).sum()
    svg = viz.render(y, tmp_path / "g.svg")
    text = (tmp_path / "g.svg").read_text()
    assert svg.endswith("g.svg") and "<svg" in text and "multiply" in text
    viz.render(y, tmp_path / "g.png")
    assert (tmp_path / "g.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
