"""The 2-2-2 sigmoid network, one backpropagation step, with the numbers of the classic walkthrough.

Inputs 0.05, 0.10; targets 0.01, 0.99; sigmoid everywhere; E = sum 1/2 (target - out)^2;
learning rate 0.5; biases are not updated. Everything is float64 so the digits match the page
(after the update, where the walkthrough rounds its intermediate values, both figures are shown).
Run: python examples/two_layer_by_hand.py

Source: Matt Mazur, "A Step by Step Backpropagation Example" (2015), whose network, weights and
numbers these are.
"""

from __future__ import annotations

import gradtensor as gt

F64 = gt.float64


def network() -> dict:
    """The walkthrough's weights: W1 rows feed h1, h2; W2 rows feed o1, o2."""
    return {
        "W1": gt.tensor([[0.15, 0.20], [0.25, 0.30]], dtype=F64, requires_grad=True),
        "b1": gt.tensor(0.35, dtype=F64),
        "W2": gt.tensor([[0.40, 0.45], [0.50, 0.55]], dtype=F64, requires_grad=True),
        "b2": gt.tensor(0.60, dtype=F64),
    }


def forward(net: dict, i: gt.Tensor, target: gt.Tensor) -> tuple:
    net_h = net["W1"] @ i + net["b1"]
    out_h = gt.sigmoid(net_h)
    net_o = net["W2"] @ out_h + net["b2"]
    out_o = gt.sigmoid(net_o)
    e = 0.5 * (target - out_o) ** 2
    return net_h, out_h, net_o, out_o, e


def main(steps: int = 10_000, verbose: bool = True) -> dict:
    say = print if verbose else (lambda *a, **k: None)
    i = gt.tensor([0.05, 0.10], dtype=F64)
    target = gt.tensor([0.01, 0.99], dtype=F64)
    net = network()
    lr = 0.5

    net_h, out_h, net_o, out_o, e = forward(net, i, target)
    for t in (net_h, out_h, net_o, out_o):
        t.retain_grad()
    total = e.sum()
    total.backward()
    grads = {
        "dE_dout_o1": out_o.grad[0].item(),
        "dE_dw5": net["W2"].grad[0, 0].item(),
        "dE_dout_h1": out_h.grad[0].item(),
        "dE_dw1": net["W1"].grad[0, 0].item(),
    }

    say("Forward pass")
    say(f"  net_h1 = {net_h[0].item():.9g}")
    say(f"  out_h1 = {out_h[0].item():.9f}, out_h2 = {out_h[1].item():.9f}")
    say(f"  net_o1 = {net_o[0].item():.9f}")
    say(f"  out_o1 = {out_o[0].item():.8f}, out_o2 = {out_o[1].item():.9f}")
    say(f"  E_o1 = {e[0].item():.9f}, E_o2 = {e[1].item():.9f}, E_total = {total.item():.9f}")
    say("Backward pass, output layer")
    say(f"  dE/dout_o1 = {out_o.grad[0].item():.8f}")
    say(f"  dout_o1/dnet_o1 = {(out_o[0] * (1 - out_o[0])).item():.9f}")
    say(f"  dE/dw5 = {net['W2'].grad[0, 0].item():.9f}")
    say("Backward pass, hidden layer (h1 feeds both outputs, so the two paths add)")
    w5, w7 = net["W2"][0, 0].item(), net["W2"][1, 0].item()
    d_o = net_o.grad
    say(
        f"  dE/dout_h1 = {(d_o[0] * w5).item():.9f} + ({(d_o[1] * w7).item():.9f}) "
        f"= {out_h.grad[0].item():.9f}"
    )
    say(f"  dout_h1/dnet_h1 = {(out_h[0] * (1 - out_h[0])).item():.9f}")
    say(f"  dE/dw1 = {net['W1'].grad[0, 0].item():.9f}")

    # Every update uses the gradients computed with the old weights.
    with gt.no_grad():
        net["W1"] -= lr * net["W1"].grad
        net["W2"] -= lr * net["W2"].grad
    w1, w2 = net["W1"].detach().numpy().copy(), net["W2"].detach().numpy().copy()
    say("After the update")
    say(f"  w5 = {w2[0, 0]:.8f}, w6 = {w2[0, 1]:.9f}, w7 = {w2[1, 0]:.9f}, w8 = {w2[1, 1]:.9f}")
    say(f"  w1 = {w1[0, 0]:.9f}, w2 = {w1[0, 1]:.8f}, w3 = {w1[1, 0]:.8f}, w4 = {w1[1, 1]:.8f}")
    with gt.no_grad():
        after_one = forward(net, i, target)[4].sum().item()
    # The walkthrough rounds its intermediate values as it goes and prints 0.291027924 here.
    say(f"  E_total on the same input = {after_one:.10f} (the walkthrough, rounding as it goes: "
        "0.291027924)")  # fmt: skip

    say(f"Training on, {steps} steps in all")
    for step in range(2, steps + 1):
        for p in (net["W1"], net["W2"]):
            p.grad = None
        forward(net, i, target)[4].sum().backward()
        with gt.no_grad():
            net["W1"] -= lr * net["W1"].grad
            net["W2"] -= lr * net["W2"].grad
        if step % 2000 == 0 and step < steps:
            with gt.no_grad():
                say(f"  step {step}: E_total = {forward(net, i, target)[4].sum().item():.3g}")
    with gt.no_grad():
        *_, out_final, e_final = forward(net, i, target)
    say(
        f"After {steps} steps: E_total = {e_final.sum().item():.3g}, outputs "
        f"{out_final[0].item():.4f} and {out_final[1].item():.4f}"
    )
    return {
        "net_h1": net_h[0].item(),
        "out_h1": out_h[0].item(),
        "out_h2": out_h[1].item(),
        "net_o1": net_o[0].item(),
        "out_o1": out_o[0].item(),
        "out_o2": out_o[1].item(),
        "E_o1": e[0].item(),
        "E_o2": e[1].item(),
        "E_total": total.item(),
        **grads,
        "w1": w1.tolist(),
        "w2": w2.tolist(),
        "E_after_one": after_one,
        "E_final": e_final.sum().item(),
        "out_final": out_final.tolist(),
    }


if __name__ == "__main__":
    main()
