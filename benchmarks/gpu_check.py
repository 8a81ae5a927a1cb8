"""`python benchmarks/gpu_check.py [--deadline S] [--out DIR] [--only a,b,...]`, called by
benchmarks/gpu_session.sh: everything a lent GPU is for, in one run under a deadline. Parts run in
priority order, each in a process of its own (a CUDA error that poisons a context, or a hang, costs
one part) with at most its share of the time left, or are skipped with the reason. At most five
files land in --out (default $OUT, else benchmarks/results/gpu): results.json (each part's status,
reason, seconds and findings, rewritten after each part), session.log, tests.txt (`pytest -m
cuda`), bench-mlp.json and bench-compile.json. GPU_CHECK_STANDIN=1 installs tests/cupy_standin as
`cupy`: the CPU test.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import datetime as dt
import itertools
import json
import math
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script: make the repository importable
    sys.path.insert(0, str(ROOT))
from benchmarks.impls import Skip  # noqa: E402

DEFAULT_DEADLINE_S = 480.0  # 8 minutes: one device call inside a 15-minute window
RESERVE_S = 2.0  # kept back for writing results.json after the last part
VARIANT_SHAPE = (77, 45, 131)  # ragged, several 64-wide tiles (the GPU's TILE) each way
# Path B's grid.y is ceil(B / 64): this batch asks for 65,536 rows of blocks (the limit is
# 65,535), and B * 1 * 1 = PATH_B_MAX_MACS, so the default dispatch takes path B too.
GRID_LIMIT_BATCH = 65536 * 64
# (B, In, Out) around PATH_B_MAX_MACS (1 << 22 multiply-adds) and well above it
TIMING_SHAPES = [(64, 64, 64), (256, 128, 128), (1024, 64, 64), (256, 256, 256), (4096, 64, 64),
                 (1024, 256, 256), (16384, 64, 64), (256, 1024, 1024), (4096, 512, 512),
                 (2048, 2048, 2048)]  # fmt: skip
# min_s: skipped with less left; cap_s: never given more; needs_gpu: skipped where part (a) found
# no GPU for Numba-CUDA; run(seconds it may take, out dir) -> its record
Part = collections.namedtuple("Part", "key name min_s cap_s needs_gpu run")
_sync = lambda: sys.modules["cupy"].cuda.Device().synchronize()
# What compute-sanitizer runs: a few launches of every kernel, small enough for its checks
WORKLOAD = """
import cupy
from benchmarks.gpu_check import on_path
from benchmarks.suites import linear_inputs
arrays = [cupy.asarray(a) for a in linear_inputs((70, 33, 65), clear=False)]
for path in "ab":
    for act in ("relu", "gelu"):
        on_path(path, act, *arrays)
cupy.cuda.Device().synchronize()
"""


def _numba_gpu_reason(require: bool = False) -> str | None:
    """Why Numba-CUDA kernels cannot launch here (None when they can); a Skip when required."""
    if require and _numba_gpu_reason() is not None:
        raise Skip(_numba_gpu_reason())
    from gradtensor import backend

    if backend.cuda_unavailable_reason() is not None:
        return f"no CUDA GPU for CuPy: {backend.cuda_unavailable_reason()}"
    if os.environ.get("GPU_CHECK_STANDIN") == "1":
        return "CuPy stand-in: Numba-CUDA needs a real GPU and driver"
    from numba import cuda

    return None if cuda.is_available() else "Numba-CUDA sees no GPU (driver or CUDA libraries)"


def _error(exc: BaseException) -> str:
    last = traceback.extract_tb(exc.__traceback__)[-1] if exc.__traceback__ else None
    where = f" (at {Path(last.filename).name}:{last.lineno})" if last else ""
    return f"{type(exc).__name__}: {str(exc)[:500]}{where}"


def on_path(path: str, act: str, x: Any, w: Any, b: Any, gy: Any) -> Any:
    """The fused GPU kernels alone, forward and backward, forced onto path A or B."""
    from gradtensor.kernels import cuda as kcuda

    y, aux = kcuda.linear_act_forward(x, w, b, act, path=path)
    return kcuda.linear_act_backward(gy, x, w, aux, act, path=path)


def _attempt(fn: Any, *args: Any, **kw: Any) -> Any:
    """fn's result, or the error it raised as text: one failed probe is not the whole part."""
    try:
        return fn(*args, **kw)
    except Exception as exc:  # a broken CUDA install raises more than ImportError
        return _error(exc)


