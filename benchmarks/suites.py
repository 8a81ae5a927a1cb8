"""The workloads, how they are timed, and the targets they are judged by. Each case builds every
implementation from the same float32 arrays, checks its value and gradients against gradtensor's
(a mismatch drops that row with the error), then times them alternating in this process: medians,
and ratios to gradtensor's. `python -m benchmarks.suites JSON` is the memory suite's probe."""

from __future__ import annotations

import collections
import gc
import json
import math
import os
import re
import statistics
import subprocess
import sys
import time
import traceback
import tracemalloc
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.contention import contention
from benchmarks.ddp import ddp
from benchmarks.firstuse import firstuse
from benchmarks.impls import LABELS, OPS, Skip, compare, load

# (batch, in, out), from latency-bound to compute-bound layers
LINEAR_SHAPES = {
    "cpu": [(65536, 64, 64), (256, 1024, 1024), (64, 256, 256), (1024, 1024, 1024),
            (8192, 256, 256), (65536, 16, 16)],
    "cuda": [(64, 64, 64), (256, 256, 256), (1024, 1024, 1024), (4096, 4096, 4096),
             (8192, 8192, 8192), (65536, 64, 64)],
    "quick": [(64, 32, 32), (512, 64, 64)],
}  # fmt: skip
MLPS = {"quick": [([784, 64, 64, 10], 32)]}
MLPS["cpu"] = MLPS["cuda"] = [([784, 256, 256, 10], 128), ([784, 1024, 1024, 10], 256),
                              ([784, 2048, 2048, 10], 1024)]  # fmt: skip
# Scaling: the batch series' width and batches, the width series' batch and widths
SCALING = {
    "cpu": (512, [32, 64, 128, 256, 512, 1024, 2048], 256, [64, 128, 256, 512, 1024, 2048]),
    "cuda": (2048, [256, 1024, 4096, 16384], 1024, [256, 1024, 4096, 8192]),
    "quick": (32, [16, 32], 16, [16, 32]),
}
SCALING_LIBS = ("gradtensor", "numpy", "cupy", "torch", "jax-jit")
# conv layers (batch, in, out, kernel, height = width, padding): LeNet-5's two convolutions (32x32
# images, then its 6x14x14 pooled maps) and a 3x3 64->64 layer at 32x32 as in a small ResNet/VGG
CONV_SHAPES = {"cpu": [(64, 1, 6, 5, 32, 0), (64, 6, 16, 5, 14, 0), (32, 64, 64, 3, 32, 1)],
               "quick": [(8, 1, 6, 5, 12, 0), (4, 8, 8, 3, 8, 1)]}  # fmt: skip
CONV_SHAPES["cuda"] = CONV_SHAPES["cpu"]
# CNN steps: convs (in, out, kernel, 2x2 max-pool after), the linear sizes, image side, batch;
# "cpu" is examples/train_cnn_digits.py's network (no dropout) at its batch size, plain SGD
DIGITS_CONVS = [(1, 32, 3, False), (32, 32, 3, True), (32, 64, 3, True)]
CNNS = {
    "cpu": [(DIGITS_CONVS, [256, 128, 10], 8, 32)],
    "quick": [([(1, 4, 3, False), (4, 4, 3, True), (4, 8, 3, True)], [32, 16, 10], 8, 8)],
}
CNNS["cuda"] = CNNS["cpu"]
CONV_LIBS = ("gradtensor", "torch")
LR = 0.01
COMPILED = ("gradtensor-compile", "gradtensor-graph")  # gt.compile: the compile suite's own
# Seconds of alternating timing per case, all implementations together
BUDGET = {"overhead": 30.0, "linear": 12.0, "mlp": 40.0, "scaling": 10.0, "conv": 20.0,
          "compile": 20.0}  # fmt: skip
