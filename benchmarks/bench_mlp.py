"""One training step of an MLP through the training layer, gradtensor against PyTorch on the CPU.

    python -m benchmarks.bench_mlp [--quick] [--threads N] [--repeats N] [--sizes 784,1024,1024,10]
    python benchmarks/bench_mlp.py --quick

A step is what a user's loop does: zero_grad, forward through nn.MLP (fused Linear+ReLU layers),
cross-entropy, backward, optim.SGD.step() (momentum 0.9, as in most training scripts); PyTorch
runs the same step with torch.nn.Linear/ReLU and torch.optim.SGD. Both start from identical
weights, and their losses, gradients and updated weights are compared before anything is timed.
Both run in this one process with the same thread count (every BLAS and OpenMP pool through
threadpoolctl, torch.set_num_threads, numba.set_num_threads: benchmarks.common.limit_threads),
alternating, after warm-up; figures are medians. They alternate in blocks: after switching
library, a few untimed steps let the other library's worker threads stop spinning (OpenBLAS and
OpenMP threads busy-wait after work; on a machine with few cores that slows the next few steps of
whichever library runs next by up to 3x, which a step-by-step alternation would count). A
breakdown by phase (forward, backward, optimizer step) follows. Results go to
benchmarks/results/<date>-<host>-mlp.json (not for --quick unless --out is given).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

import gradtensor as gt  # noqa: E402
import gradtensor.nn.functional as F  # noqa: E402
from benchmarks.common import fmt_time, limit_threads, machine, save  # noqa: E402
from gradtensor import nn, optim  # noqa: E402

LR, MOMENTUM = 0.01, 0.9


def parse(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        prog="python -m benchmarks.bench_mlp", description=__doc__.split("\n\n")[0]
    )
    ap.add_argument("--sizes", default="784,1024,1024,10", help="layer sizes, comma-separated")
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument(
        "--threads",
        type=int,
        default=os.cpu_count() or 1,
        help="threads for both libraries (default: all cores)",
    )
    ap.add_argument("--repeats", type=int, default=30, help="timed steps per library")
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--block", type=int, default=5, help="timed steps per library per turn")
    ap.add_argument(
        "--settle", type=int, default=3, help="untimed steps after switching library (see above)"
    )
    ap.add_argument("--quick", action="store_true", help="3 repeats after 1 warm-up: a smoke run")
    ap.add_argument("--out", type=Path, help="write the JSON here")
    ap.add_argument("--no-save", action="store_true", help="write no JSON")
    args = ap.parse_args(argv)
    if args.quick:
        args.repeats, args.warmup, args.block, args.settle = 4, 1, 2, 1
    return args


def build(sizes: list[int], batch: int, seed: int = 0) -> dict[str, Any]:
    """A gradtensor MLP and a PyTorch one with the same weights, and one batch of data."""
    gt.manual_seed(seed)
    model = nn.MLP(sizes, activation="relu")
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((batch, sizes[0])).astype(np.float32)
    y = rng.integers(0, sizes[-1], size=batch).astype(np.int64)
    out = {
        "gt": (
            model,
            optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM),
            gt.tensor(x),
            gt.tensor(y),
        )
    }
    try:
        import torch
    except ImportError:
        return out
    layers: list[Any] = []
    for i, lin in enumerate(model.layers):
        tl = torch.nn.Linear(lin.in_features, lin.out_features)
        with torch.no_grad():
            tl.weight.copy_(torch.from_numpy(lin.weight.data))
            tl.bias.copy_(torch.from_numpy(lin.bias.data))
        layers.append(tl)
        if i < len(model.layers) - 1:
            layers.append(torch.nn.ReLU())
    tmodel = torch.nn.Sequential(*layers)
    topt = torch.optim.SGD(tmodel.parameters(), lr=LR, momentum=MOMENTUM)
    out["torch"] = (tmodel, topt, torch.from_numpy(x), torch.from_numpy(y))
    return out


def gt_step(model: Any, opt: Any, x: Any, y: Any) -> Any:
    opt.zero_grad()
    loss = F.cross_entropy(model(x), y)
    loss.backward()
    opt.step()
    return loss


def torch_step(model: Any, opt: Any, x: Any, y: Any) -> Any:
    import torch

    opt.zero_grad()
    loss = torch.nn.functional.cross_entropy(model(x), y)
    loss.backward()
    opt.step()
    return loss


def check(pair: dict[str, Any]) -> dict[str, float]:
    """One step each from identical weights: the losses, gradients and new weights must agree.

    Returns the largest differences, relative to each array's largest magnitude.
    """
    model, opt, x, y = pair["gt"]
    tmodel, topt, tx, ty = pair["torch"]
    loss = gt_step(model, opt, x, y)
    tloss = torch_step(tmodel, topt, tx, ty)
    ours = [p for p in model.parameters()]
    theirs = list(tmodel.parameters())
    worst = {
        "loss": abs(loss.item() - tloss.item()) / abs(tloss.item()),
        "grad": 0.0,
        "weight": 0.0,
    }
    for p, q in zip(ours, theirs, strict=True):
        for key, a, b in (
            ("grad", p.grad.data, q.grad.numpy()),
            ("weight", p.data, q.detach().numpy()),
        ):
            scale = float(np.abs(b).max()) or 1.0
            worst[key] = max(worst[key], float(np.abs(a - b).max()) / scale)
    if worst["loss"] > 1e-5 or worst["grad"] > 1e-4 or worst["weight"] > 1e-5:
        raise SystemExit(f"bench_mlp: gradtensor and PyTorch disagree before timing: {worst}")
    return worst


def alternate_blocks(
    cases: dict[str, Any], repeats: int, warmup: int, block: int, settle: int
) -> dict[str, dict]:
    """Median seconds per call of each case: turns of `settle` untimed and `block` timed calls,
    the libraries taking turns (and turns about at going first) until each has `repeats`."""
    for fn in cases.values():
        for _ in range(warmup):
            fn()
    samples: dict[str, list[float]] = {name: [] for name in cases}
    names = list(cases)
    turn = 0
    while min(len(v) for v in samples.values()) < repeats:
        order = names if turn % 2 == 0 else names[::-1]
        for name in order:
            fn = cases[name]
            for _ in range(settle):
                fn()
            for _ in range(block):
                t0 = time.perf_counter()
                fn()
                samples[name].append(time.perf_counter() - t0)
        turn += 1
    return {
        name: {"median_s": statistics.median(s), "min_s": min(s), "repeats": len(s)}
        for name, s in samples.items()
    }


def phases(step_parts: dict[str, Any], repeats: int) -> dict[str, float]:
    """Median seconds of forward, backward and optimizer step, timed one phase at a time."""
    samples: dict[str, list[float]] = {"forward": [], "backward": [], "step": []}
    for _ in range(3):  # settle, as in alternate_blocks
        step_parts["backward"](step_parts["forward"]())
        step_parts["step"]()
    for _ in range(repeats):
        t0 = time.perf_counter()
        state = step_parts["forward"]()
        t1 = time.perf_counter()
        step_parts["backward"](state)
        t2 = time.perf_counter()
        step_parts["step"]()
        t3 = time.perf_counter()
        samples["forward"].append(t1 - t0)
        samples["backward"].append(t2 - t1)
        samples["step"].append(t3 - t2)
    return {k: statistics.median(v) for k, v in samples.items()}


def _parts(lib: str, model: Any, opt: Any, x: Any, y: Any) -> dict[str, Any]:
    if lib == "gt":

        def forward():
            opt.zero_grad()
            return F.cross_entropy(model(x), y)
    else:
        import torch

        def forward():
            opt.zero_grad()
            return torch.nn.functional.cross_entropy(model(x), y)

    return {"forward": forward, "backward": lambda loss: loss.backward(), "step": opt.step}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse(argv)
    # The 1-minute load average before we start: how busy the machine was with other work.
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    sizes = [int(s) for s in args.sizes.split(",")]
    try:
        import torch  # noqa: F401  (before limit_threads, so its pool is limited too)
    except ImportError:
        torch = None
    threads = limit_threads(args.threads)
    print(
        f"MLP {'-'.join(map(str, sizes))}, batch {args.batch}, float32, SGD momentum "
        f"{MOMENTUM}; {args.threads} thread(s) for NumPy's BLAS and PyTorch "
        f"(torch.get_num_threads() = {threads.get('torch')}); fused kernels "
        + (f"on, GEMMs by {threads['kernels_blas']}" if gt.kernels_enabled() else "off"),
        flush=True,
    )
    pair = build(sizes, args.batch)
    result: dict[str, Any] = {
        "sizes": sizes,
        "batch": args.batch,
        "dtype": "float32",
        "optimizer": f"SGD(lr={LR}, momentum={MOMENTUM})",
        "threads": threads,
        "kernels": gt.kernels_enabled(),
        "repeats": args.repeats,
        "warmup": args.warmup,
        "block": args.block,
        "settle": args.settle,
    }
    if torch is None:
        print("PyTorch is not installed: timing gradtensor alone (pip install torch to compare)")
    else:
        result["check"] = check(pair)
        print(
            "check: from identical weights, loss/grads/updated weights agree to "
            + ", ".join(f"{k} {v:.1e}" for k, v in result["check"].items()),
            flush=True,
        )
    cases = {
        lib: (lambda f=(gt_step if lib == "gt" else torch_step), a=args_: f(*a))
        for lib, args_ in pair.items()
    }
    timed = alternate_blocks(cases, args.repeats, args.warmup, args.block, args.settle)
    result["step"] = timed
    for lib, r in timed.items():
        print(
            f"  {'gradtensor' if lib == 'gt' else 'PyTorch':<11} one step: median "
            f"{fmt_time(r['median_s'])}   (min {fmt_time(r['min_s'])})"
        )
    breakdown = {lib: phases(_parts(lib, *a), max(3, args.repeats // 3)) for lib, a in pair.items()}
    result["phases"] = breakdown
    for lib, ph in breakdown.items():
        print(
            f"  {'gradtensor' if lib == 'gt' else 'PyTorch':<11} "
            + "  ".join(f"{k} {fmt_time(v).strip()}" for k, v in ph.items())
        )
    if "torch" in timed:
        ratio = timed["gt"]["median_s"] / timed["torch"]["median_s"]
        result["ratio_gt_over_torch"] = ratio
        verdict = "no slower than" if ratio <= 1.0 else "slower than"
        print(
            f"ratio gradtensor / PyTorch = {ratio:.3f} (target <= 1.0: gradtensor is "
            f"{verdict} PyTorch)"
        )
    result["machine"] = machine()
    result["loadavg_before"] = load
    if load is not None:
        print(
            f"load average before this run: {load:.2f} on {os.cpu_count()} cores (other "
            "work running beside a benchmark skews it, most with several threads)"
        )
    if args.out is not None or not (args.quick or args.no_save):
        if args.out is not None:
            import json

            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
            path = args.out
        else:
            path = save("mlp", result)
        result["path"] = str(path)
        print(f"wrote {path}")
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