def part_versions(budget: float, out: Path) -> dict[str, Any]:
    """(a) Versions, and what CuPy and Numba see."""
    from numba import cuda

    from benchmarks.__main__ import machine
    from gradtensor.kernels import cuda as kcuda

    rec: dict[str, Any] = {"python": platform.python_version(), "executable": sys.executable}
    for mod in ("numpy", "cupy", "numba", "numba_cuda", "torch", "jax", "pytest"):
        rec[mod] = _attempt(lambda m=mod: str(getattr(__import__(m), "__version__", "?")))
    reason, numba_ok = _numba_gpu_reason(), _attempt(cuda.is_available)
    rec.update(cupy_device=_attempt(machine, "cuda"), numba_cuda_available=numba_ok)
    rec.update(no_kernel_launches_because=reason, path_b_max_macs=kcuda.PATH_B_MAX_MACS)
    return {**rec, "kernels_cuda_simulator": kcuda.SIMULATOR}


def part_kernels(budget: float, out: Path) -> dict[str, Any]:
    """(b) Every kernels.cuda variant on a side stream, the grid limit, the optimizers."""
    _numba_gpu_reason(require=True)
    import cupy
    import numpy as np

    sys.path.insert(0, str(ROOT / "tests" / "kernels"))
    from linear_act_reference import check_module, forward_backward, inputs

    from gradtensor.kernels import cuda as kcuda

    t0 = time.perf_counter()
    kcuda.warmup()
    rec: dict[str, Any] = {"compile_s": time.perf_counter() - t0, "shape": list(VARIANT_SHAPE)}
    # A non-default stream: every launch must follow CuPy's current stream, not stream 0.
    stream, failures = cupy.cuda.Stream(non_blocking=True), {}
    variants = list(itertools.product((np.float16, np.float32, np.float64), ("a", "b"),
                                      kcuda.ACTIVATIONS, ("bias", "nobias")))  # fmt: skip
    with stream:
        for dtype, path, act, bias in variants:
            try:
                args = (VARIANT_SHAPE, act, bias == "bias", dtype, cupy.asarray, cupy.asnumpy)
                check_module(kcuda, *args, path=path)
            except Exception as exc:
                failures[f"{np.dtype(dtype).name}/{path}/{act}/{bias}"] = _error(exc)
    stream.synchronize()
    rec.update(variants=len(variants), failed_variants=failures)
    # The grid limit: forward and backward on path A, path B and the default dispatch.
    host = inputs((GRID_LIMIT_BATCH, 1, 1), np.float32)
    want, (x, w, b, gy), grid = forward_backward(*host, "relu"), map(cupy.asarray, host), {}
    for path in ("a", "b", None):
        try:
            y, aux = kcuda.linear_act_forward(x, w, b, "relu", path=path)
            got = (y, *kcuda.linear_act_backward(gy, x, w, aux, "relu", path=path))
            err = max(float(np.abs(cupy.asnumpy(g).astype(np.float64) - r).max())
                      / max(1.0, float(np.abs(r).max())) for g, r in zip(got, want))  # fmt: skip
            grid[str(path)] = "ok" if err <= 1e-3 else f"mismatch: max rel error {err}"
        except Exception as exc:
            grid[str(path)] = _error(exc)
    takes_b = kcuda.use_path_b(GRID_LIMIT_BATCH, 1, 1)
    rec["grid_limit"] = {"shape": [GRID_LIMIT_BATCH, 1, 1], "default_takes_path_b": takes_b}
    rec["grid_limit"]["by_path"], rec["optimizers"] = grid, _check_optimizers(stream)
    found = [("grid-limit path", grid), ("optimizer", rec["optimizers"])]
    bad = [f"{what} {k}: {v}" for what, d in found for k, v in d.items() if v != "ok"]
    if failures or bad:
        reason = f"{len(failures)} of {len(variants)} variants and " + ", ".join(bad)
        rec.update(status="failed", reason=reason)
    return rec