MIN_SAMPLE_S = 5e-3  # shorter calls are repeated `inner` times inside one sample
# OpenBLAS's idle workers busy-wait about 0.1 s after a call: a pause this long before a sample
# lets the previous library's workers sleep (shortening their spin would slow the libraries).
SETTLE_S = 0.15
# How close (relative to a layer's spread) a pre-activation may come to ReLU's kink: within
# float32 rounding of 0 one library's z can be +tiny and another's -tiny, which moves a whole
# row's term in or out of dW, a difference of summation order and not of correctness.
KINK_CLEARANCE = 2e-4
NOTES = {  # for each suite, its notes with "|" between them
    "overhead": "Kernels only change linear layers; the chain has none, so gradtensor runs once.|"
    "JAX jit compiles the whole chain into one call: a floor, not a per-op cost.",
    "linear": "value = the layer's output; gradients for x, W and b against a random cotangent.|"
    "NumPy by hand is the unfused sequence: matmul, bias, activation, its derivative, two matmuls "
    "and a sum (GELU's erf from SciPy).",
    "mlp": "ReLU hidden layers, plain SGD (lr 0.01); all start from the same weights and batch.|"
    "gradtensor: nn.MLP + optim.SGD",
    "conv": "conv: relu(conv2d(x, W) + b), forward and backward against a random cotangent; "
    "gradtensor's conv2d is im2col (unfold) and a matmul.|CNN step: the network of "
    "examples/train_cnn_digits.py without its dropout and label smoothing (nn.Conv2d, ReLU, "
    "MaxPool2d, Flatten, Linear), softmax cross-entropy, plain SGD (lr 0.01), the same modules "
    "in both libraries.",
    "compile": "The MLP step as in the mlp suite (ReLU hidden layers, plain SGD, lr 0.01): "
    "zero_grad, forward, cross-entropy, backward, update.|gradtensor, gt.compile: the same step "
    "under gt.compile, recorded at its first call and replayed on arrays after; recording: the "
    "first call's time less an eager step's.|The chain: the overhead suite's 151 ops, forward "
    "and backward; under gt.compile each x * 1.01 + 0.1 is one fused loop.",
    "scaling": "Work (flops) doubles with the batch and grows ~4x with the width; a constant "
    "GFLOP/s means cost grows in step with work.",
    "memory-cpu": "peak: the resident set's high-water mark during a steady-state step (after a "
    "warm-up step) above the process just before the implementation was built: its copy of the "
    "weights and batch, what it keeps between steps, and the step's activations and temporaries; "
    "held: what it keeps between steps; step = peak - held. Each implementation runs in a fresh "
    "process with glibc's mmap threshold fixed at 64 KiB, so freed buffers leave the resident "
    "set. traced: tracemalloc's peak over the same span, NumPy buffers only (it cannot see "
    "PyTorch's or XLA's allocators).",
    "memory-cuda": "peak: device bytes in use during a steady-state step above those in use "
    "before the implementation was built. CuPy (gradtensor, CuPy by hand): the default pool's "
    "total bytes after the step, its free blocks released before it; PyTorch: "
    "max_memory_allocated; JAX: no statistic, not measured.",
}


def alternate(cases, repeats=20, inner=1, warmup=3, sync=None, rotate=False, settle=0.0) -> dict:
    """Time each case `repeats` times, round-robin so drift hits all alike; seconds per call.

    `inner` calls make one sample (a dict: per case); `sync` runs before each clock read (a GPU's
    synchronize); `rotate` runs each round in an order of its own (a seeded shuffle), so that no
    case always follows the same other one: what ran just before (its use of the caches, say)
    costs a case, and a fixed cycle would charge it to one case every round; `settle` > 0 pauses
    that long before each sample and makes one untimed call, which wakes this case's own worker
    threads."""
    inners = inner if isinstance(inner, dict) else dict.fromkeys(cases, inner)
    sync, samples, order = sync or (lambda: None), {name: [] for name in cases}, [*cases.items()]
    for fn in cases.values():
        for _ in range(warmup):
            fn()
    sync()
    rng = np.random.default_rng(0)
    for _ in range(repeats):
        for k in rng.permutation(len(order)) if rotate else range(len(order)):
            name, fn = order[k]
            if settle > 0:
                time.sleep(settle)
                fn()
                sync()
            t0 = time.perf_counter()
            for _ in range(inners[name]):
                fn()
            sync()
            samples[name].append((time.perf_counter() - t0) / inners[name])
    stats = lambda s, n: dict(median_s=statistics.median(s), min_s=min(s), repeats=len(s), inner=n)
    return {k: stats(s, inners[k]) for k, s in samples.items()}


def fmt_time(s: float | None) -> str:
    if s is None:
        return "-"
    return f"{s * 1e6:.1f} µs" if s < 1e-3 else f"{s * 1e3:.2f} ms" if s < 1 else f"{s:.2f} s"


def fmt_bytes(n: float | None) -> str:
    if n is None:
        return "n/a"
    for unit in ("B", "KiB", "MiB"):
        if abs(n) < 1024:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.2f} GiB"


log = lambda msg: print(msg, flush=True)  # a long sweep must never look hung
mlp_names = lambda sizes: [f"{p}{i}" for i in range(1, len(sizes)) for p in ("W", "b")]
mlp_name = lambda sizes, batch: f"{'-'.join(map(str, sizes))} batch {batch}"
# flops: multiply-adds x 2 of the forward matmuls, x 3 for them and the two backward ones
mlp_flops = lambda sizes, batch: 6 * batch * sum(a * b for a, b in zip(sizes[:-1], sizes[1:]))


class Context:  # what every suite needs: the libraries that loaded, the device, how hard to try
    def __init__(self, libs: dict, device="cpu", quick=False, budget_scale=1.0, threads=1):
        self.libs, self.device, self.quick, self.budget_scale = libs, device, quick, budget_scale
        self.threads = threads
        self.size = "quick" if quick else device
        # the pause before each sample: only where several libraries run worker threads
        self.settle_s = SETTLE_S if device == "cpu" and threads > 1 and not quick else 0.0

    def sync(self) -> None:
        if self.device != "cpu":  # the whole device: every library's streams
            sys.modules["cupy"].cuda.runtime.deviceSynchronize()


