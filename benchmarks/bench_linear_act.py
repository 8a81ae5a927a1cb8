"""Fused linear + activation kernels against the unfused array sequence they replace.

CPU: kernels.cpu (fwd + bwd) against NumPy's matmul, bias add, activation, then act', the two
matmuls and the bias sum, each a separate pass. GPU (when CuPy and a GPU are present): a sweep
of B, In, Out comparing kernels.cuda path A, path B, the unfused CuPy sequence and PyTorch eager
(F.linear + activation, autograd backward), float32 with TF32 off on every side.
Both sides run in one process, alternating, after warm-up; figures are medians.
Run: python -m benchmarks.bench_linear_act [--quick] [--no-gpu] [--threads N]
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

# CuPy reads this when it is imported; TF32 would make its GEMMs incomparable to float32 ones.
os.environ.setdefault("CUPY_TF32", "0")

import numpy as np  # noqa: E402

from benchmarks.common import (  # noqa: E402
    SETTLE_S,
    alternate,
    fmt_time,
    limit_threads,
    machine,
    save,
)
from gradtensor.kernels import blas as kblas  # noqa: E402
from gradtensor.kernels import cpu as kcpu  # noqa: E402

# (B, In, Out) -> the most fused fwd+bwd may take, as a fraction of unfused; None: no target.
CPU_SHAPES: dict[tuple[int, int, int], float | None] = {
    (65536, 64, 64): 0.75,
    (256, 1024, 1024): 0.95,
    (8192, 256, 256): None,
    (65536, 16, 16): None,
}
QUICK_CPU_SHAPES = [(65536, 64, 64), (256, 1024, 1024)]
GPU_SIZES = [64, 256, 1024, 4096, 8192]
QUICK_GPU_SIZES = [64, 1024]

_SQRT2 = math.sqrt(2.0)
_INV_SQRT2PI = 1.0 / math.sqrt(2.0 * math.pi)
_K = math.sqrt(2.0 / math.pi)
_C = 0.044715


def erf_function(xp: Any) -> Callable | None:
    """The library's vectorized erf (NumPy has none), or None when it is not installed."""
    try:
        if xp is np:
            from scipy.special import erf
        else:
            from cupyx.scipy.special import erf
    except ImportError:
        return None
    return erf


def unfused(xp: Any, name: str, erf: Callable | None) -> Callable:
    """fwd + bwd as a NumPy/CuPy user writes it: one array op per step, z kept for backward."""

    def run(x, w, b, gy):
        z = x @ w.T + b
        if name == "identity":
            y, gz = z, gy
        elif name == "relu":
            y = xp.maximum(z, 0)
            gz = gy * (z > 0)
        elif name == "sigmoid":
            y = 1 / (1 + xp.exp(-z))
            gz = gy * y * (1 - y)
        elif name == "tanh":
            y = xp.tanh(z)
            gz = gy * (1 - y * y)
        elif name == "gelu":
            cdf = 0.5 * (1 + erf(z / _SQRT2))
            y = z * cdf
            gz = gy * (cdf + z * xp.exp(-0.5 * z * z) * _INV_SQRT2PI)
        else:
            t = xp.tanh(_K * (z + _C * z * z * z))
            y = 0.5 * z * (1 + t)
            gz = gy * (0.5 * (1 + t) + 0.5 * z * (1 - t * t) * _K * (1 + 3 * _C * z * z))
        return y, gz @ w, gz.T @ x, gz.sum(axis=0)

    return run


def fused(module: Any, name: str, **kw: Any) -> Callable:
    def run(x, w, b, gy):
        y, aux = module.linear_act_forward(x, w, b, name, **kw)
        return (y, *module.linear_act_backward(gy, x, w, aux, name, **kw))

    return run


def inputs(xp: Any, shape: tuple[int, int, int], seed: int = 0) -> tuple[Any, ...]:
    batch, n_in, n_out = shape
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((batch, n_in), np.float32)
    w = (rng.standard_normal((n_out, n_in)) / math.sqrt(n_in)).astype(np.float32)
    b = rng.standard_normal(n_out, np.float32)
    gy = rng.standard_normal((batch, n_out), np.float32)
    return tuple(xp.asarray(a) for a in (x, w, b, gy))


