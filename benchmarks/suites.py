"""The workloads: per-op overhead, fused linear + activation, an MLP step, scaling, peak memory.

Every case builds each implementation from the same float32 arrays, checks its value and gradients
against gradtensor's (a mismatch drops that row and records the error), warms them up, then times
them alternating in this process and reports medians and ratios to gradtensor.
"""

from __future__ import annotations

import gc
import json
import math
import os
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks import references as R
from benchmarks.bench_overhead import OPS
from benchmarks.common import SETTLE_S, alternate, fmt_bytes, fmt_time, log

ROOT = Path(__file__).resolve().parents[1]

# -- sizes -------------------------------------------------------------------------------------

ACTIVATIONS = ("relu", "gelu")
# (batch, in, out). The first two are the CPU kernels' target shapes (bench_linear_act.py); the
# rest span latency-bound to compute-bound layers.
LINEAR_SHAPES = [
    (65536, 64, 64),
    (256, 1024, 1024),
    (64, 256, 256),
    (1024, 1024, 1024),
    (8192, 256, 256),
    (65536, 16, 16),
]
LINEAR_SHAPES_GPU = [(n, n, n) for n in (64, 256, 1024, 4096, 8192)] + [(65536, 64, 64)]
LINEAR_QUICK = [(64, 32, 32), (512, 64, 64)]
MLPS = [([784, 256, 256, 10], 128), ([784, 1024, 1024, 10], 256), ([784, 2048, 2048, 10], 1024)]
MLPS_QUICK = [([784, 64, 64, 10], 32)]
# Scaling: one axis doubles while the other stays put.
SCALING_WIDTH, SCALING_BATCHES = 512, [32, 64, 128, 256, 512, 1024, 2048]
SCALING_BATCH, SCALING_WIDTHS = 256, [64, 128, 256, 512, 1024, 2048]
SCALING_QUICK = (32, [16, 32], 16, [16, 32])
SCALING_GPU = (2048, [256, 1024, 4096, 16384], 1024, [256, 1024, 4096, 8192])
SCALING_LIBS = ("gradtensor", "numpy", "cupy", "torch", "jax-jit")
LR = 0.01

# Seconds of alternating timing per case (all implementations together), and the least time one
# sample should take (short calls are repeated `inner` times inside a sample).
BUDGET = {"overhead": 30.0, "linear": 12.0, "mlp": 40.0, "scaling": 10.0}
MIN_SAMPLE_S = 5e-3


@dataclass
class Context:
    """What every suite needs: the libraries that loaded, the device, and how hard to try."""

    libs: dict[str, Any]
    device: str = "cpu"
    quick: bool = False
    budget_scale: float = 1.0
    threads: int = 1
    skipped: dict[str, str] = field(default_factory=dict)

    def sync(self) -> None:
        if self.device != "cpu":
            for lib in self.libs.values():
                lib.sync()


# -- one case ----------------------------------------------------------------------------------


def _error(exc: BaseException) -> str:
    if isinstance(exc, AssertionError):
        return f"mismatch: {exc}"
    where = traceback.extract_tb(exc.__traceback__)[-1]
    return f"{type(exc).__name__}: {exc} (at {Path(where.filename).name}:{where.lineno})"


def build_checked(
    ctx: Context, build: Callable[[Any], R.Impl], names: list[str], keys: list[str] | None = None
) -> tuple[dict[str, R.Impl], dict[str, Any]]:
    """Each library's implementation, kept only if its value and gradients match gradtensor's."""
    impls: dict[str, R.Impl] = {}
    rec: dict[str, Any] = {"check": {}, "errors": {}, "skipped": {}}
    ref = None
    for key, lib in ctx.libs.items():
        if keys is not None and key not in keys:
            continue
        try:
            impl = build(lib)
            got = impl.result()
            if ref is None:
                if key != "gradtensor":
                    raise RuntimeError("no gradtensor result to check against")
                ref, err = got, 0.0
            else:
                err = R.compare(got, ref, names=names)
        except R.Skip as exc:
            rec["skipped"][key] = str(exc)
            continue
        except Exception as exc:  # a mismatch or a failure drops the row, never the run
            rec["errors"][key] = _error(exc)
            continue
        impls[key] = impl
        rec["check"][key] = err
    return impls, rec