def run_case(ctx, tag, name, params, workload, args, names, budget, keys=None) -> dict[str, Any]:
    """Build (`workload` is the adapters' method), check and time one case; print its table."""
    # gt.compile is its own suite's subject: elsewhere only when asked for by name
    libs = {k: v for k, v in ctx.libs.items()
            if (k in keys if keys is not None else k not in COMPILED)}  # fmt: skip
    log(f"{tag} {name}: checking and timing {len(libs)} implementations")
    gc.collect()  # the previous case's implementations go first
    case: dict[str, Any] = {"name": name, "params": params, "results": {}}
    impls, check, errors, skipped, ref = {}, {}, {}, {}, None
    for key, lib in libs.items():
        try:
            impl = getattr(lib, workload)(*args)
            got = impl.result()
            if ref is None and key != "gradtensor":
                raise RuntimeError("no gradtensor result to check against")
            ref = ref or got
            check[key] = None if got is None else max(compare(got, ref, names).values())
            impls[key] = impl
        except Skip as exc:
            skipped[key] = str(exc)
        except AssertionError as exc:  # a mismatch or a failure drops the row, never the run
            errors[key] = f"mismatch: {exc}"
        except Exception as exc:
            at = traceback.extract_tb(exc.__traceback__)[-1]
            errors[key] = f"{type(exc).__name__}: {exc} (at {Path(at.filename).name}:{at.lineno})"
    est = {}  # each call's time, after the first calls' compilation, caches and allocations
    for key, impl in impls.items():
        for _ in range(3):  # gt.compile records twice before it replays
            impl.step()
        ctx.sync()
        t0 = time.perf_counter()
        impl.step()
        ctx.sync()
        est[key] = max(time.perf_counter() - t0, 1e-7)
    # longer samples where each follows a pause (which stays a fraction of the time); an odd
    # number of them, so that the median is a measured sample
    least = 1e-3 if ctx.quick else 4 * MIN_SAMPLE_S if ctx.settle_s else MIN_SAMPLE_S
    inner = {k: max(1, min(20 if ctx.quick else 100, math.ceil(least / t))) for k, t in est.items()}
    per_round = sum(est[k] * (inner[k] + (ctx.settle_s > 0)) + ctx.settle_s for k in impls) or 1
    repeats = 3 if ctx.quick else max(5, min(31, int(budget * ctx.budget_scale / per_round))) | 1
    cases = {k: impl.step for k, impl in impls.items()}
    timings = alternate(cases, repeats, inner, 0, ctx.sync, True, ctx.settle_s) if impls else {}
    base = timings.get("gradtensor", {}).get("median_s")
    for key, t in timings.items():
        r = case["results"][key] = dict(t, label=LABELS[key], check_max_rel_err=check[key])
        r.update({"ratio": t["median_s"] / base} if base else {})
        per_op = f"  {fmt_time(t['median_s'] / params['ops']):>9}/op" if "ops" in params else ""
        ratio = f"{r['ratio']:7.2f}x" if base else "      -"
        print(f"    {r['label']:24s} {fmt_time(t['median_s']):>9}  (min {fmt_time(t['min_s'])}, "
              f"{t['repeats']}x{t['inner']}){per_op}  {ratio} gradtensor's time")  # fmt: skip
    case.update({k: v for k, v in (("errors", errors), ("skipped", skipped)) if v})
    print_dropped(case)
    return case


def print_dropped(case: dict[str, Any]) -> None:
    for part, word in (("errors", "DROPPED"), ("skipped", "skipped")):
        for key, msg in case.get(part, {}).items():
            print(f"    {LABELS[key]:24s} {word}: {msg}")
    sys.stdout.flush()


def linear_inputs(shape: tuple[int, int, int], seed: int = 0, clear: bool = True) -> tuple:
    """x, W, b and a cotangent gy for a (batch, in, out) layer; x clear of ReLU's kink."""
    batch, n_in, n_out = shape
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((batch, n_in), np.float32)
    w = (rng.standard_normal((n_out, n_in)) / math.sqrt(n_in)).astype(np.float32)
    b, gy = rng.standard_normal(n_out, np.float32), rng.standard_normal((batch, n_out), np.float32)
    return (clear_of_kinks([(w, b)], x, rng) if clear else x), w, b, gy


def mlp_inputs(sizes: list[int], batch: int, seed: int = 0) -> tuple[list, np.ndarray, np.ndarray]:
    """Weights U(+-1/sqrt(fan_in)) as PyTorch's Linear draws them, a normal batch, targets."""
    rng, params = np.random.default_rng(seed), []
    for n_in, n_out in zip(sizes[:-1], sizes[1:]):
        w, b = (rng.uniform(-1, 1, s) / math.sqrt(n_in) for s in ((n_out, n_in), n_out))
        params.append([w.astype(np.float32), b.astype(np.float32)])
    x = rng.standard_normal((batch, sizes[0]), np.float32)
    t = rng.integers(0, sizes[-1], batch)
    return params, clear_of_kinks(params[:-1], x, rng), t


