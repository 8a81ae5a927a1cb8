"""First use: the CPU time of a fresh process's first training step (forward, cross-entropy,
backward, SGD with momentum), with an empty compile cache (cold) and with the cache that the cold
run left (warm). Each run is a new interpreter on a cache folder this suite creates."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

SIZES = {"cpu": [([64, 128, 10], 32), ([784, 256, 256, 10], 128)], "quick": [([8, 8, 4], 4)]}
WARM_RUNS = 3
COLD_RUNS = 3  # each on an empty cache of its own: a single compile is at the machine's mercy
# The first step of each implementation, after its imports (timed apart), in a fresh process.
_PROBE = """
import json, sys, time
key, sizes, batch = json.loads(sys.argv[1])
t0 = time.process_time()
import numpy as np
if key == "torch":
    import torch as lib
    nn, optim, tensor = lib.nn, lib.optim, lib.tensor
else:
    import gradtensor as lib
    nn, optim, tensor = lib.nn, lib.optim, lib.tensor
t1 = time.process_time()
lib.manual_seed(0)
if key == "torch":
    layers = [m for a, b in zip(sizes, sizes[1:]) for m in (nn.Linear(a, b), nn.ReLU())][:-1]
    model = nn.Sequential(*layers)
else:
    model = nn.MLP(sizes)
opt = optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
x, y = lib.randn(batch, sizes[0]), tensor(np.arange(batch) % sizes[-1])
t2 = time.process_time()
loss = nn.functional.cross_entropy(model(x), y)
loss.backward()
opt.step()
opt.zero_grad()
t3 = time.process_time()
print(json.dumps({"import_s": t1 - t0, "step_s": t3 - t2, "loss": float(loss.item())}))
"""


# Numba's own start-up, the floor under any first step that runs a Numba kernel: a fresh
# process's import of Numba and first call of one cached trivial function, in CPU seconds.
_FLOOR = """
import json, time
import numpy  # imported before the step in the first-step probe too
t0 = time.process_time()
import numba
t1 = time.process_time()
@numba.njit(cache=True)
def total(n):
    s = 0
    for i in range(n):
        s += i
    return s
total(3)
t2 = time.process_time()
print(json.dumps({"import_s": t1 - t0, "step_s": t2 - t0}))
"""


def numba_floor(runs: int = WARM_RUNS) -> dict[str, Any]:
    """The median `_FLOOR` over `runs` warm processes (a first one fills a cache of its own)."""
    out = []
    with tempfile.TemporaryDirectory(prefix="gradtensor-firstuse-") as cache:
        floor = Path(cache) / "floor.py"  # Numba caches functions of files only
        floor.write_text(_FLOOR)
        env = {**os.environ, "NUMBA_CACHE_DIR": cache}
        for _ in range(runs + 1):
            proc = subprocess.run([sys.executable, str(floor)], env=env, capture_output=True,
                                  text=True, timeout=600, cwd=cache)  # fmt: skip
            if proc.returncode != 0:
                raise RuntimeError(f"numba floor probe exited {proc.returncode}")
            out.append(json.loads(proc.stdout.splitlines()[-1]))
    warm = out[1:]
    return {k: statistics.median(r[k] for r in warm) for k in ("step_s", "import_s")}


def _run(key: str, sizes: list[int], batch: int, cache: str) -> dict[str, Any]:
    root = str(Path(__file__).resolve().parents[1])
    env = {**os.environ, "NUMBA_CACHE_DIR": cache}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [root, env.get("PYTHONPATH")]))
    if key == "gradtensor-nokernels":
        env["GRADTENSOR_KERNELS"] = "0"
    arg = json.dumps(["torch" if key == "torch" else "gradtensor", sizes, batch])
    proc = subprocess.run([sys.executable, "-c", _PROBE, arg], env=env, capture_output=True,
                          text=True, timeout=600, cwd=root)  # fmt: skip
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
        raise RuntimeError(f"first-use probe exited {proc.returncode}: {tail[0]}")
    return {**json.loads(lines[-1]), "announced": "compiling kernels" in proc.stderr}


def firstuse(ctx: Any) -> dict[str, Any]:
    from benchmarks.suites import log, mlp_name

    keys = [k for k in ("gradtensor", "gradtensor-nokernels", "torch") if k in ctx.libs]
    cases = []
    for sizes, batch in SIZES["quick" if ctx.quick else "cpu"]:
        name = mlp_name(sizes, batch)
        log(f"[firstuse] {name}: {COLD_RUNS} cold and {WARM_RUNS} warm fresh processes per "
            "implementation")  # fmt: skip
        params = {"sizes": sizes, "batch": batch}
        cold = {"name": f"cold cache, {name}", "params": {**params, "cache": "cold"},
                "results": {}, "errors": {}}  # fmt: skip
        warm = {"name": f"warm cache, {name}", "params": {**params, "cache": "warm"},
                "results": {}, "errors": {}}  # fmt: skip
        for key in keys:
            runs = []
            try:
                for k in range(COLD_RUNS):  # the last cold run's cache serves the warm runs
                    with tempfile.TemporaryDirectory(prefix="gradtensor-firstuse-") as cache:
                        runs.append(_run(key, sizes, batch, cache))
                        if k == COLD_RUNS - 1:
                            runs += [_run(key, sizes, batch, cache) for _ in range(WARM_RUNS)]
            except (RuntimeError, subprocess.TimeoutExpired) as exc:
                cold["errors"][key] = warm["errors"][key] = str(exc)
                continue
            for case, part in ((cold, runs[:COLD_RUNS]), (warm, runs[COLD_RUNS:])):
                step = statistics.median(r["step_s"] for r in part)
                imp = statistics.median(r["import_s"] for r in part)
                case["results"][key] = {"median_s": step, "import_s": imp, "runs": part}
                said = "; compiling announced" * part[0]["announced"]
                print(f"    {key:22s} {case['name'][:10]}: first step {step:6.2f} s CPU "
                      f"(import {imp:.2f} s){said}")  # fmt: skip
        cases += [cold, warm]
    note = ("CPU seconds (process time) of the first step after the imports, which are timed "
            f"apart; cold: an empty Numba cache (median of {COLD_RUNS}, each its own cache); "
            f"warm: the cache the last cold run left (median of {WARM_RUNS}); each a fresh "
            "process.")  # fmt: skip
    notes = [note]
    if "gradtensor" in keys:
        try:
            floor = numba_floor()
        except (RuntimeError, subprocess.TimeoutExpired) as exc:
            print(f"    Numba's start-up floor: not measured ({exc})")
        else:
            for case in cases:
                case["numba_floor_s"] = floor["step_s"]
            print(f"    Numba's start-up floor: {floor['step_s']:.2f} s CPU (import "
                  f"{floor['import_s']:.2f} s)")  # fmt: skip
            notes.append(
                f"Numba's own start-up, under any warm first step that runs a kernel: a fresh "
                f"process's import of Numba and first call of one trivial cached function took "
                f"{floor['step_s']:.2f} s CPU (median of {WARM_RUNS}; the import "
                f"{floor['import_s']:.2f} s)."
            )
    return {"cases": cases, "notes": notes}