def settle_s(ctx: Context) -> float:
    """The pause between samples: only where several libraries each run worker threads."""
    return SETTLE_S if ctx.device == "cpu" and ctx.threads > 1 and not ctx.quick else 0.0


def time_impls(ctx: Context, impls: dict[str, R.Impl], budget: float) -> dict[str, dict]:
    """Warm up, estimate each call, then alternate with repeats that fit the budget."""
    est = {}
    for key, impl in impls.items():
        impl.step()  # first call: compilation, caches, lazy allocations
        ctx.sync()
        t0 = time.perf_counter()
        impl.step()
        ctx.sync()
        est[key] = max(time.perf_counter() - t0, 1e-7)
    settle = settle_s(ctx)
    if ctx.quick:
        inner = {k: max(1, min(20, math.ceil(1e-3 / t))) for k, t in est.items()}
        repeats = 3
    else:
        # with a pause before each sample, make the samples longer so the pauses stay a fraction
        least = 4 * MIN_SAMPLE_S if settle else MIN_SAMPLE_S
        inner = {k: max(1, min(100, math.ceil(least / t))) for k, t in est.items()}
        per_round = sum(est[k] * (inner[k] + (1 if settle else 0)) + settle for k in impls)
        repeats = int(budget * ctx.budget_scale / per_round)
        repeats = max(5, min(31, repeats)) | 1  # odd: the median is a measured sample
    cases = {k: impl.step for k, impl in impls.items()}
    return alternate(
        cases, repeats=repeats, inner=inner, warmup=0, sync=ctx.sync, rotate=True, settle=settle
    )


def run_case(
    ctx: Context,
    tag: str,
    name: str,
    params: dict[str, Any],
    build: Callable[[Any], R.Impl],
    names: list[str],
    budget: float,
    keys: list[str] | None = None,
) -> dict[str, Any]:
    """Build, check and time one case; print its progress line and its table."""
    n = sum(1 for k in ctx.libs if keys is None or k in keys)
    log(f"{tag} {name}: checking and timing {n} implementations")
    impls, rec = build_checked(ctx, build, names, keys)
    timings = time_impls(ctx, impls, budget) if impls else {}
    base = timings.get("gradtensor", {}).get("median_s")
    results = {}
    for key, t in timings.items():
        results[key] = dict(t, label=R.LABELS[key], check_max_rel_err=rec["check"][key])
        if base:
            results[key]["ratio"] = t["median_s"] / base
    case = {"name": name, "params": params, "results": results}
    case.update({k: rec[k] for k in ("errors", "skipped") if rec[k]})
    print_case(case)
    del impls
    gc.collect()
    return case


def print_case(case: dict[str, Any]) -> None:
    extra = case["params"].get("ops")
    for r in case["results"].values():
        per_op = f"  {fmt_time(r['median_s'] / extra)}/op" if extra else ""
        ratio = f"{r['ratio']:7.2f}x" if "ratio" in r else "      -"
        print(
            f"    {r['label']:24s} {fmt_time(r['median_s'])}  (min {fmt_time(r['min_s']).strip()}, "
            f"{r['repeats']}x{r['inner']}){per_op}  {ratio} gradtensor's time"
        )
    for key, msg in case.get("errors", {}).items():
        print(f"    {R.LABELS[key]:24s} DROPPED: {msg}")
    for key, msg in case.get("skipped", {}).items():
        print(f"    {R.LABELS[key]:24s} skipped: {msg}")
    sys.stdout.flush()


def _rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)


def mlp_inputs(sizes: list[int], batch: int, seed: int = 0) -> tuple[list, np.ndarray, np.ndarray]:
    """Weights U(+-1/sqrt(fan_in)) as PyTorch's Linear draws them, a normal batch, targets."""
    rng = _rng(seed)
    params = []
    for n_in, n_out in zip(sizes[:-1], sizes[1:], strict=True):
        bound = 1 / math.sqrt(n_in)
        w = rng.uniform(-bound, bound, (n_out, n_in)).astype(np.float32)
        b = rng.uniform(-bound, bound, n_out).astype(np.float32)
        params.append((w, b))
    x = rng.standard_normal((batch, sizes[0]), np.float32)
    t = rng.integers(0, sizes[-1], batch)
    return params, clear_of_kinks(params[:-1], x, rng), t