def _check_optimizers(stream: Any, largest: int = 100_003) -> dict[str, str]:
    """Each one-pass optimizer update over a list of 19 CuPy tensors (two or three launches, on
    a non-default stream) against kernels.optim_cpu on host copies, tensor by tensor."""
    import cupy
    import numpy as np

    from gradtensor.kernels import optim_cpu, optim_cuda

    hyper = {  # and how many arrays each update takes
        "sgd_update": (3, dict(lr=0.1, momentum=0.9, weight_decay=0.01)),
        "adam_update": (5, dict(lr=1e-2, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.01,
                                decoupled=True, step_size=0.1, bias_correction2_sqrt=0.05)),
        "rmsprop_update": (5, dict(lr=1e-2, alpha=0.9, eps=1e-8, weight_decay=0.01, momentum=0.9)),
    }  # fmt: skip
    rng, result = np.random.default_rng(0), {}
    for (fn, (n, h)), dtype in itertools.product(hyper.items(), (np.float32, np.float64)):
        sizes = [(1, 37, 0, largest, 4096)[k % 5] for k in range(19)]
        host = [[np.abs(rng.standard_normal(m)).astype(dtype) + 1 for _ in range(n)] for m in sizes]
        for row in host if fn == "rmsprop_update" else []:
            row[2] += 10  # the square average stays above grad_avg squared
            row[3] *= 0.1
        label = f"{fn}/{np.dtype(dtype).name}"
        try:
            with stream:
                dev = [[cupy.asarray(a) for a in row] for row in host]
                getattr(optim_cuda, fn)(*map(list, zip(*dev)), **h)
            stream.synchronize()
            for row in host:
                getattr(optim_cpu, fn)(*row, **h)
            pairs = [(w, cupy.asnumpy(g)) for w, g in zip(sum(host, []), sum(dev, [])) if w.size]
            worst = max(float((abs(g - w) / np.maximum(abs(w), 1)).max()) for w, g in pairs)
            # The same operations in the same order, but NVVM contracts a*b+c into FMAs.
            tol = 1e-12 if dtype == np.float64 else 1e-5
            result[label] = "ok" if worst <= tol else f"mismatch: max rel error {worst}"
        except Exception as exc:
            result[label] = _error(exc)
    return result


def part_tests(budget: float, out: Path) -> dict[str, Any]:
    """(c) The cuda-marked tests, killed (workers too) when the part's time is up."""
    cmd = [sys.executable, "-m", "pytest", "-m", "cuda", "-q", "-rfEs", "-p", "no:cacheprovider"]
    cmd += os.environ.get("GPU_CHECK_PYTEST_ARGS", "tests").split()
    with (out / "tests.txt").open("w") as f:
        f.write("$ " + " ".join(cmd) + "\n")
        f.flush()
        rc = _wait(cmd, f, budget - 3)  # leaves time to write this record
    lines = (out / "tests.txt").read_text().splitlines()
    counts = re.compile(r"\d+ (passed|failed|errors?|skipped|deselected)\b")
    summary = next((ln for ln in reversed(lines) if counts.search(ln)), "").strip("= ")
    failed = [ln for ln in lines if ln.startswith(("FAILED", "ERROR"))][:50]
    rec = {"command": " ".join(cmd), "exit_status": rc, "summary": summary, "failed": failed}
    if rc is None:
        rec.update(status="failed", reason=f"stopped after {budget - 3:.0f} s (see tests.txt)")
    elif rc != 0:
        rec.update(status="failed", reason=f"pytest exit status {rc}: {summary}")
    return rec