def clear_of_kinks(layers: list, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """x with every row whose pre-activation in some ReLU layer (W, b) lies within KINK_CLEARANCE
    x that layer's spread of 0 redrawn until none does (rows are independent samples)."""

    def pre_activations(h: np.ndarray) -> Any:
        for w, b in layers:
            z = h.astype(np.float64) @ w.T.astype(np.float64) + b
            yield z
            h = np.maximum(z, 0)

    spreads = [KINK_CLEARANCE * z.std() for z in pre_activations(x)]
    near = lambda h: np.any([(abs(z) < s).any(1) for z, s in zip(pre_activations(h), spreads)], 0)
    x, redo = x.copy(), np.flatnonzero(near(x)) if layers else []
    for _ in range(1000):
        if len(redo) == 0:
            return x
        x[redo] = rng.standard_normal((len(redo), x.shape[1]), np.float32)
        redo = redo[near(x[redo])]
    raise RuntimeError("could not draw a batch clear of the ReLU kinks")


def conv_inputs(shape: tuple, seed: int = 0) -> tuple:
    """x, W, b and a cotangent gy for a conv layer; gy is 0 where the pre-activation lies within
    KINK_CLEARANCE x its spread of ReLU's kink (so either side of it gives the same gradients)."""
    batch, c_in, c_out, k, hw, pad = shape
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((batch, c_in, hw, hw), np.float32)
    w, b = (rng.uniform(-1, 1, s) / math.sqrt(c_in * k * k) for s in ((c_out, c_in, k, k), c_out))
    w, b = w.astype(np.float32), b.astype(np.float32)
    import gradtensor as gt

    f64 = lambda a: gt.tensor(a.astype(np.float64))
    with gt.no_grad():
        z = gt.nn.functional.conv2d(f64(x), f64(w), f64(b), padding=pad).numpy()
    gy = rng.standard_normal(z.shape).astype(np.float32)
    gy[abs(z) < KINK_CLEARANCE * z.std()] = 0
    return x, w, b, gy, pad


def cnn_pre_activations(params: list, pools: list, x: np.ndarray) -> Any:
    """Each ReLU's input, in float64, sample by sample (rows); the last layer has no ReLU."""
    import gradtensor as gt

    F, f64 = gt.nn.functional, lambda a: gt.tensor(np.asarray(a, np.float64))
    h, pooled = f64(x), iter(pools)
    with gt.no_grad():
        for w, b in params[:-1]:
            if w.ndim == 4:
                z = F.conv2d(h, f64(w), f64(b), padding=w.shape[2] // 2)
                h = F.max_pool2d(gt.relu(z), 2) if next(pooled) else gt.relu(z)
            else:
                z = F.linear(h.reshape(len(x), -1), f64(w), f64(b))
                h = gt.relu(z)
            yield z.numpy().reshape(len(x), -1)


def cnn_inputs(convs: list, sizes: list, hw: int, batch: int, seed: int = 0) -> tuple:
    """Weights U(+-1/sqrt(fan_in)) as PyTorch draws them, a batch of images (redrawn where a
    pre-activation comes within KINK_CLEARANCE x its layer's spread of 0), targets; and pools."""
    rng, params = np.random.default_rng(seed), []
    shapes = [((o, i, k, k), i * k * k) for i, o, k, _ in convs]
    for shape, fan_in in shapes + [((o, i), i) for i, o in zip(sizes[:-1], sizes[1:])]:
        w, b = (rng.uniform(-1, 1, s) / math.sqrt(fan_in) for s in (shape, shape[0]))
        params.append([w.astype(np.float32), b.astype(np.float32)])
    pools = [p for *_, p in convs]
    x = rng.standard_normal((batch, convs[0][0], hw, hw), np.float32)
    spreads = [KINK_CLEARANCE * z.std() for z in cnn_pre_activations(params, pools, x)]
    near = lambda h: np.any([(abs(z) < s).any(1) for z, s in
                             zip(cnn_pre_activations(params, pools, h), spreads)], 0)  # fmt: skip
    redo = np.flatnonzero(near(x))
    for _ in range(1000):
        if len(redo) == 0:
            return params, x, rng.integers(0, sizes[-1], batch), pools
        x[redo] = rng.standard_normal((len(redo), *x.shape[1:]), np.float32)
        redo = redo[near(x[redo])]
    raise RuntimeError("could not draw a batch clear of the ReLU kinks")


def conv(ctx: Context) -> dict[str, Any]:
    """relu(conv2d + bias) forward and backward, then a CNN's SGD training step, against PyTorch."""
    runs, cases = CONV_SHAPES[ctx.size], []
    n = len(runs) + len(CNNS[ctx.size])
    for i, shape in enumerate(runs):
        batch, c_in, c_out, k, hw, pad = shape
        out = hw + 2 * pad - k + 1
        params = dict(kind="conv", batch=batch, c_in=c_in, c_out=c_out, kernel=k, size=hw,
                      padding=pad, threads=ctx.threads,
                      flops=6 * batch * c_out * out * out * c_in * k * k)  # fmt: skip
        name = f"conv {c_in}->{c_out} {k}x{k} {hw}x{hw} batch {batch}"
        args, names = conv_inputs(shape, seed=i), ["grad x", "grad W", "grad b"]
        tag = f"[conv {i + 1}/{n}]"
        cases.append(run_case(ctx, tag, name, params, "conv", args, names, BUDGET["conv"],
                              CONV_LIBS))  # fmt: skip
    for j, (convs, sizes, hw, batch) in enumerate(CNNS[ctx.size]):
        ps, x, t, pools = cnn_inputs(convs, sizes, hw, batch, seed=100 + j)
        chans = "-".join(str(c[1]) for c in convs)
        name = f"CNN step {hw}x{hw} conv {chans}, {'-'.join(map(str, sizes))} batch {batch}"
        params = dict(kind="cnn", convs=convs, sizes=sizes, size=hw, batch=batch, lr=LR,
                      threads=ctx.threads)  # fmt: skip
        names = [f"{p}{i}" for i in range(1, len(ps) + 1) for p in ("W", "b")]
        keys = CONV_LIBS + ("gradtensor-nokernels",)
        tag = f"[conv {len(runs) + j + 1}/{n}]"
        cases.append(run_case(ctx, tag, name, params, "cnn", (ps, x, t, LR, pools), names,
                              BUDGET["conv"], keys))  # fmt: skip
    return {"cases": cases, "notes": NOTES["conv"].split("|")}


def overhead(ctx: Context) -> dict[str, Any]:
    """A chain of 151 tiny elementwise ops, forward + backward: the per-op cost."""
    x0 = np.random.default_rng(0).standard_normal(8).astype(np.float32)
    keys = [k for k in ctx.libs if k not in ("gradtensor-nokernels", *COMPILED)]
    name, params = f"{OPS} ops on 8-element float32 tensors", {"ops": OPS, "size": 8}
    args = ("[overhead 1/1]", name, params, "chain", (x0,), ["grad x"], BUDGET["overhead"], keys)
    case = run_case(ctx, *args)
    for r in case["results"].values():
        r["per_op_s"] = r["median_s"] / OPS
    return {"cases": [case], "notes": NOTES["overhead"].split("|")}


def linear(ctx: Context) -> dict[str, Any]:
    """Fused linear + activation, forward and backward against a cotangent, over shapes."""
    acts = ("relu",) if ctx.quick else ("relu", "gelu")
    runs = [(shape, act) for shape in LINEAR_SHAPES[ctx.size] for act in acts]
    cases, inputs = [], {}
    for (batch, n_in, n_out), act in runs:
        if (batch, n_in, n_out) not in inputs:  # one draw per shape
            inputs[batch, n_in, n_out] = linear_inputs((batch, n_in, n_out), seed=len(inputs))
        params = {"batch": batch, "in": n_in, "out": n_out, "activation": act}
        params["flops"] = 6 * batch * n_in * n_out
        tag, name = f"[linear {len(cases) + 1}/{len(runs)}]", f"{batch}x{n_in}x{n_out} {act}"
        args, names = (*inputs[batch, n_in, n_out], act), ["grad x", "grad W", "grad b"]
        cases.append(run_case(ctx, tag, name, params, "linear", args, names, BUDGET["linear"]))
    return {"cases": cases, "notes": NOTES["linear"].split("|")}


def mlp(ctx: Context, suite: str = "mlp") -> dict[str, Any]:
    """One SGD training step of an MLP: forward, softmax cross-entropy, backward, update. The
    scaling suite: the step as the batch doubles (width fixed) and the width (batch fixed)."""
    runs = [(None, None, sizes, batch) for sizes, batch in MLPS[ctx.size]]
    if suite == "scaling":
        width, batches, batch0, widths = SCALING[ctx.size]
        runs = [("batch", b, [784, width, width, 10], b) for b in batches]
        runs += [("width", w, [784, w, w, 10], batch0) for w in widths]
    cases = []
    for i, (series, value, sizes, batch) in enumerate(runs):
        name = (f"{series} {value}: " if series else "") + mlp_name(sizes, batch)
        extra = {"series": series, "value": value} if series else {"lr": LR}
        params = {**extra, "sizes": sizes, "batch": batch, "flops": mlp_flops(sizes, batch)}
        ps, x, t = mlp_inputs(sizes, batch, seed=100 + i if series else i)
        args, keys = (ps, x, t, LR), SCALING_LIBS if series else None
        tag, names = f"[{suite} {i + 1}/{len(runs)}]", mlp_names(sizes)
        case = run_case(ctx, tag, name, params, "mlp", args, names, BUDGET[suite], keys)
        for r in case["results"].values() if series else []:
            r["gflops_per_s"] = params["flops"] / r["median_s"] / 1e9
        cases.append(case)
    if suite == "mlp":
        return {"cases": cases, "notes": NOTES["mlp"].split("|")}
    series = f"batch series: 784-{width}-{width}-10; width series: 784-w-w-10 at batch {batch0}."
    return {"cases": cases, "notes": [series, NOTES["scaling"]]}


def memory(ctx: Context) -> dict[str, Any]:
    """Peak memory of one training step, each implementation alone in a fresh process."""
    keys = [k for k in ctx.libs if k not in ("kernels", *COMPILED)]  # no MLP / their own suite
    cases = []
    for i, (sizes, batch) in enumerate(MLPS[ctx.size]):
        params = {"sizes": sizes, "batch": batch, "flops": mlp_flops(sizes, batch)}
        case = {"name": mlp_name(sizes, batch), "params": params, "results": {}}
        log(f"[memory {i + 1}/{len(MLPS[ctx.size])}] {case['name']}: {len(keys)} implementations, "
            "one process each")  # fmt: skip
        for key in keys:
            out = _probe(key, sizes, batch, ctx.device)
            if "error" in out or "skipped" in out:
                part = "errors" if "error" in out else "skipped"
                case.setdefault(part, {})[key] = out.get("error", out.get("skipped"))
            else:
                case["results"][key] = dict(out, label=LABELS[key])
        base = case["results"].get("gradtensor", {}).get("peak_bytes")
        for r in case["results"].values():
            r.update({"ratio": r["peak_bytes"] / base} if base else {})
            traced = r.get("traced_peak_bytes")
            traced = f", traced {fmt_bytes(traced)}" if traced is not None else ""
            ratio = f"{r['ratio']:6.2f}x" if base else "     -"
            print(f"    {r['label']:24s} peak {fmt_bytes(r['peak_bytes']):>9}  (held "
                  f"{fmt_bytes(r['held_bytes'])}, step {fmt_bytes(r['step_bytes'])}{traced})  "
                  f"{ratio} gradtensor's")  # fmt: skip
        print_dropped(case)
        cases.append(case)
    return {"cases": cases, "notes": [NOTES[f"memory-{ctx.device}"]]}


def _probe(key: str, sizes: list[int], batch: int, device: str) -> dict[str, Any]:
    root = str(Path(__file__).resolve().parents[1])
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536"}  # freed buffers leave the RSS
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [root, env.get("PYTHONPATH")]))
    arg = json.dumps({"key": key, "sizes": sizes, "batch": batch, "device": device})
    cmd = [sys.executable, "-m", "benchmarks.suites", arg]
    try:
        proc = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True, timeout=600)
    except subprocess.TimeoutExpired:
        return {"error": "the probe process ran past 600 s"}
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
        return {"error": f"probe exited {proc.returncode}: {tail[0]}"}
    return json.loads(lines[-1])


