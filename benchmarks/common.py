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

RESULTS = Path(__file__).resolve().parent / "results"


def alternate(
    cases: dict[str, Callable[[], Any]],
    repeats: int = 20,
    inner: int = 1,
    warmup: int = 3,
    sync: Callable[[], None] | None = None,
) -> dict[str, dict]:
    """Time each case `repeats` times, round-robin so drift hits all alike; seconds per call.

    `inner` calls make one timed sample (for very short calls); `sync` runs before each clock
    read (a GPU's synchronize), so queued work is counted where it was issued.
    """
    for fn in cases.values():
        for _ in range(warmup):
            fn()
    if sync:
        sync()
    samples: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(repeats):
        for name, fn in cases.items():
            t0 = time.perf_counter()
            for _ in range(inner):
                fn()
            if sync:
                sync()
            samples[name].append((time.perf_counter() - t0) / inner)
    return {
        name: {"median_s": statistics.median(s), "min_s": min(s), "repeats": len(s), "inner": inner}
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
    """Write results/<date>-<host or gpu>-<name>.json and return its path."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    date = _dt.date.today().isoformat()
    where = tag or socket.gethostname().split(".")[0]
    path = RESULTS / f"{date}-{where}-{name}.json"
    path.write_text(json.dumps(payload, indent=2, sort_keys=True) + "\n")
    return path


def fmt_time(s: float) -> str:
    if s < 1e-3:
        return f"{s * 1e6:8.2f} us"
    if s < 1:
        return f"{s * 1e3:8.2f} ms"
    return f"{s:8.3f} s "
