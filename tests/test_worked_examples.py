"""The classic walkthroughs (shared/WORKED-EXAMPLES.md, sections 1, 2 and 4) with their numbers."""

import importlib.util
import pathlib

import numpy as np
import pytest

import gradtensor as gt

EXAMPLES = pathlib.Path(__file__).resolve().parents[1] / "examples"


def load_example(name):
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_chain_rule_numbers(capsys):
    r = load_example("chain_rule").main()
    assert (r["q"], r["f"]) == (3.0, -12.0)
    assert (r["dx"], r["dy"], r["dz"]) == (-4.0, -4.0, 3.0)
    out = capsys.readouterr().out
    assert "df/dx = -4" in out and "df/dz = 3" in out


@pytest.fixture(scope="module")
def walkthrough():
    return load_example("two_layer_by_hand").main(verbose=False)


def test_two_layer_forward(walkthrough):
    r = walkthrough
    assert r["net_h1"] == pytest.approx(0.3775, abs=1e-12)
    assert r["out_h1"] == pytest.approx(0.593269992, abs=5e-10)
    assert r["out_h2"] == pytest.approx(0.596884378, abs=5e-10)
    assert r["net_o1"] == pytest.approx(1.105905967, abs=5e-10)
    assert r["out_o1"] == pytest.approx(0.75136507, abs=5e-9)
    assert r["out_o2"] == pytest.approx(0.772928465, abs=5e-10)
    assert r["E_o1"] == pytest.approx(0.274811083, abs=5e-10)
    assert r["E_o2"] == pytest.approx(0.023560026, abs=5e-10)
    assert r["E_total"] == pytest.approx(0.298371109, abs=5e-10)


def test_two_layer_backward_and_update(walkthrough):
    r = walkthrough
    assert r["dE_dout_o1"] == pytest.approx(0.74136507, abs=5e-9)
    assert r["dE_dw5"] == pytest.approx(0.082167041, abs=5e-10)
    assert r["dE_dout_h1"] == pytest.approx(0.036350306, abs=5e-10)
    assert r["dE_dw1"] == pytest.approx(0.000438568, abs=5e-10)
    np.testing.assert_allclose(
        r["w2"], [[0.35891648, 0.408666186], [0.511301270, 0.561370121]], atol=5e-9
    )
    np.testing.assert_allclose(
        r["w1"], [[0.149780716, 0.19956143], [0.24975114, 0.29950229]], atol=5e-9
    )
    assert r["E_after_one"] == pytest.approx(0.2910277737, abs=5e-11)


def test_two_layer_ten_thousand_steps(walkthrough):
    r = walkthrough
    assert r["E_final"] == pytest.approx(3.5e-5, rel=0.05)
    assert r["out_final"][0] == pytest.approx(0.0159, abs=5e-5)
    assert r["out_final"][1] == pytest.approx(0.9841, abs=5e-5)


def test_numerical_gradient_check_section_4():
    # Section 4: central differences in float64 agree with the analytic gradient to well under 1e-6.
    gt.manual_seed(0)
    x = gt.randn(3, 4, dtype=gt.float64, requires_grad=True)
    w = gt.randn(4, 2, dtype=gt.float64, requires_grad=True)

    def f(x, w):
        return (gt.tanh(x @ w) ** 2).sum()

    f(x, w).backward()
    eps = 1e-6
    for t in (x, w):
        flat = t.data.reshape(-1)
        for k in range(flat.size):
            old = flat[k]
            flat[k] = old + eps
            hi = f(x, w).item()
            flat[k] = old - eps
            lo = f(x, w).item()
            flat[k] = old
            numeric = (hi - lo) / (2 * eps)
            analytic = t.grad.data.reshape(-1)[k]
            assert abs(numeric - analytic) / max(abs(numeric) + abs(analytic), 1e-12) < 1e-6
    assert gt.testing.gradcheck(f, [x, w])