def probe(key: str, sizes: list[int], batch: int, device: str) -> dict[str, Any]:
    """Bytes above the process just before the implementation was built: the most in use during
    a steady-state step (peak), before that step (held), and their difference (step)."""
    params, x, t = mlp_inputs(sizes, batch)
    libs, skipped = load(list(dict.fromkeys(["gradtensor", key])), device)
    if key not in libs:
        return {"skipped": skipped.get(key, f"{key} is not available on {device}")}
    if device == "cpu":  # the resident set and its high-water mark, which "5" restarts
        kib = lambda f: int(re.search(rf"{f}:\s+(\d+)", Path("/proc/self/status").read_text())[1])
        level, peak = lambda: 1024 * kib("VmRSS"), lambda: 1024 * kib("VmHWM")
        reset_peak = lambda: Path("/proc/self/clear_refs").write_text("5")
    elif key == "torch":
        cuda = libs[key].torch.cuda
        level, peak = cuda.memory_allocated, cuda.max_memory_allocated
        reset_peak = cuda.reset_peak_memory_stats
    elif key in ("gradtensor", "gradtensor-nokernels", "cupy"):
        # With its free blocks released, the pool grows only when no freed block fits: what it
        # holds afterwards is the peak in use (rounded up to its block sizes).
        pool = sys.modules["cupy"].get_default_memory_pool()
        level, reset_peak, peak = pool.used_bytes, pool.free_all_blocks, pool.total_bytes
    else:
        return {"skipped": "no device-memory statistic for this library"}
    build, sync = lambda: libs[key].mlp(params, x, t, LR), Context(libs, device).sync
    got = build().result()  # first calls compile and fill caches: not part of the figures
    if key != "gradtensor":
        compare(got, libs["gradtensor"].mlp(params, x, t, LR).result(), mlp_names(sizes))

    def measure(level: Any, reset_peak: Any, peak: Any) -> dict[str, int]:
        gc.collect()
        sync()
        reset_peak()
        base, impl = level(), build()
        impl.step()  # warm-up: compiled code, optimizer state, gradients kept between steps
        sync()
        gc.collect()
        held = level()
        reset_peak()
        impl.step()
        sync()
        top = peak()
        return {"peak_bytes": top - base, "held_bytes": held - base, "step_bytes": top - held}

    del got
    out = measure(level, reset_peak, peak)
    if device == "cpu" and key in ("gradtensor", "gradtensor-nokernels", "numpy", "autograd"):
        tracemalloc.start()  # sees NumPy's buffers only
        traced = lambda i: lambda: tracemalloc.get_traced_memory()[i]
        traced_out = measure(traced(0), tracemalloc.reset_peak, traced(1))
        out["traced_peak_bytes"] = traced_out["peak_bytes"]
        tracemalloc.stop()
    out["param_bytes"] = int(sum(w.nbytes + b.nbytes for w, b in params))
    return {**out, "batch_bytes": int(x.nbytes)}