# How close (relative to a layer's spread) a pre-activation may come to ReLU's kink at 0. Within
# float32 rounding of it (~3e-6 relative for 2048-term sums) one library's z can be +tiny and
# another's -tiny: the masks differ, and a whole input row's term moves in or out of dW. That is
# a difference of summation order, not of correctness, so batches are drawn clear of it.
KINK_CLEARANCE = 2e-4


def clear_of_kinks(layers: list, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """x with every row whose pre-activation in some ReLU layer (W, b) lies within
    KINK_CLEARANCE x that layer's spread of 0 redrawn, until none does. Rows are independent
    samples, so redrawing some leaves the batch's distribution as it was."""
    ws = [(w.astype(np.float64), b.astype(np.float64)) for w, b in layers]

    def near_kink(rows: np.ndarray, spreads: list[float]) -> np.ndarray:
        h, near = rows.astype(np.float64), np.zeros(len(rows), bool)
        for (w, b), spread in zip(ws, spreads, strict=True):
            z = h @ w.T + b
            near |= (np.abs(z) < KINK_CLEARANCE * spread).any(axis=1)
            h = np.maximum(z, 0)
        return near

    spreads, h = [], x.astype(np.float64)
    for w, b in ws:
        z = h @ w.T + b
        spreads.append(float(z.std()))
        h = np.maximum(z, 0)
    x = x.copy()
    redo = np.flatnonzero(near_kink(x, spreads))
    for _ in range(1000):
        if redo.size == 0:
            return x
        x[redo] = rng.standard_normal((redo.size, x.shape[1]), np.float32)
        redo = redo[near_kink(x[redo], spreads)]
    raise RuntimeError("could not draw a batch clear of the ReLU kinks")


def mlp_flops(sizes: list[int], batch: int) -> int:
    """Multiply-adds x 2 of the forward matmuls, x 3 for forward + the two backward matmuls."""
    return 6 * batch * sum(a * b for a, b in zip(sizes[:-1], sizes[1:], strict=True))


def mlp_names(sizes: list[int]) -> list[str]:
    return [f"{p}{i + 1}" for i in range(len(sizes) - 1) for p in ("W", "b")]


def mlp_name(sizes: list[int], batch: int) -> str:
    return f"{'-'.join(map(str, sizes))} batch {batch}"


# -- the suites --------------------------------------------------------------------------------


def overhead(ctx: Context) -> dict[str, Any]:
    """A chain of 151 tiny elementwise ops (bench_overhead's), forward + backward: per-op cost."""
    size = 8
    x0 = _rng(0).standard_normal(size).astype(np.float32)
    keys = [k for k in ctx.libs if k != "gradtensor-nokernels"]  # no linear layer: no kernels
    case = run_case(
        ctx,
        "[overhead 1/1]",
        f"{OPS} ops on {size}-element float32 tensors",
        {"ops": OPS, "size": size},
        lambda lib: lib.chain(x0),
        ["grad x"],
        BUDGET["overhead"],
        keys,
    )
    for r in case["results"].values():
        r["per_op_s"] = r["median_s"] / OPS
    return {
        "cases": [case],
        "notes": [
            "Kernels only change linear layers; the chain has none, so gradtensor runs once.",
            "JAX jit compiles the whole chain into one call: a floor, not a per-op cost.",
        ],
    }


def linear(ctx: Context) -> dict[str, Any]:
    """Fused linear + activation, forward and backward (cotangent gy), over a (batch, in, out)
    sweep."""
    if ctx.quick:
        shapes, acts = LINEAR_QUICK, ("relu",)
    else:
        shapes, acts = (LINEAR_SHAPES if ctx.device == "cpu" else LINEAR_SHAPES_GPU), ACTIVATIONS
    cases, total = [], len(shapes) * len(acts)
    for i, (batch, n_in, n_out) in enumerate(shapes):
        rng = _rng(i)
        x = rng.standard_normal((batch, n_in), np.float32)
        w = (rng.standard_normal((n_out, n_in)) / math.sqrt(n_in)).astype(np.float32)
        b = rng.standard_normal(n_out, np.float32)
        gy = rng.standard_normal((batch, n_out), np.float32)
        if "relu" in acts:
            x = clear_of_kinks([(w, b)], x, rng)
        for act in acts:
            params = {
                "batch": batch,
                "in": n_in,
                "out": n_out,
                "activation": act,
                "flops": 6 * batch * n_in * n_out,
            }
            cases.append(
                run_case(
                    ctx,
                    f"[linear {len(cases) + 1}/{total}]",
                    f"{batch}x{n_in}x{n_out} {act}",
                    params,
                    lambda lib, a=(x, w, b, gy), act=act: lib.linear(*a, act),
                    ["grad x", "grad W", "grad b"],
                    BUDGET["linear"],
                )
            )
    return {
        "cases": cases,
        "notes": [
            "value = the layer's output; gradients for x, W and b against a random cotangent.",
            "NumPy by hand is the unfused sequence: matmul, bias, activation, its derivative, "
            "two matmuls and a sum (GELU's erf from SciPy).",
        ],
    }


def mlp(ctx: Context) -> dict[str, Any]:
    """One SGD training step of an MLP: forward, softmax cross-entropy, backward, update."""
    configs = MLPS_QUICK if ctx.quick else MLPS
    cases = []
    for i, (sizes, batch) in enumerate(configs):
        params, x, t = mlp_inputs(sizes, batch, seed=i)
        case = run_case(
            ctx,
            f"[mlp {i + 1}/{len(configs)}]",
            mlp_name(sizes, batch),
            {"sizes": sizes, "batch": batch, "flops": mlp_flops(sizes, batch), "lr": LR},
            lambda lib, p=params, x=x, t=t: lib.mlp(p, x, t, LR),
            mlp_names(sizes),
            BUDGET["mlp"],
        )
        cases.append(case)
    return {
        "cases": cases,
        "notes": [
            "ReLU hidden layers, plain SGD (lr 0.01); all start from the same weights and batch.",
            "gradtensor: nn.MLP + optim.SGD"
            if R._use_nn_modules(__import__("gradtensor"))
            else "gradtensor: F.linear layers + a no_grad SGD update (nn.MLP not present)",
        ],
    }


def scaling(ctx: Context) -> dict[str, Any]:
    """MLP step time as the batch doubles (width fixed) and as the width doubles (batch fixed)."""
    if ctx.quick:
        width, batches, batch0, widths = SCALING_QUICK
    elif ctx.device == "cpu":
        width, batches, batch0, widths = (
            SCALING_WIDTH,
            SCALING_BATCHES,
            SCALING_BATCH,
            SCALING_WIDTHS,
        )
    else:
        width, batches, batch0, widths = SCALING_GPU
    runs = [("batch", b, [784, width, width, 10], b) for b in batches]
    runs += [("width", w, [784, w, w, 10], batch0) for w in widths]
    keys = [k for k in SCALING_LIBS if k in ctx.libs]
    cases = []
    for i, (series, value, sizes, batch) in enumerate(runs):
        params, x, t = mlp_inputs(sizes, batch, seed=100 + i)
        flops = mlp_flops(sizes, batch)
        case = run_case(
            ctx,
            f"[scaling {i + 1}/{len(runs)}]",
            f"{series} {value}: " + mlp_name(sizes, batch),
            {"series": series, "value": value, "sizes": sizes, "batch": batch, "flops": flops},
            lambda lib, p=params, x=x, t=t: lib.mlp(p, x, t, LR),
            mlp_names(sizes),
            BUDGET["scaling"],
            keys,
        )
        for r in case["results"].values():
            r["gflops_per_s"] = flops / r["median_s"] / 1e9
        cases.append(case)
    return {
        "cases": cases,
        "notes": [
            f"batch series: 784-{width}-{width}-10; width series: 784-w-w-10 at batch {batch0}.",
            "Work (flops) doubles with the batch and grows ~4x with the width; a constant "
            "GFLOP/s means cost grows in step with work.",
        ],
    }


def memory(ctx: Context) -> dict[str, Any]:
    """Peak memory of one training step, each implementation alone in a fresh process."""
    configs = MLPS_QUICK if ctx.quick else MLPS
    keys = list(ctx.libs)
    cases = []
    for i, (sizes, batch) in enumerate(configs):
        name = mlp_name(sizes, batch)
        log(
            f"[memory {i + 1}/{len(configs)}] {name}: {len(keys)} implementations, one process each"
        )
        results, errors, skipped = {}, {}, {}
        for key in keys:
            out = _probe(ctx, key, sizes, batch)
            if "error" in out:
                errors[key] = out["error"]
            elif "skipped" in out:
                skipped[key] = out["skipped"]
            else:
                results[key] = dict(out, label=R.LABELS[key])
        base = results.get("gradtensor", {}).get("peak_bytes")
        for r in results.values():
            if base and r.get("peak_bytes") is not None:
                r["ratio"] = r["peak_bytes"] / base
        params = {"sizes": sizes, "batch": batch, "flops": mlp_flops(sizes, batch)}
        case = {"name": name, "params": params, "results": results}
        case.update({k: v for k, v in (("errors", errors), ("skipped", skipped)) if v})
        print_memory(case)
        cases.append(case)
    if ctx.device == "cpu":
        how = (
            "peak: the resident set's high-water mark during a steady-state step (after a warm-up "
            "step) above the process just before the implementation was built: its copy of the "
            "weights and batch, what it keeps between steps, and the step's activations and "
            "temporaries; held: what it keeps between steps; step = peak - held. Each "
            "implementation runs in a fresh process with glibc's mmap threshold fixed at 64 KiB, "
            "so freed buffers leave the resident set. traced: tracemalloc's peak over the same "
            "span, NumPy buffers only (it cannot see PyTorch's or XLA's allocators)."
        )
    else:
        how = (
            "peak: device bytes in use during a steady-state step above those in use before the "
            "implementation was built. CuPy (gradtensor, CuPy by hand): the default pool's total "
            "bytes after the step, its free blocks released before it; PyTorch: "
            "max_memory_allocated; JAX: no statistic, not measured."
        )
    return {"cases": cases, "notes": [how]}


def print_memory(case: dict[str, Any]) -> None:
    for r in case["results"].values():
        traced = r.get("traced_peak_bytes")
        ratio = f"{r['ratio']:6.2f}x" if "ratio" in r else "     -"
        print(
            f"    {r['label']:24s} peak {fmt_bytes(r['peak_bytes'])}  (held "
            f"{fmt_bytes(r['held_bytes']).strip()}, step {fmt_bytes(r['step_bytes']).strip()}"
            + (f", traced {fmt_bytes(traced).strip()}" if traced is not None else "")
            + f")  {ratio} gradtensor's"
        )
    for key, msg in case.get("errors", {}).items():
        print(f"    {R.LABELS[key]:24s} DROPPED: {msg}")
    for key, msg in case.get("skipped", {}).items():
        print(f"    {R.LABELS[key]:24s} skipped: {msg}")
    sys.stdout.flush()


def _probe(ctx: Context, key: str, sizes: list[int], batch: int) -> dict[str, Any]:
    arg = json.dumps({"key": key, "sizes": sizes, "batch": batch, "device": ctx.device})
    env = dict(os.environ)
    env["MALLOC_MMAP_THRESHOLD_"] = "65536"
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "benchmarks.memprobe", arg],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
    except subprocess.TimeoutExpired:
        return {"error": "the probe process ran past 600 s"}
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
        return {"error": f"probe exited {proc.returncode}: {tail[0]}"}
    return json.loads(lines[-1])