def part_graph(budget: float, out: Path) -> dict[str, Any]:
    """(d) A CUDA graph of an MLP training step (SGD, momentum), replayed against eager steps."""
    _numba_gpu_reason(require=True)
    import cupy

    from benchmarks.impls import GradTensor
    from benchmarks.suites import mlp_inputs

    args = (*mlp_inputs([64, 128, 10], 64), 0.01, 0.9)
    graphed, eager = GradTensor("cuda").mlp(*args), GradTensor("cuda").mlp(*args)
    stream = cupy.cuda.Stream(non_blocking=True)
    with stream:
        for _ in range(3):  # compiles kernels and fills the memory pool before capture
            graphed.step()
            eager.step()
        stream.synchronize()
        try:
            stream.begin_capture()
            try:
                graphed.step()
            finally:
                graph = stream.end_capture()
        except Exception as exc:
            return {"status": "failed", "reason": f"capture: {_error(exc)}", "works": False}
        for _ in range(3):
            graph.launch()
            eager.step()
        stream.synchronize()
    # Replays must move the weights exactly as eager steps do (3 warm-up + 3 replays each).
    pairs = zip(graphed.parts[3], eager.parts[3])
    diff = max(float(cupy.abs(p.data - q.data).max()) for p, q in pairs)
    rec: dict[str, Any] = {"works": diff <= 1e-5, "max_weight_difference_vs_eager": diff}
    if not rec["works"]:
        rec.update(status="failed", reason=f"replayed steps differ from eager ones by {diff:g}")
    return rec


def part_sanitizer(budget: float, out: Path) -> dict[str, Any]:
    """(e) compute-sanitizer's memcheck and racecheck over a few launches of every kernel."""
    _numba_gpu_reason(require=True)
    homes = [os.environ.get("CUDA_HOME"), "/usr/local/cuda"]
    found = [shutil.which("compute-sanitizer")] + [f"{h}/bin/compute-sanitizer" for h in homes if h]
    tool = next((p for p in found if p and os.access(p, os.X_OK)), None)
    if tool is None:
        raise Skip("compute-sanitizer is not on PATH (nor in $CUDA_HOME/bin, /usr/local/cuda/bin)")
    rec: dict[str, Any] = {"tool": tool}
    started, failed = time.monotonic(), []
    for check in ("memcheck", "racecheck"):
        left = budget - (time.monotonic() - started)
        if left < 20:
            rec[check] = "skipped: out of time"
            continue
        cmd = [tool, "--tool", check, "--error-exitcode", "9", sys.executable, "-c", WORKLOAD]
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=left, cwd=ROOT)
            print(done.stdout[-4000:], done.stderr[-4000:], sep="\n")
            summary = [ln for ln in done.stdout.splitlines() if "ERROR SUMMARY" in ln]
            rec[check] = {"exit_status": done.returncode, "summary": summary[-1:] or None}
            failed += [check] if done.returncode != 0 else []
        except subprocess.TimeoutExpired:
            rec[check] = f"timed out after {left:.0f} s"
            failed.append(check)
    if failed:
        rec.update(status="failed", reason="compute-sanitizer: " + ", ".join(failed))
    return rec


def part_timings(budget: float, out: Path) -> dict[str, Any]:
    """(f) GELU layers on path A, path B, unfused CuPy and PyTorch: the measured crossover."""
    _numba_gpu_reason(require=True)
    import cupy

    from benchmarks import impls
    from benchmarks.suites import alternate, linear_inputs
    from gradtensor.kernels import cuda as kcuda

    started, names = time.monotonic(), {"cupy": "cupy_unfused", "torch": "torch"}
    libs, rows = impls.load(list(names), "cuda")[0], []
    for shape in TIMING_SHAPES:
        if time.monotonic() - started > 0.8 * budget:  # leave time to report what we have
            break
        host = linear_inputs(shape, clear=False)
        arrays = [cupy.asarray(a) for a in host]
        cases = {f"path_{p}": lambda p=p, a=arrays: on_path(p, "gelu", *a) for p in "ab"}
        for key, lib in libs.items():
            with contextlib.suppress(Skip):  # CuPy's GELU needs cupyx's erf
                cases[names[key]] = lib.linear(*host, "gelu").step
        med = {k: v["median_s"] for k, v in alternate(cases, repeats=10, sync=_sync).items()}
        rows.append({"shape": list(shape), "macs": math.prod(shape), "median_s": med})
        print(shape, {k: f"{v * 1e6:.1f} us" for k, v in med.items()}, flush=True)
    # the most MACs up to which path B won at every measured shape
    won = itertools.takewhile(lambda r: r["median_s"]["path_b"] <= r["median_s"]["path_a"],
                              sorted(rows, key=lambda r: r["macs"]))  # fmt: skip
    threshold = max((r["macs"] for r in won), default=0)
    rec = {"activation": "gelu", "dtype": "float32, TF32 off", "rows": rows}
    rec.update(shapes_planned=len(TIMING_SHAPES), path_b_max_macs_measured=threshold)
    rec["path_b_max_macs_now"] = kcuda.PATH_B_MAX_MACS
    if len(rows) < len(TIMING_SHAPES):
        rec["reason"] = f"out of time after {len(rows)} of {len(TIMING_SHAPES)} shapes"
    return rec