COMPILE_MLPS = {"cpu": [([8, 8, 8, 4], 32), ([784, 256, 256, 10], 128),
                        ([784, 2048, 2048, 10], 1024)], "quick": [([8, 8, 8, 4], 8)]}  # fmt: skip
COMPILE_MLPS["cuda"] = [([784, 256, 256, 10], 128)]
COMPILE_LIBS = ("gradtensor", *COMPILED, "numpy", "cupy", "torch", "jax-jit")


def compile_suite(ctx: Context) -> dict[str, Any]:
    """The MLP training step eager and under gt.compile, beside NumPy by hand, PyTorch and JAX
    jit; and what recording a step costs (its first call, less an eager step)."""
    cases = []
    runs = COMPILE_MLPS[ctx.size]
    for i, (sizes, batch) in enumerate(runs):
        name, ps_x_t = mlp_name(sizes, batch), mlp_inputs(sizes, batch, seed=200 + i)
        params = {"sizes": sizes, "batch": batch, "flops": mlp_flops(sizes, batch)}
        tag = f"[compile {i + 1}/{len(runs) + (not ctx.quick)}]"
        case = run_case(ctx, tag, name, params, "mlp", (*ps_x_t, LR), mlp_names(sizes),
                         BUDGET["compile"], COMPILE_LIBS)  # fmt: skip
        if "gradtensor-compile" in ctx.libs and not case.get("errors", {}).get("gradtensor"):
            case["record_s"] = record_cost(ctx, sizes, batch, ps_x_t)
            log(f"  recording the step (first call less an eager step): "
                f"{case['record_s'] * 1e3:.1f} ms")  # fmt: skip
            case["alloc_peak_bytes"] = alloc_peak(ctx, ps_x_t, 3 if sizes[1] >= 2048 else 100)
            log(f"  a warm compiled step's allocations at their peak (tracemalloc, arrays "
                f"included): {case['alloc_peak_bytes'] / 1024:.1f} KiB")  # fmt: skip
        cases.append(case)
    if not ctx.quick:  # the overhead suite's chain: a replay's cost per op, its runs of maths fused
        x0 = np.random.default_rng(0).standard_normal(8).astype(np.float32)
        params = {"ops": OPS, "size": 8}
        cases.append(run_case(ctx, f"[compile {len(runs) + 1}/{len(runs) + 1}]",
                              f"{OPS} ops on 8-element float32 tensors", params, "chain", (x0,),
                              ["grad x"], BUDGET["compile"], COMPILE_LIBS))  # fmt: skip
    return {"cases": cases, "notes": NOTES["compile"].split("|")}