def _agree(a: Any, c: Any, to_host: Callable = np.asarray) -> float:
    """Largest difference relative to the scale, so a fast wrong kernel cannot pass unseen."""
    a, c = to_host(a).astype(np.float64), to_host(c).astype(np.float64)
    return float(np.abs(a - c).max() / max(1.0, np.abs(c).max()))


def _with_blas(name: str, fn: Callable) -> Callable:
    """fn run with kernels.blas set to `name` (and set back after)."""

    def run(*args):
        prev = kblas.select(name)
        try:
            return fn(*args)
        finally:
            kblas.select(prev)

    return run


def cpu_section(quick: bool, settle: float = 0.0) -> dict[str, Any]:
    """`settle`: the pause between samples when several libraries' thread pools are awake."""
    kcpu.warmup()  # compilation (or the cache load) never lands in a timed region
    erf = erf_function(np)
    shapes = QUICK_CPU_SHAPES if quick else list(CPU_SHAPES)
    names = ["relu", "gelu"] if quick else list(kcpu.ACTIVATIONS)
    repeats = 7 if quick else 21
    # When MKL is behind the kernels, the kernels also run on NumPy's BLAS: that column shows what
    # fusion alone buys, apart from the faster GEMMs.
    own_blas = kblas.NAME
    split = own_blas != "numpy"
    rows = []
    print(
        f"CPU: fused (kernels.cpu, GEMMs by {own_blas}) vs unfused NumPy, float32, fwd+bwd, medians"
    )
    print(
        f"{'B x In x Out':>16} {'act':>10} {'unfused':>11} {'fused':>11} {'ratio':>6}  target"
        + ("   fused on NumPy's BLAS (ratio)" if split else "")
    )
    for shape in shapes:
        args = inputs(np, shape)
        for name in names:
            if name == "gelu" and erf is None:
                print(f"{'x'.join(map(str, shape)):>16} {name:>10}  skipped: SciPy (erf) missing")
                continue
            cases = {"unfused": unfused(np, name, erf), "fused": fused(kcpu, name)}
            if split:
                cases["fused_numpy_blas"] = _with_blas("numpy", fused(kcpu, name))
            err = max(
                _agree(a, c)
                for k in cases
                if k != "unfused"
                for a, c in zip(cases[k](*args), cases["unfused"](*args), strict=True)
            )
            timed = {k: (lambda f=f, a=args: f(*a)) for k, f in cases.items()}
            t = alternate(timed, repeats=repeats, settle=settle)
            ratio = t["fused"]["median_s"] / t["unfused"]["median_s"]
            target = CPU_SHAPES.get(shape)
            verdict = "" if target is None else ("PASS" if ratio <= target else "MISS")
            label = "x".join(map(str, shape))
            row = {
                "shape": list(shape),
                "activation": name,
                "unfused": t["unfused"],
                "fused": t["fused"],
                "fused_blas": own_blas,
                "ratio_fused_over_unfused": ratio,
                "target": target,
                "verdict": verdict or None,
                "max_rel_difference": err,
            }
            extra = ""
            if split:
                row["fused_numpy_blas"] = t["fused_numpy_blas"]
                row["ratio_fused_numpy_blas_over_unfused"] = fusion_only = (
                    t["fused_numpy_blas"]["median_s"] / t["unfused"]["median_s"]
                )
                extra = f"   {fmt_time(t['fused_numpy_blas']['median_s'])} ({fusion_only:.3f})"
            print(
                f"{label:>16} {name:>10} {fmt_time(t['unfused']['median_s'])} "
                f"{fmt_time(t['fused']['median_s'])} {ratio:6.3f}  "
                + (f"<= {target:.2f} {verdict}" if target is not None else "-")
                + extra
            )
            rows.append(row)
    return {"rows": rows, "threads": cpu_threads(), "kernels_blas": own_blas}


def cpu_threads() -> dict[str, Any]:
    import numba

    info: dict[str, Any] = {
        "numba_threads": numba.get_num_threads(),
        "parallel_min_elements": kcpu.PARALLEL_MIN_ELEMENTS,
        "parallel_from_elements_now": kcpu._parallel_min(),
    }
    try:
        from threadpoolctl import threadpool_info

        info["blas"] = [
            {k: p.get(k) for k in ("internal_api", "version", "num_threads")}
            for p in threadpool_info()
        ]
    except ImportError:
        pass
    return info


