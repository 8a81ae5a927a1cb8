"""Per-op overhead: a chain of small elementwise ops on tiny tensors, forward and backward.

gradtensor and PyTorch (CPU) run side by side in one process, alternating, after warm-up; the
figure is the median time of the whole chain divided by its number of ops.
Run: python -m benchmarks.bench_overhead [--quick]
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

import numpy as np

import gradtensor as gt
from benchmarks.common import alternate, fmt_time, machine, save

LINKS = 50  # each link is 3 ops: multiply, add, tanh
OPS = 3 * LINKS + 1  # + the final sum


def chain(tanh: Callable, x: Any) -> Any:
    """LINKS links of multiply, add, tanh, then a sum: written once, run by either library."""
    y = x
    for _ in range(LINKS):
        y = tanh(y * 1.01 + 0.1)
    return y.sum()


def _stepper(x: Any, tanh: Callable) -> Callable[[], None]:
    def step() -> None:
        chain(tanh, x).backward()
        x.grad = None

    return step


def chain_gt(x0: np.ndarray) -> Callable[[], None]:
    return _stepper(gt.tensor(x0, requires_grad=True), gt.tanh)


def chain_torch(torch: Any, x0: np.ndarray) -> Callable[[], None]:
    return _stepper(torch.tensor(x0, requires_grad=True), torch.tanh)


def check(torch: Any, x0: np.ndarray) -> None:
    """Both sides compute the same gradient before either is timed."""
    x = gt.tensor(x0, requires_grad=True)
    chain(gt.tanh, x).backward()
    xt = torch.tensor(x0, requires_grad=True)
    chain(torch.tanh, xt).backward()
    np.testing.assert_allclose(x.grad.numpy(), xt.grad.numpy(), rtol=1e-5, atol=1e-7)


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="few repeats: a smoke test")
    ap.add_argument("--size", type=int, default=8, help="elements per tensor")
    args = ap.parse_args(argv)
    x0 = np.random.default_rng(0).standard_normal(args.size).astype(np.float32)
    cases = {"gradtensor": chain_gt(x0)}
    try:
        import torch

        torch.set_num_threads(1)
        check(torch, x0)
        cases["pytorch"] = chain_torch(torch, x0)
    except ImportError:
        torch = None
        print("PyTorch is not installed: gradtensor alone")
    res = alternate(cases, repeats=5 if args.quick else 30, warmup=2 if args.quick else 10)
    print(f"per-op cost, forward + backward, {OPS} ops on {args.size}-element float32 tensors")
    rows = {}
    for name, r in res.items():
        per_op = r["median_s"] / OPS
        rows[name] = {"chain_s": r["median_s"], "per_op_s": per_op}
        print(f"  {name:12s} {fmt_time(per_op)} per op")
    if "pytorch" in rows:
        ratio = rows["gradtensor"]["per_op_s"] / rows["pytorch"]["per_op_s"]
        verdict = "meets" if ratio <= 1.0 else "misses"
        print(f"  gradtensor / pytorch = {ratio:.2f}  ({verdict} the target of <= 1.00)")
        rows["ratio_gradtensor_over_pytorch"] = ratio
    payload = {
        "benchmark": "overhead",
        "machine": machine(),
        "ops": OPS,
        "size": args.size,
        "quick": args.quick,
        "results": rows,
    }
    if not args.quick:
        print("saved", save("overhead", payload))
    return payload


if __name__ == "__main__":
    main()