def record_cost(ctx: Context, sizes: list, batch: int, ps_x_t: tuple) -> float:
    """Median over fresh compiled steps of (first call - an eager step's time)."""
    lib, costs = ctx.libs["gradtensor-compile"], []
    for _ in range(3 if ctx.quick else 7):
        impl = lib.mlp(*ps_x_t, LR)
        eager = ctx.libs["gradtensor"].mlp(*ps_x_t, LR)
        eager.step()
        t0 = time.perf_counter()
        eager.step()
        t1 = time.perf_counter()
        impl.step()
        costs.append(time.perf_counter() - t1 - (t1 - t0))
    return float(np.median(costs))


def alloc_peak(ctx: Context, ps_x_t: tuple, steps: int) -> int:
    """The most a warm compiled step allocated above what it started from, in bytes, over
    `steps` steps (tracemalloc, which counts NumPy's arrays)."""
    impl = ctx.libs["gradtensor-compile"].mlp(*ps_x_t, LR)
    for _ in range(5):  # recorded twice, then replayed with its arrays made
        impl.step()
    peaks = []
    tracemalloc.start()
    try:
        for _ in range(3 if ctx.quick else steps):
            before = tracemalloc.get_traced_memory()[0]
            tracemalloc.reset_peak()
            impl.step()
            peaks.append(tracemalloc.get_traced_memory()[1] - before)
    finally:
        tracemalloc.stop()
    return int(max(peaks))


SUITES = {"overhead": overhead, "linear": linear, "mlp": mlp, "memory": memory}
SUITES["compile"] = compile_suite
SUITES["scaling"] = lambda ctx: mlp(ctx, "scaling")
SUITES["firstuse"] = firstuse
SUITES["contention"] = contention
SUITES["conv"] = conv
SUITES["ddp"] = ddp
# ref: the implementation whose time divides gradtensor's (None: the limit is in seconds);
# strict: "faster than" (<) rather than "no slower than" (<=); when: which cases, by their params
# measure: what is held to the limit, from the case, in place of the subject's time over the ref's
Target = collections.namedtuple("Target", "suite device text ref limit strict when subject measure",
                                defaults=(False, None, "gradtensor", None))  # fmt: skip
