"""Peak memory of one MLP training step for one implementation, measured in a process of its own.

Run by the memory suite as `python -m benchmarks.memprobe '{"key": ..., "sizes": [...],
"batch": ..., "device": "cpu"}'`; prints one JSON line. A process per implementation keeps one
library's caches, pools and freed-but-kept memory out of another's figure.

Figures, in bytes above the process just before the implementation was built:
peak_bytes, the most in use during a steady-state step (its weights, what it keeps between
steps, and the step's own activations and temporaries); held_bytes, what it holds just before
that step; step_bytes = peak_bytes - held_bytes. On the host the measure is the resident set
(its high-water mark, reset through /proc/self/clear_refs).
"""

from __future__ import annotations

import gc
import json
import sys
import tracemalloc
from typing import Any

from benchmarks import references as R
from benchmarks.common import peak_rss_bytes, reset_peak_rss, rss_bytes

# Implementations whose arrays NumPy allocates (so tracemalloc sees them).
NUMPY_BACKED = ("gradtensor", "gradtensor-nokernels", "numpy", "autograd")


class Meter:
    """Bytes in use now, and the most in use since reset_peak(), for one kind of memory."""

    def __init__(self, key: str, device: str, lib: Any):
        self.sync = lib.sync
        if device == "cpu":
            self.level, self.reset_peak, self.peak = rss_bytes, reset_peak_rss, peak_rss_bytes
        elif key == "torch":
            cuda = lib.torch.cuda
            self.level, self.peak = cuda.memory_allocated, cuda.max_memory_allocated
            self.reset_peak = cuda.reset_peak_memory_stats
        elif key in ("gradtensor", "gradtensor-nokernels", "cupy"):
            import cupy

            pool = cupy.get_default_memory_pool()
            # With its free blocks released, the pool grows only when no freed block fits: the
            # bytes it holds afterwards are the peak in use (rounded up to its block sizes).
            self.level, self.reset_peak, self.peak = (
                pool.used_bytes,
                pool.free_all_blocks,
                (pool.total_bytes),
            )
        else:
            raise R.Skip("no device-memory statistic for this library")


def measure(build: Any, meter: Meter) -> dict[str, int]:
    """Build the implementation, run a warm-up step, then measure one more step."""
    gc.collect()
    meter.sync()
    meter.reset_peak()
    base = meter.level()
    impl = build()
    impl.step()  # warm-up: compiled code, optimizer state, gradients kept between steps
    meter.sync()
    gc.collect()
    before = meter.level()
    meter.reset_peak()
    impl.step()
    meter.sync()
    peak = meter.peak()
    return {"peak_bytes": peak - base, "held_bytes": before - base, "step_bytes": peak - before}


def traced(build: Any) -> int:
    """tracemalloc's peak of NumPy buffers from building the implementation to a step's end."""
    gc.collect()
    tracemalloc.start()
    impl = build()
    impl.step()
    tracemalloc.reset_peak()
    impl.step()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak


def probe(key: str, sizes: list[int], batch: int, device: str) -> dict[str, Any]:
    from benchmarks.suites import LR, mlp_inputs, mlp_names

    params, x, t = mlp_inputs(sizes, batch)
    registered = "numpy" if key == "cupy" else key  # the hand-written one is NumPy or CuPy
    libs, skipped = R.load(list(dict.fromkeys(["gradtensor", registered])), device)
    if key not in libs:
        return {"skipped": skipped.get(registered, f"{key} is not available on {device}")}
    lib = libs[key]
    try:
        meter = Meter(key, device, lib)
    except R.Skip as exc:
        return {"skipped": str(exc)}
    build = lambda: lib.mlp(params, x, t, LR)  # noqa: E731
    got = build().result()
    if key != "gradtensor":
        R.compare(got, libs["gradtensor"].mlp(params, x, t, LR).result(), names=mlp_names(sizes))
    del got
    out: dict[str, Any] = measure(build, meter)
    if device == "cpu" and key in NUMPY_BACKED:
        out["traced_peak_bytes"] = traced(build)
    out["param_bytes"] = int(sum(w.nbytes + b.nbytes for w, b in params))
    out["batch_bytes"] = int(x.nbytes)
    return out


def main() -> None:
    args = json.loads(sys.argv[1])
    try:
        out = probe(args["key"], args["sizes"], args["batch"], args["device"])
    except AssertionError as exc:
        out = {"error": f"mismatch: {exc}"}
    except Exception as exc:
        out = {"error": f"{type(exc).__name__}: {exc}"}
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
