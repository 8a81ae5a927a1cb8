"""Backpropagation as the chain rule, one neuron per layer, then many.

    python examples/one_neuron_chain.py

Part 1 is a chain of single sigmoid neurons, z(l) = w(l) a(l-1) + b(l), a(l) = sigma(z(l)), with the
cost C0 = (a(L) - y)^2 of one training example. The script prints each factor of

    dC0/dw(L)   = a(L-1) * sigma'(z(L)) * 2 (a(L) - y)
    dC0/db(L)   =          sigma'(z(L)) * 2 (a(L) - y)
    dC0/da(L-1) = w(L)   * sigma'(z(L)) * 2 (a(L) - y)

next to the gradient gradtensor computes, then repeats the rule one layer back, where
dC0/da(L-1) takes the place of 2 (a(L) - y).

Part 2 gives layer L-1 three neurons and layer L two: a neuron of layer L-1 feeds every neuron
of layer L, so its derivative is a sum over those paths. Part 3 averages the cost over a few
examples: the gradient of the average is the average of the gradients.

Source: 3Blue1Brown, "Backpropagation calculus" (Neural Networks, chapter 4), whose notation
this follows.
"""

from __future__ import annotations

from typing import Any

import gradtensor as gt


def _scalar(v: float, grad: bool = True) -> gt.Tensor:
    return gt.tensor(v, dtype=gt.float64, requires_grad=grad)


def _sigmoid_prime(a: float) -> float:
    return a * (1 - a)  # sigma'(z) = sigma(z) (1 - sigma(z)) = a (1 - a)


def _row(label: str, by_hand: float, ours: float | None = None) -> None:
    tail = "" if ours is None else f"   gradtensor: {ours: .10f}"
    print(f"  {label:<44} = {by_hand: .10f}{tail}")


def chain(a0: float = 0.8, y: float = 1.0, ws=(0.6, -1.2, 1.5), bs=(0.1, 0.3, -0.4)) -> dict:
    """One neuron per layer: print the chain-rule factors beside gradtensor's gradients."""
    w = [_scalar(v) for v in ws]
    b = [_scalar(v) for v in bs]
    a = [_scalar(a0, grad=False)]
    for wl, bl in zip(w, b, strict=True):
        z = wl * a[-1] + bl
        a.append(gt.sigmoid(z))
        a[-1].retain_grad()  # keep dC0/da(l) of this intermediate value for printing
    cost = (a[-1] - y) ** 2
    cost.backward()

    L = len(w)
    act = [float(t.item()) for t in a]
    print(f"Part 1: one neuron per layer, {L} layers, input a(0) = {a0}, target y = {y}")
    print(
        "  forward: "
        + ", ".join(f"a({i}) = {v:.6f}" for i, v in enumerate(act[1:], 1))
        + f", C0 = {cost.item():.6f}"
    )
    upstream = 2 * (act[L] - y)  # dC0/da(L)
    rows = []
    for layer in range(L, 0, -1):
        name = "2 (a(L) - y)" if layer == L else f"dC0/da({layer})"
        sp = _sigmoid_prime(act[layer])
        dw = act[layer - 1] * sp * upstream
        db = sp * upstream
        da = w[layer - 1].item() * sp * upstream
        print(
            f"\n layer {layer}"
            + (
                " (the last, L)"
                if layer == L
                else f": the same rule, with dC0/da({layer}) in place of 2 (a(L) - y)"
            )
        )
        _row(f"a({layer - 1})", act[layer - 1])
        _row(f"sigma'(z({layer})) = a({layer}) (1 - a({layer}))", sp)
        _row(name, upstream, a[layer].grad.item())
        _row(f"dC0/dw({layer}) = product of the three", dw, w[layer - 1].grad.item())
        _row(f"dC0/db({layer}) = sigma'(z) * {name}", db, b[layer - 1].grad.item())
        if layer > 1:
            _row(
                f"dC0/da({layer - 1}) = w({layer}) * sigma'(z) * {name}",
                da,
                a[layer - 1].grad.item(),
            )
        rows.append(
            {
                "layer": layer,
                "a_prev": act[layer - 1],
                "sigma_prime": sp,
                "upstream": upstream,
                "dw": dw,
                "db": db,
                "da_prev": da,
                "gt_dw": w[layer - 1].grad.item(),
                "gt_db": b[layer - 1].grad.item(),
                "gt_da_prev": a[layer - 1].grad.item() if layer > 1 else None,
            }
        )
        upstream = da
    return {"cost": cost.item(), "layers": rows}


