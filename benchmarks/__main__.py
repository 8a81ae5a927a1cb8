"""Measure gradtensor side by side with the libraries it would replace, on this machine.

    python -m benchmarks [--suite overhead|linear|mlp|scaling|memory|all] [--device cpu|cuda]
                         [--quick] [--threads N] [--libs gradtensor,torch,...]

Prints a table per case with each implementation's median time and its ratio to gradtensor's,
then the targets, and writes benchmarks/results/<date>-<host or GPU>[-<suite>][-quick].json.
`python -m benchmarks.report` turns those files into benchmarks/RESULTS.md and plots.
Optional references (PyTorch, JAX, HIPS autograd, SciPy for GELU's erf) are skipped with a note
when they are not installed; the run still succeeds.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

SUITE_NAMES = ("overhead", "linear", "mlp", "scaling", "memory")
REFERENCES = ("numpy", "torch", "jax", "jax-jit", "autograd")


def parse(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        prog="python -m benchmarks", description=__doc__.split("\n\n")[0].strip()
    )
    ap.add_argument("--suite", default="all", choices=SUITE_NAMES + ("all",))
    ap.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    ap.add_argument("--quick", action="store_true", help="tiny sizes, 3 repeats: a smoke test")
    default_threads = int(os.environ.get("OMP_NUM_THREADS", 0)) or os.cpu_count() or 1
    ap.add_argument(
        "--threads",
        type=int,
        default=default_threads,
        help=f"threads for every CPU library (default: OMP_NUM_THREADS or all cores, here "
        f"{default_threads})",
    )
    ap.add_argument(
        "--libs",
        default="",
        help="comma-separated subset of the references (" + ", ".join(REFERENCES) + "); "
        "gradtensor always runs",
    )
    ap.add_argument("--no-kernels-off", action="store_true", help="skip gradtensor, kernels off")
    ap.add_argument(
        "--budget", type=float, default=1.0, help="scale the timing budget per case (default 1)"
    )
    ap.add_argument("--out", type=Path, help="write the JSON here instead of results/")
    ap.add_argument("--no-save", action="store_true", help="print only; write no JSON")
    args = ap.parse_args(argv)
    if args.threads < 1:
        ap.error("--threads must be at least 1")
    unknown = {k for k in args.libs.split(",") if k} - set(REFERENCES) - {"gradtensor"}
    if unknown:
        ap.error(f"--libs: unknown {sorted(unknown)}; choose from {', '.join(REFERENCES)}")
    return args


def versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for dist in (
        "gradtensor",
        "numpy",
        "numba",
        "scipy",
        "torch",
        "jax",
        "jaxlib",
        "autograd",
        "cupy-cuda12x",
        "cupy-cuda11x",
        "numba-cuda",
        "threadpoolctl",
    ):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            pass
    return out


def source_state() -> dict[str, Any]:
    """The commit measured, and any uncommitted changes to the library it ran with."""
    import subprocess

    root = Path(__file__).resolve().parents[1]

    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True)
        return done.stdout.strip() if done.returncode == 0 else ""

    changed = git("status", "--porcelain", "--", "gradtensor", "kernels").splitlines()
    return {
        "commit": git("rev-parse", "HEAD") or None,
        "uncommitted_library_changes": [line[3:] for line in changed],
    }


def gpu_info() -> dict[str, Any]:
    import cupy

    props = cupy.cuda.runtime.getDeviceProperties(0)
    return {
        "gpu": props["name"].decode() if isinstance(props["name"], bytes) else props["name"],
        "gpu_memory_bytes": int(props["totalGlobalMem"]),
        "cuda_runtime": cupy.cuda.runtime.runtimeGetVersion(),
        "cuda_driver": cupy.cuda.runtime.driverGetVersion(),
    }


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    # Before any numeric library loads: the same thread count everywhere, and no TF32 in CuPy.
    from benchmarks.common import THREAD_ENV, log, pin_cores, thread_env

    thread_env(args.threads)
    cores = pin_cores(args.threads)
    os.environ.setdefault("CUPY_TF32", "0")
    import gradtensor as gt
    from benchmarks import references as R
    from benchmarks import suites as S
    from benchmarks.common import limit_threads, machine, save

    if args.device == "cuda":
        reason = gt.backend.cuda_unavailable_reason()
        if reason is not None:
            log(f"skipping --device cuda: needs a CUDA GPU: {reason}")
            return 0
    wanted = [k for k in args.libs.split(",") if k] or list(REFERENCES)
    keys = ["gradtensor"] + ([] if args.no_kernels_off else ["gradtensor-nokernels"])
    keys += [k for k in REFERENCES if k in wanted]
    libs, skipped = R.load(keys, args.device)
    if "gradtensor" not in libs:
        log(f"gradtensor itself cannot run on {args.device}: {skipped.get('gradtensor')}")
        return 1
    threads = limit_threads(args.threads)
    info = machine()
    if args.device == "cuda":
        info.update(gpu_info())
    kernels_on = gt.ops.kernels_enabled()
    log(
        f"gradtensor {gt.__version__} on {args.device}"
        + (f" ({info['gpu']})" if "gpu" in info else f" ({info.get('cpu', '?')})")
        + f", {args.threads} thread(s) for every CPU library"
        + (f" (pinned to core(s) {cores})" if cores else "")
        + "; kernels "
        + ("available" if kernels_on else "NOT available (both gradtensor rows use arrays)")
    )
    load = os.getloadavg()[0]
    if load > 0.5:
        log(f"note: load average {load:.1f} before starting; other work on this machine adds noise")
    log("implementations: " + "; ".join(R.LABELS[k] for k in libs))
    for key, why in skipped.items():
        log(f"skipping {R.LABELS.get(key, key)}: {why}")

    ctx = S.Context(
        libs=libs,
        device=args.device,
        quick=args.quick,
        budget_scale=args.budget,
        threads=args.threads,
        skipped=skipped,
    )
    run: dict[str, Any] = {
        "schema": "gradtensor-benchmarks/1",
        "machine": info,
        "versions": versions(),
        "source": source_state(),
        "settings": {
            "device": args.device,
            "quick": args.quick,
            "threads": threads,
            "thread_env": {
                k: os.environ.get(k)
                for k in THREAD_ENV + ("XLA_FLAGS", "OMP_WAIT_POLICY", "OPENBLAS_THREAD_TIMEOUT")
                if k in os.environ
            },
            "pinned_to_cores": cores,
            "jax_threads": "XLA sizes its CPU pool to the cores the process may use"
            + (f"; the process is pinned to cores {cores}" if cores else ""),
            "load_average_at_start": os.getloadavg(),
            "settle_s": S.settle_s(ctx),
            "tf32": False,
            "dtype": "float32",
            "kernels_available": kernels_on,
            "budget_scale": args.budget,
            "check": "value and every gradient: max|diff| <= 1e-4 * max|gradtensor's|",
            "timing": "warm-up, then round-robin samples in one process (order rotated each "
            "round); medians"
            + (
                f"; each sample after a {S.settle_s(ctx)} s pause and one untimed call"
                if S.settle_s(ctx)
                else ""
            )
            + ("; GPU synchronised before each clock read" if args.device == "cuda" else ""),
            "command": " ".join(
                ["python -m benchmarks"] + (sys.argv[1:] if argv is None else argv)
            ),
        },
        "implementations": {k: R.LABELS[k] for k in libs},
        "skipped": skipped,
        "suites": {},
    }
    names = SUITE_NAMES if args.suite == "all" else (args.suite,)
    for name in names:
        run["suites"][name] = S.SUITES[name](ctx)
    run["settings"]["load_average_at_end"] = os.getloadavg()
    run["targets"] = S.check_targets(run)
    S.print_targets(run["targets"])

    if not args.no_save:
        import json

        tag = where(args.device, info)
        suffix = "-".join(
            s
            for s in ("" if args.suite == "all" else args.suite, "quick" if args.quick else "")
            if s
        )
        if args.out:
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps(run, indent=1, sort_keys=True) + "\n")
            path = args.out
        else:
            path = save(suffix, run, tag)
        log(f"saved {path}")
    return 0


def where(device: str, info: dict[str, Any]) -> str:
    """The file-name tag: the short host name, or on a GPU the GPU's name."""
    text = info.get("gpu", "") if device == "cuda" else info.get("host", "").split(".")[0]
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or device


if __name__ == "__main__":
    sys.exit(main())