def _why_no_gpu() -> str | None:
    if os.environ.get("NUMBA_ENABLE_CUDASIM") == "1":
        return None
    try:
        import cupy
    except ImportError:
        return "CuPy is not installed"
    try:
        if cupy.cuda.runtime.getDeviceCount() == 0:
            return "no CUDA GPU is available"
    except Exception as e:
        return f"no CUDA GPU is available ({type(e).__name__})"
    return None


def _torch_cuda() -> Any | None:
    try:
        import torch
    except ImportError:
        return None
    if not torch.cuda.is_available():
        return None
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    return torch


def torch_eager(torch: Any, name: str) -> Callable:
    import torch.nn.functional as F

    acts = {
        "identity": lambda v: v,
        "relu": F.relu,
        "gelu": F.gelu,
        "gelu_tanh": lambda v: F.gelu(v, approximate="tanh"),
        "sigmoid": torch.sigmoid,
        "tanh": torch.tanh,
    }

    def run(x, w, b, gy):
        x.grad = w.grad = b.grad = None
        y = acts[name](F.linear(x, w, b))
        y.backward(gy)
        return y, x.grad, w.grad, b.grad

    return run


def gemms_only(xp: Any) -> Callable:
    """The three GEMMs of a layer's fwd+bwd and nothing else: the floor for large layers."""

    def run(x, w, b, gy):
        return x @ w.T, gy @ w, gy.T @ x

    return run


