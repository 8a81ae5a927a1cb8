"""The chain rule on f(x, y, z) = (x + y) * z, by hand and by gradtensor.

Run: python examples/chain_rule.py

Source: the f = (x + y) z circuit of Stanford's CS231n notes, "Backpropagation, Intuitions".
"""

from __future__ import annotations

import gradtensor as gt


def main() -> dict:
    x = gt.tensor(-2.0, requires_grad=True)
    y = gt.tensor(5.0, requires_grad=True)
    z = gt.tensor(-4.0, requires_grad=True)

    q = x + y  # q = 3
    f = q * z  # f = -12
    q.retain_grad()
    f.backward()

    print("f(x, y, z) = (x + y) * z at x = -2, y = 5, z = -4")
    print(f"  q = x + y = {q.item():g}")
    print(f"  f = q * z = {f.item():g}")
    print("local derivatives: dq/dx = dq/dy = 1, df/dq = z, df/dz = q")
    print(f"  df/dq = z = {q.grad.item():g}")
    print("chain rule: df/dx = df/dq * dq/dx")
    print(f"  df/dx = {x.grad.item():g}")
    print(f"  df/dy = {y.grad.item():g}")
    print(f"  df/dz = {z.grad.item():g}")
    return {
        "q": q.item(),
        "f": f.item(),
        "dx": x.grad.item(),
        "dy": y.grad.item(),
        "dz": z.grad.item(),
    }


if __name__ == "__main__":
    main()