SUITES: dict[str, Callable[[Context], dict[str, Any]]] = {
    "overhead": overhead,
    "linear": linear,
    "mlp": mlp,
    "scaling": scaling,
    "memory": memory,
}


# -- targets -----------------------------------------------------------------------------------


@dataclass
class Target:
    suite: str
    device: str
    text: str
    ref: str  # gradtensor's time is divided by this implementation's
    limit: float
    strict: bool = False  # "faster than" (<) rather than "no slower than" (<=)
    provisional: bool = False
    when: Callable[[str], bool] | None = None  # which cases (by name) the target applies to


def _dims(case: str) -> tuple[int, ...]:
    """(batch, in, out) from a linear case name such as "256x1024x1024 relu"."""
    try:
        return tuple(int(v) for v in case.split()[0].split("x"))
    except ValueError:
        return ()


def _memory_or_launch_bound(case: str) -> bool:
    # The kernels issue: B*Out large against In (taken as In <= 128 with B*Out >= 2^20, where a
    # GEMM does under 64 flops per byte), or every dimension at most 512.
    d = _dims(case)
    return len(d) == 3 and (max(d) <= 512 or (d[1] <= 128 and d[0] * d[2] >= 1 << 20))


TARGETS = [
    Target("overhead", "cpu", "per-op overhead no higher than PyTorch eager's", "torch", 1.0),
    Target("mlp", "cpu", "MLP step no slower than PyTorch CPU", "torch", 1.0),
    Target("mlp", "cpu", "MLP step within 1.1x of NumPy by hand", "numpy", 1.1),
    Target("linear", "cpu", "fused layer faster than unfused NumPy", "numpy", 1.0, strict=True),
    # GPU, from the kernels and GPU issues (TF32 off on both sides). The per-op overhead on the
    # GPU has no target: it is reported, as the figure CUDA-graph capture will attack.
    Target("mlp", "cuda", "MLP step no slower than PyTorch CUDA", "torch", 1.0),
    Target("linear", "cuda", "fused layer no slower than PyTorch eager", "torch", 1.0),
    Target(
        "linear",
        "cuda",
        "fused layer >= 1.3x faster than PyTorch where memory- or launch-bound",
        "torch",
        1 / 1.3,
        when=_memory_or_launch_bound,
    ),
]