def gpu_targets(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The kernels issue's GPU targets, judged on the path F.linear takes for each shape."""
    out = []
    for row in rows:
        batch, n_in, n_out = row["shape"]
        med = {k: v["median_s"] for k, v in row["times"].items()}
        fused_s = med["path_b" if row["path_b_chosen_by_default"] else "path_a"]
        checks = []
        if "torch" in med:
            checks.append(("no slower than PyTorch eager", fused_s / med["torch"], 1.0))
            if max(row["shape"]) <= 512 or (n_in <= 128 and batch * n_out >= 1 << 20):
                checks.append(("1.3x faster than PyTorch (memory/launch-bound)",
                               fused_s / med["torch"], 1 / 1.3))  # fmt: skip
        if min(row["shape"]) >= 2048 and "gemms" in med:
            checks.append(("within 10% of the three GEMMs alone", fused_s / med["gemms"], 1.1))
        for text, ratio, limit in checks:
            out.append(
                {
                    "shape": row["shape"],
                    "activation": row["activation"],
                    "target": text,
                    "ratio": ratio,
                    "limit": limit,
                    "met": bool(ratio <= limit),
                }
            )
    return out


def gpu_section(quick: bool) -> dict[str, Any] | None:
    reason = _why_no_gpu()
    if reason is not None:
        print(f"GPU: skipped ({reason})")
        return None
    from gradtensor.kernels import cuda as kcuda

    simulated = kcuda.SIMULATOR
    if simulated:
        # A smoke run of this section's plumbing on NumPy arrays; its timings mean nothing.
        xp, sync, to_host = np, (lambda: None), np.asarray
        sizes, names, repeats, torch = [8, 16], ["gelu"], 2, None
    else:
        import cupy

        xp, sync, to_host = cupy, cupy.cuda.Device().synchronize, cupy.asnumpy
        sizes = QUICK_GPU_SIZES if quick else GPU_SIZES
        names = ["gelu"] if quick else ["relu", "gelu"]
        repeats = 10 if quick else 25
        torch = _torch_cuda()
    kcuda.warmup((np.dtype(np.float32),))  # Numba-CUDA compiles on first launch
    erf = erf_function(xp)
    rows = []
    print("GPU: kernels.cuda path A / path B vs unfused CuPy and PyTorch eager, float32, fwd+bwd")
    print(
        f"{'B x In x Out':>16} {'act':>6} {'A':>11} {'B':>11} {'unfused':>11} {'torch':>11} "
        f"{'GEMMs only':>11}"
    )
    for batch in sizes:
        for n_in in sizes:
            for n_out in sizes:
                shape = (batch, n_in, n_out)
                args = inputs(xp, shape)
                for name in names:
                    cases = {
                        "path_a": fused(kcuda, name, path="a"),
                        "path_b": fused(kcuda, name, path="b"),
                    }
                    if erf is not None or name != "gelu":
                        cases["unfused"] = unfused(xp, name, erf)
                    cases["gemms"] = gemms_only(xp)
                    ref = cases["path_a"](*args)
                    errs = {
                        k: max(_agree(a, c, to_host) for a, c in zip(f(*args), ref, strict=True))
                        for k, f in cases.items()
                        if k != "gemms"  # computes something else: no activation, no bias
                    }
                    timed = {k: (lambda f=f, a=args: f(*a)) for k, f in cases.items()}
                    if torch is not None:
                        targs = [torch.as_tensor(a, device="cuda") for a in args]
                        for a in targs[:3]:
                            a.requires_grad_(True)
                        run = torch_eager(torch, name)
                        timed["torch"] = lambda run=run, targs=targs: run(*targs)
                    t = alternate(timed, repeats=repeats, sync=sync)
                    med = {k: v["median_s"] for k, v in t.items()}
                    cells = [
                        fmt_time(med[k]) if k in med else f"{'-':>11}"
                        for k in ("path_a", "path_b", "unfused", "torch", "gemms")
                    ]
                    print(f"{'x'.join(map(str, shape)):>16} {name:>6} " + " ".join(cells))
                    rows.append(
                        {
                            "shape": list(shape),
                            "activation": name,
                            "times": t,
                            "max_rel_difference_vs_path_a": errs,
                            "path_b_chosen_by_default": kcuda.use_path_b(*shape),
                        }
                    )
    device: dict[str, Any] = {"simulator": simulated}
    if not simulated:
        import cupy

        props = cupy.cuda.runtime.getDeviceProperties(cupy.cuda.Device().id)
        device.update(
            name=props["name"].decode() if isinstance(props["name"], bytes) else props["name"],
            cupy=cupy.__version__,
            cuda_runtime=cupy.cuda.runtime.runtimeGetVersion(),
            cupy_tf32=os.environ.get("CUPY_TF32"),
            torch=None if torch is None else torch.__version__,
            torch_allow_tf32=None if torch is None else torch.backends.cuda.matmul.allow_tf32,
        )
    targets = gpu_targets(rows)
    if targets:
        print("GPU targets (the path F.linear takes / the reference):")
        for t in targets:
            shape = "x".join(map(str, t["shape"]))
            print(
                f"  {t['target']:<48} {shape:>16} {t['activation']:>6} {t['ratio']:6.3f} "
                f"(<= {t['limit']:.2f}) {'met' if t['met'] else 'MISSED'}"
            )
    return {
        "device": device,
        "rows": rows,
        "targets": targets,
        "path_b_max_macs": kcuda.PATH_B_MAX_MACS,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="few shapes, few repeats")
    parser.add_argument("--no-gpu", action="store_true", help="skip the GPU section")
    parser.add_argument("--no-cpu", action="store_true", help="skip the CPU section")
    parser.add_argument("--no-save", action="store_true", help="print only, write no JSON")
    parser.add_argument(
        "--threads", type=int, default=1, help="CPU threads for every library (default 1)"
    )
    args = parser.parse_args(argv)
    threads = limit_threads(args.threads)
    info = machine()
    if not args.no_cpu:
        # Other processes on a small machine skew medians: record how busy it was around it.
        load_before = os.getloadavg()
        cpu = cpu_section(args.quick, settle=SETTLE_S if args.threads > 1 else 0.0)
        cpu["thread_limits"] = threads
        cpu["loadavg_before_after"] = [load_before, os.getloadavg()]
        print(f"load average (1, 5, 15 min) before {load_before}, after {os.getloadavg()}")
        payload = {"benchmark": "linear_act", "quick": args.quick, "machine": info, "cpu": cpu}
        if not args.no_save:
            name = "linear_act" + ("" if args.threads == 1 else f"-{args.threads}threads")
            print(f"saved {save(name, payload)}")
    gpu = None if args.no_gpu else gpu_section(args.quick)
    if gpu is not None and not gpu["device"]["simulator"] and not args.no_save:
        tag = "".join(c if c.isalnum() else "-" for c in gpu["device"]["name"]).strip("-")
        gpu_payload = {"benchmark": "linear_act_gpu", "quick": args.quick, "machine": info}
        print(f"saved {save('linear_act_gpu', {**gpu_payload, 'gpu': gpu}, tag=tag)}")


if __name__ == "__main__":
    main()