def many(seed: int = 0) -> dict:
    """Layer L-1 with 3 neurons feeding layer L with 2: dC0/da_k(L-1) sums over the paths."""
    gt.manual_seed(seed)
    a_prev = gt.rand(3, dtype=gt.float64, requires_grad=True)  # a(L-1), as if from below
    W = gt.randn(2, 3, dtype=gt.float64, requires_grad=True)  # W[j, k]: from k into j
    bias = gt.randn(2, dtype=gt.float64, requires_grad=True)
    y = gt.tensor([0.0, 1.0], dtype=gt.float64)
    a_out = gt.sigmoid(W @ a_prev + bias)
    cost = ((a_out - y) ** 2).sum()
    cost.backward()

    aj, yj = a_out.data, y.data
    print("\nPart 2: three neurons in layer L-1, two in layer L, C0 = sum_j (a_j(L) - y_j)^2")
    print(
        "  a_k(L-1) feeds both neurons of layer L, so dC0/da_k(L-1) is a sum over j of\n"
        "  w_jk(L) * sigma'(z_j(L)) * 2 (a_j(L) - y_j):"
    )
    sums = []
    for k in range(3):
        terms = [W.data[j, k] * _sigmoid_prime(aj[j]) * 2 * (aj[j] - yj[j]) for j in range(2)]
        sums.append(sum(terms))
        parts = " + ".join(f"({t: .6f})" for t in terms)
        print(f"  k = {k}: {parts} = {sum(terms): .10f}   gradtensor: {a_prev.grad.data[k]: .10f}")
    j, k = 1, 2
    dw = a_prev.data[k] * _sigmoid_prime(aj[j]) * 2 * (aj[j] - yj[j])
    print(
        f"  a weight has one path: dC0/dw_{j}{k} = a_{k}(L-1) * sigma'(z_{j}) * 2 (a_{j} - y_{j})"
        f" = {dw:.10f}   gradtensor: {W.grad.data[j, k]:.10f}"
    )
    return {
        "path_sums": sums,
        "gt_da_prev": a_prev.grad.data.tolist(),
        "dw": dw,
        "gt_dw": float(W.grad.data[j, k]),
    }


def average(seed: int = 1) -> dict:
    """The cost over several examples is their average, and so is its gradient."""
    gt.manual_seed(seed)
    w = gt.randn(3, dtype=gt.float64, requires_grad=True)
    X = gt.randn(4, 3, dtype=gt.float64)
    Y = gt.rand(4, dtype=gt.float64)
    per_example = []
    for i in range(4):
        (g,) = gt.grad(((gt.sigmoid(X[i] @ w) - Y[i]) ** 2), w)
        per_example.append(g.data)
    cost = ((gt.sigmoid(X @ w) - Y) ** 2).mean()
    (g_avg,) = gt.grad(cost, w)
    mean_of_grads = sum(per_example) / 4
    print("\nPart 3: the cost of a mini-batch of 4 examples is the mean of their costs, so")
    print(f"  mean of the 4 per-example gradients = {mean_of_grads.round(10).tolist()}")
    print(f"  gradient of the mean cost          = {g_avg.data.round(10).tolist()}")
    return {"mean_of_grads": mean_of_grads.tolist(), "grad_of_mean": g_avg.data.tolist()}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the three parts; returns their numbers (for tests)."""
    return {"chain": chain(), "many": many(), "average": average()}


if __name__ == "__main__":
    main()