def part_mlp(budget: float, out: Path) -> dict[str, Any]:
    """(g) An MLP training step against PyTorch eager, through the benchmark harness."""
    _numba_gpu_reason(require=True)
    from benchmarks.__main__ import main as harness

    args = ["--suite", "mlp", "--device", "cuda", "--libs", "torch", "--no-kernels-off"]
    args += ["--budget", "0.3", "--out", str(out / "bench-mlp.json")]
    rc, run = harness(args), json.loads((out / "bench-mlp.json").read_text())
    rec = {"command": "python -m benchmarks " + " ".join(args), "targets": run.get("targets")}
    cases = run["suites"]["mlp"]["cases"]
    rec["median_s"] = {
        c["name"]: {k: v["median_s"] for k, v in c["results"].items()} for c in cases
    }
    rec["errors"] = {c["name"]: c["errors"] for c in cases if c.get("errors")}
    if rc != 0:
        rec.update(status="failed", reason=f"harness exit status {rc}")
    return rec


_NCCL_PROBE = """
import cupy, gradtensor as gt, gradtensor.distributed as dist
dist.init_process_group("nccl")
t = gt.ones(1000, device="cuda") * (dist.get_rank() + 1)
dist.all_reduce(t)
w = dist.all_reduce(t, op="mean", async_op=True)
w.wait()
print("NCCL-OK", dist.get_backend(), dist.get_world_size(), float(t.sum().item()))
dist.destroy_process_group()
"""


def part_compile_nccl(budget: float, out: Path) -> dict[str, Any]:
    """(h) gt.compile's MLP step against PyTorch eager on the GPU, and the NCCL backend of
    gradtensor.distributed on one process (one GPU: the calls, not the scaling)."""
    _numba_gpu_reason(require=True)
    from benchmarks.__main__ import main as harness
    from gradtensor.distributed.launch import find_mpiexec

    rec: dict[str, Any] = {}
    try:
        cmd = [find_mpiexec(), "-n", "1", sys.executable, "-c", _NCCL_PROBE]
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=60)
        ok = [ln for ln in proc.stdout.splitlines() if ln.startswith("NCCL-OK")]
        rec["nccl"] = ok[0] if ok else f"exit {proc.returncode}: {proc.stderr[-400:]}"
    except Exception as exc:
        rec["nccl"] = _error(exc)
    args = ["--suite", "compile", "--device", "cuda", "--libs", "torch", "--no-kernels-off"]
    args += ["--budget", "0.3", "--out", str(out / "bench-compile.json")]
    rc, run = harness(args), json.loads((out / "bench-compile.json").read_text())
    rec.update(command="python -m benchmarks " + " ".join(args), targets=run.get("targets"))
    if rc != 0:
        rec.update(status="failed", reason=f"harness exit status {rc}")
    return rec


PARTS = [
    Part("a", "versions", 5, 60, False, part_versions),
    Part("b", "kernels", 30, 150, True, part_kernels),
    Part("c", "cuda_tests", 5, 210, False, part_tests),  # on the stand-in too: 5 s tells it works
    Part("d", "cuda_graph", 20, 60, True, part_graph),
    Part("e", "compute_sanitizer", 40, 90, True, part_sanitizer),
    Part("f", "path_timings", 40, 120, True, part_timings),
    Part("g", "mlp_vs_torch", 40, 120, True, part_mlp),
    Part("h", "compile_and_nccl", 30, 90, True, part_compile_nccl),
]


def _wait(cmd: list[str], log: Any, budget: float) -> int | None:
    """Run cmd in a session of its own; its exit status, or None once killed at the budget."""
    child = subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                             start_new_session=True)  # fmt: skip
    try:
        return child.wait(timeout=max(1.0, budget))
    except subprocess.TimeoutExpired:
        os.killpg(child.pid, signal.SIGKILL)  # pytest workers and sanitizers go too
        child.wait()
        return None