_dims = lambda p: (p["batch"], p["in"], p["out"])
# every dimension at most 512, or B*Out large against In (In <= 128 with B*Out >= 2^20, where a
# GEMM does under 64 flops per byte)
_memory_or_launch_bound = lambda p: (
    lambda d: max(d) <= 512 or (d[1] <= 128 and d[0] * d[2] >= 1 << 20)
)(_dims(p))
TARGETS = [
    Target("overhead", "cpu", "per-op overhead no higher than PyTorch eager's", "torch", 1.0),
    Target("mlp", "cpu", "MLP step no slower than PyTorch CPU", "torch", 1.0),
    Target("mlp", "cpu", "MLP step within 1.1x of NumPy by hand", "numpy", 1.1),
    Target("linear", "cpu", "fused layer faster than unfused NumPy", "numpy", 1.0, strict=True),
    # the kernels without the Tensor API: tall layers run in cache-sized row blocks
    Target("linear", "cpu", "kernels alone <= 0.75x unfused NumPy", "numpy", 0.75,
           when=lambda p: _dims(p) == (65536, 64, 64), subject="kernels"),
    Target("linear", "cpu", "kernels alone <= 0.95x unfused NumPy", "numpy", 0.95,
           when=lambda p: _dims(p) == (256, 1024, 1024), subject="kernels"),
    # seconds of CPU time in a fresh process, not ratios
    Target("firstuse", "cpu", "first step, cold compile cache, <= 3 s CPU", None, 3.0,
           when=lambda p: p["cache"] == "cold"),
    Target("firstuse", "cpu", "first step, warm compile cache, <= 0.3 s CPU", None, 0.3,
           when=lambda p: p["cache"] == "warm"),
    Target("contention", "cpu", "step beside a busy process <= 2x the step alone", None, 2.0,
           measure=lambda c: c["results"]["gradtensor"]["slowdown"]),
    Target("compile", "cpu", "compiled small step <= 1.5x NumPy by hand", "numpy", 1.5,
           when=lambda p: p.get("sizes") == [8, 8, 8, 4], subject="gradtensor-compile"),
    Target("compile", "cpu", "compiled small step <= 0.3x PyTorch eager", "torch", 0.3,
           when=lambda p: p.get("sizes") == [8, 8, 8, 4], subject="gradtensor-compile"),
    Target("compile", "cpu", "compiled step <= 1.0x NumPy by hand", "numpy", 1.0,
           when=lambda p: p.get("sizes") == [784, 256, 256, 10], subject="gradtensor-compile"),
    Target("compile", "cpu", "compiled step no slower than eager", "gradtensor", 1.0,
           when=lambda p: p.get("sizes", [0, 0])[1] >= 2048, subject="gradtensor-compile"),
    Target("compile", "cpu", "a warm compiled step allocates no arrays (< 16 KiB)", None, 16384,
           strict=True, when=lambda p: p.get("sizes") == [784, 256, 256, 10],
           subject="gradtensor-compile", measure=lambda c: c["alloc_peak_bytes"]),
    Target("compile", "cpu", "recording a 3-layer MLP step <= 50 ms", None, 0.05,
           when=lambda p: p.get("sizes") == [784, 256, 256, 10], subject="gradtensor-compile",
           measure=lambda c: c["record_s"]),
    Target("compile", "cuda", "compiled step <= 0.33x PyTorch CUDA eager", "torch", 0.33,
           subject="gradtensor-compile"),
    Target("compile", "cuda", "compiled step, CUDA graph, <= 0.33x PyTorch CUDA eager", "torch",
           0.33, subject="gradtensor-graph"),
    Target("conv", "cpu", "conv layer no slower than 1.5x PyTorch at 1 thread", "torch",
           1.5, when=lambda p: p["kind"] == "conv" and p["threads"] == 1),
    # GPU, TF32 off on both sides; the GPU's per-op overhead is reported, with no target
    Target("mlp", "cuda", "MLP step no slower than PyTorch CUDA", "torch", 1.0),
    Target("linear", "cuda", "fused layer no slower than PyTorch eager", "torch", 1.0),
    Target("linear", "cuda", "fused layer >= 1.3x faster than PyTorch where memory- or "
           "launch-bound", "torch", 1 / 1.3, when=_memory_or_launch_bound),
]  # fmt: skip


def check_targets(run: dict[str, Any]) -> list[dict[str, Any]]:
    """Each target against each case of a run: the ratio measured and whether it is met."""
    rows = []
    for tg in TARGETS:
        if tg.device != run["settings"]["device"] or tg.suite not in run["suites"]:
            continue
        for case in run["suites"][tg.suite]["cases"]:
            p, res = case["params"], case["results"]
            if tg.when is not None and not tg.when(p):
                continue
            row = dict(suite=tg.suite, case=case["name"], target=tg.text, ref=tg.ref,
                       limit=tg.limit, strict=tg.strict, ratio=None, met=None,
                       unit="s" if tg.ref is None and tg.measure is None else "")  # fmt: skip
            missing = next((k for k in (tg.subject, tg.ref) if k and k not in res), None)
            if missing:
                why = [case.get("errors", {}), case.get("skipped", {}), run.get("skipped", {})]
                why = next((w[missing] for w in why if missing in w), None)
                row["note"] = f"{LABELS[missing]} has no timing" + (f" ({why})" if why else "")
            else:
                ratio = res[tg.subject]["median_s"] / (res[tg.ref]["median_s"] if tg.ref else 1)
                row["ratio"] = ratio = tg.measure(case) if tg.measure else ratio
                row["met"] = bool(ratio < tg.limit if tg.strict else ratio <= tg.limit)
            rows.append(row)
    return rows


def print_targets(rows: list[dict[str, Any]]) -> None:
    if rows:
        log("\nTargets (gradtensor's median time / the reference's, measured in this run):")
    for r in rows:
        ratio = (
            "      -"
            if r["ratio"] is None
            else f"{r['ratio']:6.3f}" + (" " + r.get("unit", "")).rstrip()
        )
        verdict = "not measured: " + r.get("note", "") if r["met"] is None else "MISSED"
        verdict = "met" if r["met"] else verdict
        op = "<" if r["strict"] else "<="
        log(f"  {r['target']:52s} {r['case']:34s} {ratio}  ({op} {r['limit']:.2f})  {verdict}")


if __name__ == "__main__":
    try:
        result = probe(**json.loads(sys.argv[1]))
    except AssertionError as exc:
        result = {"error": f"mismatch: {exc}"}
    except Exception as exc:
        result = {"error": f"{type(exc).__name__}: {exc}"}
    print(json.dumps(result), flush=True)