def check_targets(run: dict[str, Any]) -> list[dict[str, Any]]:
    """Each target against each case of a run: the ratio measured and whether it is met."""
    rows = []
    device = run["settings"]["device"]
    for tg in TARGETS:
        if tg.device != device or tg.suite not in run["suites"]:
            continue
        for case in run["suites"][tg.suite]["cases"]:
            if tg.when is not None and not tg.when(case["name"]):
                continue
            res = case["results"]
            row = {
                "suite": tg.suite,
                "case": case["name"],
                "target": tg.text,
                "ref": tg.ref,
                "limit": tg.limit,
                "strict": tg.strict,
                "provisional": tg.provisional,
            }
            if "gradtensor" not in res or tg.ref not in res:
                missing = "gradtensor" if "gradtensor" not in res else R.LABELS[tg.ref]
                why = (
                    case.get("errors", {}).get(tg.ref)
                    or case.get("skipped", {}).get(tg.ref)
                    or run.get("skipped", {}).get("numpy" if tg.ref == "cupy" else tg.ref)
                )
                row.update(
                    ratio=None,
                    met=None,
                    note=f"{missing} has no timing" + (f" ({why})" if why else ""),
                )
            else:
                ratio = res["gradtensor"]["median_s"] / res[tg.ref]["median_s"]
                met = ratio < tg.limit if tg.strict else ratio <= tg.limit
                row.update(ratio=ratio, met=bool(met))
            rows.append(row)
    return rows


def verdict(row: dict[str, Any]) -> str:
    if row["met"] is None:
        return "not measured: " + row["note"]
    word = "met" if row["met"] else "MISSED"
    return word + (" (provisional target)" if row["provisional"] else "")


def print_targets(rows: list[dict[str, Any]]) -> None:
    if not rows:
        return
    log("\nTargets (gradtensor's median time / the reference's, measured in this run):")
    for r in rows:
        op = "<" if r["strict"] else "<="
        ratio = f"{r['ratio']:6.3f}" if r["ratio"] is not None else "      -"
        log(f"  {r['target']:52s} {r['case']:34s} {ratio}  ({op} {r['limit']:.2f})  {verdict(r)}")
