"""Everything a lent GPU is for, in one run under a deadline: benchmarks/gpu_session.sh calls this.

    python benchmarks/gpu_check.py [--deadline SECONDS] [--out DIR] [--only a,b,...]

Parts run in priority order, each in its own process (a CUDA error that poisons a context, or a
hang, costs one part, never the run), with at most its share of the time left; a part that
cannot get its minimum is skipped with the reason. Everything lands in --out (default $OUT, else
benchmarks/results/gpu), at most these files:

    results.json   every part: status ok/failed/skipped, reason, seconds, and what it measured
    session.log    every part's output, in order
    tests.txt      the output of `pytest -m cuda`
    bench-mlp.json the benchmark harness's MLP run (for `python -m benchmarks.report`)

results.json is rewritten after each part, so a run killed from outside still leaves a record.
GPU_CHECK_STANDIN=1 installs tests/cupy_standin as `cupy` with one pretend GPU: the CPU test of
this script's plumbing (tests/test_gpu_session.py). Nothing here installs anything.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import itertools
import json
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
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script: make the repository importable
    sys.path.insert(0, str(ROOT))

DEFAULT_DEADLINE_S = 480.0  # 8 minutes: one device call inside a 15-minute window
RESERVE_S = 2.0  # kept back for writing results.json after the last part

# Shapes of the kernel checks: ragged, several 64-wide tiles (the GPU's TILE) in each direction.
VARIANT_SHAPE = (77, 45, 131)
# grid.y of path B is ceil(B / 64): this batch asks for 65,536 rows of blocks (the limit is 65,535).
# B * 1 * 1 MACs = 1 << 22 = PATH_B_MAX_MACS, so the default dispatch also takes path B here.
GRID_LIMIT_BATCH = 65536 * 64
# (B, In, Out) around PATH_B_MAX_MACS (1 << 22 = 4.2M multiply-adds) and well above it.
TIMING_SHAPES = [
    (64, 64, 64),
    (256, 128, 128),
    (1024, 64, 64),
    (256, 256, 256),
    (4096, 64, 64),
    (1024, 256, 256),
    (16384, 64, 64),
    (256, 1024, 1024),
    (4096, 512, 512),
    (2048, 2048, 2048),
]


@dataclass
class Part:
    key: str
    name: str
    min_s: float  # skipped when less than this is left
    cap_s: float  # never given more than this
    run: Callable[[float, Path], dict[str, Any]]  # (seconds it may take, out dir) -> record
    needs_gpu: bool = True  # Numba-CUDA launches: skipped at once where part (a) found none


class Skip(Exception):
    """A part that cannot run here; the message is the reason."""


# -- helpers the parts share --------------------------------------------------------------------


def _install_standin() -> None:
    if os.environ.get("GPU_CHECK_STANDIN") == "1":
        os.environ["GRADTENSOR_CUPY_STANDIN"] = "1"  # and in the pytest run of part (c)
        sys.path.insert(0, str(ROOT / "tests"))
        import cupy_standin

        cupy_standin.install()
        cupy_standin.set_device_count(1)


def _version(module: str) -> str | None:
    try:
        return str(getattr(__import__(module), "__version__", "?"))
    except Exception as exc:  # a broken CUDA install raises more than ImportError
        return f"not importable ({type(exc).__name__}: {exc})"


def _numba_gpu_reason() -> str | None:
    """Why Numba-CUDA kernels cannot launch here (None when they can)."""
    from gradtensor import backend

    reason = backend.cuda_unavailable_reason()
    if reason is not None:
        return f"no CUDA GPU for CuPy: {reason}"
    if os.environ.get("GPU_CHECK_STANDIN") == "1":
        return "CuPy stand-in: Numba-CUDA needs a real GPU and driver"
    from numba import cuda

    if not cuda.is_available():
        return "Numba-CUDA sees no GPU (driver or CUDA libraries not found)"
    return None


def _require_gpu() -> None:
    reason = _numba_gpu_reason()
    if reason is not None:
        raise Skip(reason)


def _error(exc: BaseException) -> str:
    last = traceback.extract_tb(exc.__traceback__)[-1] if exc.__traceback__ else None
    where = f" (at {Path(last.filename).name}:{last.lineno})" if last else ""
    return f"{type(exc).__name__}: {str(exc)[:500]}{where}"


def _sync() -> None:
    import cupy

    cupy.cuda.Device().synchronize()


# -- (a) versions and what Numba sees ------------------------------------------------------------


def part_versions(budget: float, out: Path) -> dict[str, Any]:
    rec: dict[str, Any] = {"python": platform.python_version(), "executable": sys.executable}
    for mod in ("numpy", "cupy", "numba", "numba_cuda", "torch", "jax", "pytest"):
        rec[mod] = _version(mod)
    with contextlib.suppress(Exception):
        smi = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=30,
        )
        rec["nvidia_smi"] = smi.stdout.strip() or smi.stderr.strip()
    try:
        import cupy

        dev = cupy.cuda.Device()
        props = cupy.cuda.runtime.getDeviceProperties(dev.id)
        name = props["name"]
        rec["cupy_device"] = {
            "name": name.decode() if isinstance(name, bytes) else name,
            "compute_capability": dev.compute_capability,
            "cuda_runtime": cupy.cuda.runtime.runtimeGetVersion(),
            "cuda_driver": cupy.cuda.runtime.driverGetVersion(),
        }
    except Exception as exc:
        rec["cupy_device"] = _error(exc)
    try:
        from numba import cuda

        rec["numba_cuda_available"] = bool(cuda.is_available())
        if rec["numba_cuda_available"]:
            gpu = cuda.get_current_device()
            name = gpu.name
            rec["numba_device"] = {
                "name": name.decode() if isinstance(name, bytes) else name,
                "compute_capability": list(gpu.compute_capability),
                "driver": list(cuda.cudadrv.driver.driver.get_version()),
                "runtime": list(cuda.runtime.get_version()),
            }
    except Exception as exc:
        rec["numba_device"] = _error(exc)
    from gradtensor.kernels import cuda as kcuda

    rec["no_kernel_launches_because"] = _numba_gpu_reason()
    rec["path_b_max_macs"] = kcuda.PATH_B_MAX_MACS
    rec["kernels_cuda_simulator"] = kcuda.SIMULATOR
    return rec


# -- (b) every kernel variant, and the grid limit -------------------------------------------------


def part_kernels(budget: float, out: Path) -> dict[str, Any]:
    _require_gpu()
    import cupy
    import numpy as np

    sys.path.insert(0, str(ROOT / "tests" / "kernels"))
    from linear_act_reference import check_module, forward_backward, inputs

    from gradtensor.kernels import cuda as kcuda

    t0 = time.perf_counter()
    kcuda.warmup()
    rec: dict[str, Any] = {"compile_s": time.perf_counter() - t0, "shape": list(VARIANT_SHAPE)}
    failures: dict[str, str] = {}
    count = 0
    # A non-default stream: every launch must follow CuPy's current stream, not stream 0.
    stream = cupy.cuda.Stream(non_blocking=True)
    variants = itertools.product(
        (np.float16, np.float32, np.float64), ("a", "b"), kcuda.ACTIVATIONS, (True, False)
    )
    with stream:
        for dtype, path, name, bias in variants:
            label = f"{np.dtype(dtype).name}/{path}/{name}/{'bias' if bias else 'nobias'}"
            count += 1
            try:
                args = (cupy.asarray, cupy.asnumpy)
                check_module(kcuda, VARIANT_SHAPE, name, bias, dtype, *args, path=path)
            except Exception as exc:
                failures[label] = _error(exc)
    stream.synchronize()
    rec.update(variants=count, failed_variants=failures)

    # The grid limit: forward and backward on path A, path B and the default dispatch.
    x, w, b, gy = inputs((GRID_LIMIT_BATCH, 1, 1), np.float32)
    ry, rgx, rgw, rgb = forward_backward(x, w, b, gy, "relu")
    dx, dw, db, dgy = (cupy.asarray(a) for a in (x, w, b, gy))
    grid: dict[str, str] = {}
    for path in ("a", "b", None):
        try:
            y, aux = kcuda.linear_act_forward(dx, dw, db, "relu", path=path)
            gx, gw, gb = kcuda.linear_act_backward(dgy, dx, dw, aux, "relu", path=path)
            _sync()
            errs = [
                float(np.abs(cupy.asnumpy(got).astype(np.float64) - want).max())
                / max(1.0, float(np.abs(want).max()))
                for got, want in ((y, ry), (gx, rgx), (gw, rgw), (gb, rgb))
            ]
            grid[str(path)] = "ok" if max(errs) <= 1e-3 else f"mismatch: max rel error {max(errs)}"
        except Exception as exc:
            grid[str(path)] = _error(exc)
    rec["grid_limit"] = {
        "shape": [GRID_LIMIT_BATCH, 1, 1],
        "default_takes_path_b": kcuda.use_path_b(GRID_LIMIT_BATCH, 1, 1),
        "by_path": grid,
    }
    rec["optimizers"] = optim = _check_optimizers(stream)
    bad = len(failures) + sum(v != "ok" for v in (*grid.values(), *optim.values()))
    if bad:
        rec["status"] = "failed"
        rec["reason"] = f"{len(failures)} of {count} variants and " + ", ".join(
            f"{what} {k}: {v}"
            for what, d in (("grid-limit path", grid), ("optimizer", optim))
            for k, v in d.items()
            if v != "ok"
        )
    return rec


def _check_optimizers(stream: Any, largest: int = 100_003) -> dict[str, str]:
    """Each one-pass optimizer update over a list of 19 CuPy tensors (two or three launches, on
    a non-default stream) against kernels.optim_cpu on host copies, tensor by tensor."""
    import cupy
    import numpy as np

    from gradtensor.kernels import optim_cpu, optim_cuda

    hyper = {
        "sgd_update": dict(lr=0.1, momentum=0.9, weight_decay=0.01),
        "adam_update": dict(
            lr=1e-2, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.01, decoupled=True,
            step_size=0.1, bias_correction2_sqrt=0.05,
        ),
        "rmsprop_update": dict(lr=1e-2, alpha=0.9, eps=1e-8, weight_decay=0.01, momentum=0.9),
    }  # fmt: skip
    lists = {"sgd_update": 3, "adam_update": 5, "rmsprop_update": 5}
    rng = np.random.default_rng(0)
    result = {}
    for fn, h in hyper.items():
        for dtype in (np.float32, np.float64):
            label = f"{fn}/{np.dtype(dtype).name}"
            sizes = [(1, 37, 0, largest, 4096)[k % 5] for k in range(19)]
            host = [[np.abs(rng.standard_normal(n)).astype(dtype) + 1 for _ in range(lists[fn])]
                    for n in sizes]  # fmt: skip
            if fn == "rmsprop_update":
                for row in host:
                    row[2] += 10  # the square average stays above grad_avg squared
                    row[3] *= 0.1
            try:
                with stream:
                    dev = [[cupy.asarray(a) for a in row] for row in host]
                    getattr(optim_cuda, fn)(*map(list, zip(*dev, strict=True)), **h)
                stream.synchronize()
                worst = 0.0
                for row, drow in zip(host, dev, strict=True):
                    getattr(optim_cpu, fn)(*row, **h)
                    for want, got in zip(row, drow, strict=True):
                        if want.size:
                            err = np.abs(cupy.asnumpy(got) - want) / np.maximum(np.abs(want), 1)
                            worst = max(worst, float(err.max()))
                # The same operations in the same order, but NVVM contracts a*b+c into FMAs.
                tol = 1e-12 if dtype == np.float64 else 1e-5
                result[label] = "ok" if worst <= tol else f"mismatch: max rel error {worst}"
            except Exception as exc:
                result[label] = _error(exc)
    return result


# -- (c) the cuda-marked tests --------------------------------------------------------------------


def part_tests(budget: float, out: Path) -> dict[str, Any]:
    import importlib.util

    cmd = [sys.executable, "-m", "pytest", "-m", "cuda", "-q", "-rfEs", "-p", "no:cacheprovider"]
    if importlib.util.find_spec("xdist") is not None:
        cmd += ["-n", str(min(8, os.cpu_count() or 1))]
    if importlib.util.find_spec("pytest_timeout") is not None:
        cmd += [f"--timeout={max(30, int(budget / 3))}"]  # one hung test is not the whole part
    cmd += os.environ.get("GPU_CHECK_PYTEST_ARGS", "tests").split()
    log = out / "tests.txt"
    with log.open("w") as f:
        f.write("$ " + " ".join(cmd) + "\n")
        f.flush()
        tests = subprocess.Popen(
            cmd, cwd=ROOT, stdout=f, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            rc = tests.wait(timeout=max(1.0, budget - 3))  # leaves time to write this record
        except subprocess.TimeoutExpired:
            os.killpg(tests.pid, signal.SIGKILL)  # the xdist workers too
            tests.wait()
            rc = None
    text = log.read_text()
    lines = text.splitlines()
    counts = re.compile(r"\d+ (passed|failed|errors?|skipped|deselected)\b")
    summary = next((ln for ln in reversed(lines) if counts.search(ln)), "")
    rec: dict[str, Any] = {
        "command": " ".join(cmd),
        "exit_status": rc,
        "summary": summary.strip("= "),
        "failed": [ln for ln in lines if ln.startswith(("FAILED", "ERROR"))][:50],
    }
    if rc is None:
        rec.update(status="failed", reason=f"stopped after {budget - 3:.0f} s (see tests.txt)")
    elif rc != 0:
        rec.update(status="failed", reason=f"pytest exit status {rc}: {rec['summary']}")
    return rec


# -- (d) a CUDA graph of a training step --------------------------------------------------------


def _training_step(batch: int = 64) -> tuple[Callable[[], Any], Any]:
    import numpy as np

    import gradtensor as gt
    import gradtensor.nn.functional as F

    gt.manual_seed(0)
    model = gt.nn.MLP([64, 128, 10]).to("cuda")
    opt = gt.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    rng = np.random.default_rng(0)
    x = gt.tensor(rng.standard_normal((batch, 64)).astype(np.float32), device="cuda")
    y = gt.tensor(rng.integers(0, 10, batch), device="cuda")

    def step() -> Any:
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        return loss

    return step, model


def part_graph(budget: float, out: Path) -> dict[str, Any]:
    _require_gpu()
    import cupy

    step, model = _training_step()
    eager, eager_model = _training_step()
    stream = cupy.cuda.Stream(non_blocking=True)
    with stream:
        for _ in range(3):  # compiles kernels and fills the memory pool before capture
            step()
            eager()
        stream.synchronize()
        try:
            stream.begin_capture()
            try:
                step()
            finally:
                graph = stream.end_capture()
        except Exception as exc:
            return {"status": "failed", "reason": f"capture: {_error(exc)}", "works": False}
        for _ in range(3):
            graph.launch()
            eager()
        stream.synchronize()
    # Replays must move the weights exactly as eager steps do (3 warm-up + 3 replays each).
    diff = max(
        float(cupy.abs(p.data - q.data).max())
        for p, q in zip(model.parameters(), eager_model.parameters(), strict=True)
    )
    rec: dict[str, Any] = {"works": diff <= 1e-5, "max_weight_difference_vs_eager": diff}
    if not rec["works"]:
        rec.update(status="failed", reason=f"replayed steps differ from eager ones by {diff:g}")
    return rec


# -- (e) compute-sanitizer ----------------------------------------------------------------------


def _sanitizer() -> str | None:
    found = shutil.which("compute-sanitizer")
    for home in (os.environ.get("CUDA_HOME"), "/usr/local/cuda"):
        if found is None and home and os.access(f"{home}/bin/compute-sanitizer", os.X_OK):
            found = f"{home}/bin/compute-sanitizer"
    return found


def part_sanitizer(budget: float, out: Path) -> dict[str, Any]:
    _require_gpu()
    tool = _sanitizer()
    if tool is None:
        raise Skip("compute-sanitizer is not on PATH (nor in $CUDA_HOME/bin, /usr/local/cuda/bin)")
    rec: dict[str, Any] = {"tool": tool}
    started = time.monotonic()
    failed = []
    for check in ("memcheck", "racecheck"):
        left = budget - (time.monotonic() - started)
        if left < 20:
            rec[check] = "skipped: out of time"
            continue
        cmd = [tool, "--tool", check, "--error-exitcode", "9", sys.executable, __file__]
        cmd += ["--workload"]
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=left, cwd=ROOT)
            print(done.stdout[-4000:], done.stderr[-4000:], sep="\n")
            summary = [ln for ln in done.stdout.splitlines() if "ERROR SUMMARY" in ln]
            rec[check] = {"exit_status": done.returncode, "summary": summary[-1:] or None}
            if done.returncode != 0:
                failed.append(check)
        except subprocess.TimeoutExpired:
            rec[check] = f"timed out after {left:.0f} s"
            failed.append(check)
    if failed:
        rec.update(status="failed", reason="compute-sanitizer: " + ", ".join(failed))
    return rec


def sanitizer_workload() -> None:
    """A few launches of every kernel, small enough to run under compute-sanitizer."""
    import cupy
    import numpy as np

    from gradtensor.kernels import cuda as kcuda

    rng = np.random.default_rng(0)
    x, w, b, gy = (
        cupy.asarray(rng.standard_normal(s).astype(np.float32))
        for s in ((70, 33), (65, 33), (65,), (70, 65))
    )
    for path in ("a", "b"):
        for name in ("relu", "gelu"):
            y, aux = kcuda.linear_act_forward(x, w, b, name, path=path)
            kcuda.linear_act_backward(gy, x, w, aux, name, path=path)
    _sync()


# -- (f) path A / path B / CuPy / PyTorch timings ------------------------------------------------


def part_timings(budget: float, out: Path) -> dict[str, Any]:
    _require_gpu()
    import cupy
    import numpy as np

    from benchmarks import bench_linear_act as bla
    from benchmarks.common import alternate
    from gradtensor.kernels import cuda as kcuda

    started = time.monotonic()
    kcuda.warmup((np.dtype(np.float32),))
    torch = bla._torch_cuda()
    erf = bla.erf_function(cupy)
    rows = []
    for shape in TIMING_SHAPES:
        if time.monotonic() - started > 0.8 * budget:  # leave time to report what we have
            break
        args = bla.inputs(cupy, shape)
        cases = {
            "path_a": bla.fused(kcuda, "gelu", path="a"),
            "path_b": bla.fused(kcuda, "gelu", path="b"),
        }
        if erf is not None:
            cases["cupy_unfused"] = bla.unfused(cupy, "gelu", erf)
        timed = {k: (lambda f=f, a=args: f(*a)) for k, f in cases.items()}
        if torch is not None:
            targs = [torch.as_tensor(a, device="cuda") for a in args]
            for a in targs[:3]:
                a.requires_grad_(True)
            run = bla.torch_eager(torch, "gelu")
            timed["torch"] = lambda run=run, targs=targs: run(*targs)
        t = alternate(timed, repeats=10, sync=_sync)
        med = {k: v["median_s"] for k, v in t.items()}
        macs = shape[0] * shape[1] * shape[2]
        rows.append({"shape": list(shape), "macs": macs, "median_s": med})
        print(shape, {k: f"{v * 1e6:.1f} us" for k, v in med.items()}, flush=True)
    # The largest MACs up to which path B wins at every measured shape: a measured threshold.
    threshold = 0
    for row in sorted(rows, key=lambda r: r["macs"]):
        if row["median_s"]["path_b"] > row["median_s"]["path_a"]:
            break
        threshold = row["macs"]
    rec: dict[str, Any] = {
        "activation": "gelu",
        "dtype": "float32, TF32 off",
        "rows": rows,
        "shapes_planned": len(TIMING_SHAPES),
        "path_b_max_macs_now": kcuda.PATH_B_MAX_MACS,
        "path_b_max_macs_measured": threshold,
    }
    if len(rows) < len(TIMING_SHAPES):
        rec["reason"] = f"out of time after {len(rows)} of {len(TIMING_SHAPES)} shapes"
    return rec


# -- (g) an MLP training step against PyTorch eager ------------------------------------------------


def part_mlp(budget: float, out: Path) -> dict[str, Any]:
    _require_gpu()
    from benchmarks.__main__ import main as harness

    dest = out / "bench-mlp.json"
    args = ["--suite", "mlp", "--device", "cuda", "--libs", "torch", "--no-kernels-off"]
    args += ["--budget", "0.3", "--out", str(dest)]
    rc = harness(args)
    run = json.loads(dest.read_text())
    cases = [
        {
            "case": c.get("name"),
            "median_s": {k: v.get("median_s") for k, v in c.get("times", {}).items()},
            "errors": c.get("errors") or None,
        }
        for c in run["suites"]["mlp"]["cases"]
    ]
    rec = {"command": "python -m benchmarks " + " ".join(args), "cases": cases}
    rec["targets"] = run.get("targets")
    if rc != 0:
        rec.update(status="failed", reason=f"harness exit status {rc}")
    return rec


PARTS = [
    Part("a", "versions", 5, 60, part_versions, needs_gpu=False),
    Part("b", "kernels", 30, 150, part_kernels),
    # Runs on the CuPy stand-in too; 5 s is enough to learn that the plumbing works.
    Part("c", "cuda_tests", 5, 210, part_tests, needs_gpu=False),
    Part("d", "cuda_graph", 20, 60, part_graph),
    Part("e", "compute_sanitizer", 40, 90, part_sanitizer),
    Part("f", "path_timings", 40, 120, part_timings),
    Part("g", "mlp_vs_torch", 40, 120, part_mlp),
]


# -- the driver ------------------------------------------------------------------------------------


def run_child(key: str, budget: float, out: Path, result: Path) -> int:
    """Run one part in this process and write its record to `result`."""
    _install_standin()
    part = next(p for p in PARTS if p.key == key)
    try:
        rec = part.run(budget, out)
        rec.setdefault("status", "ok")
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
        cmd += ["--out", str(out), "--result", str(result)]
        child = subprocess.Popen(
            cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            child.wait(timeout=budget)
        except subprocess.TimeoutExpired:
            os.killpg(child.pid, signal.SIGKILL)  # pytest workers and sanitizers go too
            child.wait()
            return {"status": "failed", "reason": f"timed out after {budget:.0f} s"}
        if result.exists():
            return json.loads(result.read_text())
        return {"status": "failed", "reason": f"exit status {child.returncode}, no record"}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    env_deadline = os.environ.get("GPU_CHECK_DEADLINE_S")
    ap.add_argument("--deadline", type=float, default=float(env_deadline or DEFAULT_DEADLINE_S))
    default_out = os.environ.get("OUT") or str(ROOT / "benchmarks" / "results" / "gpu")
    ap.add_argument("--out", type=Path, default=Path(default_out))
    ap.add_argument("--only", default="", help="comma-separated part keys (a-g); default all")
    ap.add_argument("--part", help=argparse.SUPPRESS)  # child mode: run one part
    ap.add_argument("--budget", type=float, help=argparse.SUPPRESS)
    ap.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--workload", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.workload:
        sanitizer_workload()
        return 0
    if args.part:
        return run_child(args.part, args.budget, args.out, args.result)

    started = time.monotonic()
    args.out.mkdir(parents=True, exist_ok=True)
    only = {k for k in args.only.split(",") if k}
    results: dict[str, Any] = {
        "schema": "gradtensor-gpu-check/1",
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "deadline_s": args.deadline,
        "parts": {},
    }
    path = args.out / "results.json"
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
                rec = {"status": "skipped", "reason": f"out of time: {left:.0f} s left, needs "
                       f"{part.min_s:.0f} s"}  # fmt: skip
            else:
                budget = min(part.cap_s, left)
                print(f"--- {label}: up to {budget:.0f} s", file=log, flush=True)
                t0 = time.monotonic()
                rec = run_part(part, budget, args.out, log)
                rec["seconds"] = round(time.monotonic() - t0, 2)
                if part.key == "a":
                    no_gpu = rec.get("no_kernel_launches_because")
            rec.setdefault("seconds", 0.0)
            results["parts"][part.name] = {"key": part.key, **rec}
            results["elapsed_s"] = round(time.monotonic() - started, 2)
            path.write_text(json.dumps(results, indent=1, default=str) + "\n")
            line = f"{label}: {rec['status']}" + (f" ({rec['reason']})" if "reason" in rec else "")
            print(line, file=log, flush=True)
            print(f"{line} [{rec['seconds']:.1f} s]", flush=True)
    print(f"wrote {path} in {results['elapsed_s']:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
