"""Measure gradtensor side by side with the libraries it would replace, on this machine.

    python -m benchmarks [--suite overhead|linear|mlp|scaling|memory|conv|...|all]
                         [--device cpu|cuda] [--quick] [--threads N] [--libs torch,jax,...]

Prints each case's median times and their ratios to gradtensor's, then the targets, and writes
benchmarks/results/<date>-<host or GPU>[-<suite>][-quick].json (or GRADTENSOR_RESULTS_DIR/...)
for `python -m benchmarks.report`. A reference that is not installed is skipped with a note.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import re
import socket
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path(os.environ.get("GRADTENSOR_RESULTS_DIR") or ROOT / "benchmarks" / "results")
SUITES = (
    "overhead",
    "linear",
    "mlp",
    "scaling",
    "memory",
    "firstuse",
    "contention",
    "conv",
    "compile",
    "ddp",
)
THREAD_ENV = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS")
DISTS = "gradtensor numpy numba numba-cuda scipy torch jax jaxlib autograd threadpoolctl cupy"
TIMING = "warm-up, then round-robin samples in one process (each round shuffled, seeded); medians"
_limits: Any = None  # threadpoolctl's limiter, kept alive for the whole run


def pin_cores(n: int) -> list[int] | None:
    """Run this process (and its children) on n of its cores when that is fewer than all of them:
    XLA sizes its CPU pool to the cores the process may use, whatever its thread flags say."""
    allowed = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    if n >= len(allowed):
        return None
    os.sched_setaffinity(0, allowed[-n:])  # the last ones: core 0 tends to take more interrupts
    return allowed[-n:]


def limit_threads(n: int) -> dict[str, Any]:
    """Hold every thread pool loaded so far to n threads (BLAS and OpenMP through threadpoolctl,
    PyTorch, Numba); returns what each one now uses."""
    global _limits
    import numba

    from gradtensor.kernels import blas  # loaded now, so that the limit reaches MKL too

    record: dict[str, Any] = {"requested": n, "kernels_blas": blas.NAME, "why": blas.REASON}
    try:
        import threadpoolctl

        _limits = threadpoolctl.threadpool_limits(n)
        keys = ("internal_api", "prefix", "version", "num_threads")
        record["pools"] = [{k: p.get(k) for k in keys} for p in threadpoolctl.threadpool_info()]
    except ImportError:
        record["pools"] = "threadpoolctl not installed: limited by " + ", ".join(THREAD_ENV)
    if "torch" in sys.modules:  # only when a reference loaded it
        sys.modules["torch"].set_num_threads(n)
        record["torch"] = sys.modules["torch"].get_num_threads()
    numba.set_num_threads(min(n, numba.config.NUMBA_NUM_THREADS))
    return {**record, "numba": numba.get_num_threads()}


def machine(device: str = "cpu") -> dict[str, Any]:
    info = {"host": socket.gethostname(), "platform": platform.platform(),
            "python": platform.python_version(), "cpu_count": os.cpu_count(),
            "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}  # fmt: skip
    info.update({k: os.environ[k] for k in THREAD_ENV[:3] if k in os.environ})
    cpuinfo = Path("/proc/cpuinfo").read_text() if os.path.exists("/proc/cpuinfo") else ""
    info.update(("cpu", m.strip()) for m in re.findall(r"model name\s*:\s*(.*)", cpuinfo)[:1])
    if device == "cuda":
        import cupy

        dev, rt = cupy.cuda.Device(), cupy.cuda.runtime
        props = rt.getDeviceProperties(dev.id)
        name = props["name"].decode() if isinstance(props["name"], bytes) else props["name"]
        info.update(gpu=name, gpu_memory_bytes=int(props["totalGlobalMem"]))
        info.update(compute_capability=dev.compute_capability, cuda_runtime=rt.runtimeGetVersion())
        info["cuda_driver"] = rt.driverGetVersion()
    return info


def parse(argv: list[str] | None) -> argparse.Namespace:
    from benchmarks.impls import LIBRARIES

    refs = [k for k in LIBRARIES if not k.startswith("gradtensor")]
    threads = int(os.environ.get("OMP_NUM_THREADS", 0)) or os.cpu_count() or 1
    ap = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.split("\n")[0])
    ap.add_argument("--suite", default="all", choices=SUITES + ("all",))
    ap.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    ap.add_argument("--quick", action="store_true", help="tiny sizes, 3 repeats: a smoke test")
    text = f"threads for every CPU library (default: OMP_NUM_THREADS or all cores, here {threads})"
    ap.add_argument("--threads", type=int, default=threads, help=text)
    text = f"comma-separated subset of the references ({', '.join(refs)}); gradtensor always runs"
    ap.add_argument("--libs", default="", help=text)
    ap.add_argument("--no-kernels-off", action="store_true", help="skip gradtensor, kernels off")
    ap.add_argument("--budget", type=float, default=1.0, help="scale the timing budget per case")
    ap.add_argument("--out", type=Path, help="write the JSON here instead of results/")
    ap.add_argument("--no-save", action="store_true", help="print only; write no JSON")
    args = ap.parse_args(argv)
    wanted = [k for k in args.libs.split(",") if k]
    if args.threads < 1:
        ap.error("--threads must be at least 1")
    if unknown := sorted(set(wanted) - set(refs) - {"gradtensor"}):
        ap.error(f"--libs: unknown {unknown}; choose from {', '.join(refs)}")
    args.keys = ["gradtensor"] + ["gradtensor-nokernels"] * (not args.no_kernels_off)
    args.keys += ["gradtensor-compile"] * (args.suite in ("compile", "all"))
    args.keys += ["gradtensor-graph"] * (args.suite in ("compile", "all") and args.device == "cuda")
    args.keys += [k for k in refs if k in (wanted or refs)]
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    # Before any numeric library loads: the same thread count everywhere, and no TF32 in CuPy.
    os.environ.update(dict.fromkeys(THREAD_ENV, str(args.threads)))
    cores = pin_cores(args.threads)
    os.environ.setdefault("CUPY_TF32", "0")
    import gradtensor as gt
    from benchmarks import impls
    from benchmarks import suites as S

    if args.device == "cuda" and gt.backend.cuda_unavailable_reason() is not None:
        S.log(f"skipping --device cuda: needs a CUDA GPU: {gt.backend.cuda_unavailable_reason()}")
        return 0
    libs, skipped = impls.load(args.keys, args.device)
    if "gradtensor" not in libs:
        S.log(f"gradtensor itself cannot run on {args.device}: {skipped.get('gradtensor')}")
        return 1
    ctx = S.Context(libs, args.device, args.quick, args.budget, args.threads)
    info, kernels = machine(args.device), gt.kernels_enabled()
    dists = {(d.metadata["Name"] or "").lower(): d.version for d in metadata.distributions()}
    versions = {n: v for n, v in dists.items() if n in DISTS.split() or n.startswith("cupy-")}
    git = lambda *a: subprocess.run(["git", *a], cwd=ROOT, capture_output=True, text=True).stdout
    dirty = [ln[3:] for ln in git("status", "--porcelain", "gradtensor", "kernels").splitlines()]
    commit = git("rev-parse", "HEAD").strip() or None
    pause = f"; each sample after a {ctx.settle_s} s pause and one untimed call"
    timing = TIMING + pause * bool(ctx.settle_s)
    timing += "; GPU synchronised before each clock read" * (args.device == "cuda")
    pinned = f"; the process is pinned to cores {cores}" if cores else ""
    env = THREAD_ENV + ("XLA_FLAGS", "OMP_WAIT_POLICY", "OPENBLAS_THREAD_TIMEOUT")
    settings = dict(
        device=args.device, quick=args.quick, threads=limit_threads(args.threads),
        thread_env={k: os.environ[k] for k in env if k in os.environ}, pinned_to_cores=cores,
        jax_threads="XLA sizes its CPU pool to the cores the process may use" + pinned,
        load_average_at_start=os.getloadavg(), settle_s=ctx.settle_s, tf32=False, dtype="float32",
        kernels_available=kernels, budget_scale=args.budget, timing=timing,
        check="value and every gradient: max|diff| <= 1e-4 * max|gradtensor's|",
        command=" ".join(["python -m benchmarks", *(sys.argv[1:] if argv is None else argv)]),
    )  # fmt: skip
    pin = f" (pinned to core(s) {cores})" if cores else ""
    state = "available" if kernels else "NOT available (both gradtensor rows use arrays)"
    S.log(f"gradtensor {gt.__version__} on {args.device} ({info.get('gpu') or info.get('cpu')}),"
          f" {args.threads} thread(s) for every CPU library{pin}; kernels {state}")  # fmt: skip
    if os.getloadavg()[0] > 0.5:  # other work on this machine adds noise
        S.log(f"note: load average {os.getloadavg()[0]:.1f} before starting")
    S.log("implementations: " + "; ".join(impls.LABELS[k] for k in libs))
    for key, why in skipped.items():
        S.log(f"skipping {impls.LABELS[key]}: {why}")
    source = {"commit": commit, "uncommitted_library_changes": dirty}
    run = dict(schema="gradtensor-benchmarks/1", machine=info, source=source, settings=settings,
               versions={**versions, "python": platform.python_version()}, skipped=skipped,
               implementations={k: impls.LABELS[k] for k in libs}, suites={})  # fmt: skip
    for name in SUITES if args.suite == "all" else (args.suite,):
        run["suites"][name] = S.SUITES[name](ctx)
    settings["load_average_at_end"] = os.getloadavg()
    run["targets"] = S.check_targets(run)
    S.print_targets(run["targets"])
    if not args.no_save:
        where = info.get("gpu", "") if args.device == "cuda" else info["host"].split(".")[0]
        tag = re.sub(r"[^a-z0-9]+", "-", where.lower()).strip("-") or args.device
        parts = [dt.date.today().isoformat(), tag, args.suite * (args.suite != "all")]
        name = "-".join(p for p in parts + ["quick" * args.quick] if p)
        path = args.out or RESULTS / f"{name}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(run, indent=1, sort_keys=True) + "\n")
        S.log(f"saved {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
