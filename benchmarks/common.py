"""What every benchmark shares: alternating timed runs, medians, and a record of the machine."""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import socket
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

# Where runs are saved; GRADTENSOR_RESULTS_DIR redirects them (benchmarks/gpu_session.sh sends
# a lent GPU's runs to the folder that comes back from it).
RESULTS = Path(
    os.environ.get("GRADTENSOR_RESULTS_DIR") or Path(__file__).resolve().parent / "results"
)


def alternate(
    cases: dict[str, Callable[[], Any]],
    repeats: int = 20,
    inner: int | dict[str, int] = 1,
    warmup: int = 3,
    sync: Callable[[], None] | None = None,
    rotate: bool = False,
    settle: float = 0.0,
) -> dict[str, dict]:
    """Time each case `repeats` times, round-robin so drift hits all alike; seconds per call.

    `inner` calls make one timed sample (for very short calls; a dict gives each case its own);
    `sync` runs before each clock read (a GPU's synchronize), so queued work is counted where it
    was issued. `rotate` starts each round one case later, so no case always follows the same one.
    `settle` > 0: before each sample, pause that long, then make one untimed call. Worker threads
    of multi-threaded libraries (OpenBLAS, OpenMP) busy-wait for a while after their work; the
    pause lets the previous case's workers fall asleep so they do not take cores from this one,
    and the untimed call wakes this case's own workers as a loop of its calls would find them.
    """
    inners = inner if isinstance(inner, dict) else dict.fromkeys(cases, inner)
    for fn in cases.values():
        for _ in range(warmup):
            fn()
    if sync:
        sync()
    samples: dict[str, list[float]] = {name: [] for name in cases}
    order = list(cases.items())
    for i in range(repeats):
        shift = i % len(order) if rotate and order else 0
        for name, fn in order[shift:] + order[:shift]:
            n = inners[name]
            if settle > 0:
                time.sleep(settle)
                fn()
                if sync:
                    sync()
            t0 = time.perf_counter()
            for _ in range(n):
                fn()
            if sync:
                sync()
            samples[name].append((time.perf_counter() - t0) / n)
    return {
        name: {
            "median_s": statistics.median(s),
            "min_s": min(s),
            "repeats": len(s),
            "inner": inners[name],
        }
        for name, s in samples.items()
    }


def machine() -> dict[str, Any]:
    """Host, CPU, thread settings and library versions, for the record."""
    import numpy

    info: dict[str, Any] = {
        "host": socket.gethostname(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "numpy": numpy.__version__,
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
    for env in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        if env in os.environ:
            info[env] = os.environ[env]
    info["kernels_blas"] = load_kernels_blas()
    for mod in ("numba", "torch", "jax", "cupy"):
        try:
            info[mod] = __import__(mod).__version__
        except Exception:
            pass
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    info["cpu"] = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return info


def save(name: str, payload: dict[str, Any], tag: str | None = None) -> Path:
    """Write results/<date>-<host or gpu>-<name>.json (without -<name> when name is empty)."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    date = _dt.date.today().isoformat()
    where = tag or socket.gethostname().split(".")[0]
    path = RESULTS / (f"{date}-{where}-{name}.json" if name else f"{date}-{where}.json")
    path.write_text(json.dumps(payload, indent=2, sort_keys=True) + "\n")
    return path


def fmt_time(s: float) -> str:
    if s < 1e-3:
        return f"{s * 1e6:8.2f} us"
    if s < 1:
        return f"{s * 1e3:8.2f} ms"
    return f"{s:8.3f} s "


# -- threads -----------------------------------------------------------------------------------

THREAD_ENV = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS")


# How long OpenBLAS's idle workers keep busy-waiting after a call: 2**28 cycles by default
# (OPENBLAS_THREAD_TIMEOUT), about 0.1 s; libgomp's default spin is shorter. A pause of this
# length between one library's timed calls and the next one's lets them fall asleep. (Shortening
# the spin instead, OMP_WAIT_POLICY=PASSIVE or OPENBLAS_THREAD_TIMEOUT=4, was measured on the
# 2-core dev box to slow PyTorch's MLP step 784-256-256-10 by about 2x and NumPy's by 10-25%:
# it would handicap the libraries, so the harness leaves their settings alone.)
SETTLE_S = 0.15


def thread_env(n: int) -> None:
    """Ask every CPU library for n threads through the environment; must run before they load."""
    for env in THREAD_ENV:
        os.environ[env] = str(n)


def pin_cores(n: int) -> list[int] | None:
    """Run this process (and the processes it starts) on n of the cores it may use, when that is
    fewer than all of them; returns the cores chosen, or None when nothing was changed.

    Thread-count settings do not hold every library: XLA (JAX) sizes its CPU pool to the cores
    the process may run on and runs independent ops of one step side by side (measured: 1.24 CPU
    seconds per wall second for JAX jit with its one-thread flags, 0.99 once pinned to one core).
    Must run before the libraries start their threads.
    """
    try:
        allowed = sorted(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return None
    if n >= len(allowed):
        return None
    chosen = allowed[-n:]  # the last ones: core 0 tends to take more interrupts
    os.sched_setaffinity(0, chosen)
    return chosen


_limits: Any = None  # threadpoolctl's limiter, kept alive for the whole run


def load_kernels_blas() -> str | None:
    """Load the kernels' BLAS (MKL when installed) now, so a thread limit reaches it too."""
    try:
        from gradtensor.kernels import blas
    except ImportError:
        return None
    return blas.NAME


def limit_threads(n: int) -> dict[str, Any]:
    """Hold every thread pool already loaded to n threads; returns what each one now uses.

    BLAS and OpenMP pools through threadpoolctl when it is installed (else the environment set by
    `thread_env` is what limits them), PyTorch through torch.set_num_threads, Numba through
    numba.set_num_threads.
    """
    global _limits
    record: dict[str, Any] = {"requested": n, "kernels_blas": load_kernels_blas()}
    try:
        import threadpoolctl

        _limits = threadpoolctl.threadpool_limits(n)
        record["pools"] = [
            {k: p.get(k) for k in ("internal_api", "prefix", "version", "num_threads")}
            for p in threadpoolctl.threadpool_info()
        ]
    except ImportError:
        record["pools"] = "threadpoolctl not installed: limited by " + ", ".join(THREAD_ENV)
    import sys

    torch = sys.modules.get("torch")
    if torch is not None:  # only when a reference loaded it
        torch.set_num_threads(n)
        record["torch"] = torch.get_num_threads()
    try:
        import numba

        numba.set_num_threads(min(n, numba.config.NUMBA_NUM_THREADS))
        record["numba"] = numba.get_num_threads()
    except ImportError:
        pass
    return record


# -- host memory -------------------------------------------------------------------------------


def _status_kb(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise OSError(f"/proc/self/status has no {field}")


def rss_bytes() -> int:
    """This process's resident set size now (Linux)."""
    return _status_kb("VmRSS") * 1024


def reset_peak_rss() -> None:
    """Restart the resident-set high-water mark at the current size (Linux >= 4.0)."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def peak_rss_bytes() -> int:
    """The resident-set high-water mark since the last reset_peak_rss()."""
    return _status_kb("VmHWM") * 1024


def fmt_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:7.1f} {unit}" if unit != "B" else f"{n:7.0f} B  "
        n /= 1024
    return f"{n:7.1f} GiB"


def log(msg: str) -> None:
    """One line of progress, out at once (a long sweep must never look hung)."""
    print(msg, flush=True)