def run_child(key: str, budget: float, out: Path, result: Path) -> int:
    """Run one part in this process and write its record to `result`."""
    if os.environ.get("GPU_CHECK_STANDIN") == "1":
        os.environ["GRADTENSOR_CUPY_STANDIN"] = "1"  # and in the pytest run of part (c)
        sys.path.insert(0, str(ROOT / "tests"))
        import cupy_standin

        cupy_standin.install()
        cupy_standin.set_device_count(1)
    try:
        rec = {"status": "ok", **next(p for p in PARTS if p.key == key).run(budget, out)}
    except Skip as exc:
        rec = {"status": "skipped", "reason": str(exc)}
    except BaseException as exc:  # SystemExit from a harness too: the record is what matters
        traceback.print_exc()
        rec = {"status": "failed", "reason": _error(exc)}
    result.write_text(json.dumps(rec, default=str))
    return 0


def run_part(part: Part, budget: float, out: Path, log: Any) -> dict[str, Any]:
    """One part in a child process (its own CUDA context), killed when its time is up."""
    with tempfile.TemporaryDirectory() as tmp:
        result = Path(tmp) / "part.json"
        cmd = [sys.executable, __file__, "--part", part.key, "--budget", f"{budget:.1f}"]
        rc = _wait(cmd + ["--out", str(out), "--result", str(result)], log, budget)
        if rc is None:
            return {"status": "failed", "reason": f"timed out after {budget:.0f} s"}
        if result.exists():
            return json.loads(result.read_text())
        return {"status": "failed", "reason": f"exit status {rc}, no record"}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    deadline = float(os.environ.get("GPU_CHECK_DEADLINE_S") or DEFAULT_DEADLINE_S)
    ap.add_argument("--deadline", type=float, default=deadline)
    out = os.environ.get("OUT") or str(ROOT / "benchmarks" / "results" / "gpu")
    ap.add_argument("--out", type=Path, default=Path(out))
    ap.add_argument("--only", default="", help="comma-separated part keys (a-g); default all")
    ap.add_argument("--part", help=argparse.SUPPRESS)  # child mode: run one part
    ap.add_argument("--budget", type=float, help=argparse.SUPPRESS)
    ap.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.part:
        return run_child(args.part, args.budget, args.out, args.result)
    started, only = time.monotonic(), {k for k in args.only.split(",") if k}
    args.out.mkdir(parents=True, exist_ok=True)
    date = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    results = {"schema": "gradtensor-gpu-check/1", "date": date, "deadline_s": args.deadline}
    results["parts"], path = {}, args.out / "results.json"
    no_gpu = None  # part (a)'s finding: why Numba-CUDA kernels cannot launch here
    with (args.out / "session.log").open("w") as log:
        for part in PARTS:
            left = args.deadline - (time.monotonic() - started) - RESERVE_S
            label = f"({part.key}) {part.name}"
            if only and part.key not in only:
                rec = {"status": "skipped", "reason": "not asked for (--only)"}
            elif part.needs_gpu and no_gpu:
                rec = {"status": "skipped", "reason": no_gpu}
            elif left < part.min_s:
                why = f"out of time: {left:.0f} s left, needs {part.min_s:.0f} s"
                rec = {"status": "skipped", "reason": why}
            else:
                budget = min(part.cap_s, left)
                print(f"--- {label}: up to {budget:.0f} s", file=log, flush=True)
                t0 = time.monotonic()
                rec = run_part(part, budget, args.out, log)
                rec["seconds"] = round(time.monotonic() - t0, 2)
                no_gpu = rec.get("no_kernel_launches_because") if part.key == "a" else no_gpu
            results["parts"][part.name] = {"key": part.key, "seconds": 0.0, **rec}
            results["elapsed_s"] = round(time.monotonic() - started, 2)
            path.write_text(json.dumps(results, indent=1, default=str) + "\n")
            line = f"{label}: {rec['status']}" + (f" ({rec['reason']})" if "reason" in rec else "")
            print(line, file=log, flush=True)
            print(f"{line} [{rec.get('seconds', 0.0):.1f} s]", flush=True)
    print(f"wrote {path} in {results['elapsed_s']:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
