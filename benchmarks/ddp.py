"""DDP: a data-parallel MLP step (784-1024-1024-10, global batch 512, SGD) on 1 and 2 processes
started with mpiexec, each process one core and one BLAS thread; the step time, the scaling
efficiency (the 1-process time / (processes x the N-process time)), the bytes each process
all-reduces per step, and the share of that communication hidden behind backward (1 - (the DDP
step's time - the same step's under no_sync) / the time the same all-reduces take alone).

The same script runs across machines with `mpiexec -f hosts -n N python -m benchmarks.ddp
worker ...` and on GPUs with the NCCL backend; this suite measures one machine's CPU cores."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

SIZES, GLOBAL_BATCH, STEPS = [784, 1024, 1024, 10], 512, 20
QUICK = ([784, 64, 64, 10], 64, 4)


def worker(sizes: list[int], global_batch: int, steps: int) -> None:
    """One rank: time `steps` DDP steps; rank 0 prints the medians as JSON."""
    # One core per rank (the harness pinned itself, and so its children, to one core).
    os.sched_setaffinity(0, {int(os.environ.get("PMI_RANK", "0")) % (os.cpu_count() or 1)})
    import numpy as np

    import gradtensor as gt
    import gradtensor.distributed as dist

    dist.init_process_group("mpi")
    rank, size = dist.get_rank(), dist.get_world_size()
    gt.manual_seed(0)
    model = gt.nn.parallel.DistributedDataParallel(gt.nn.MLP(sizes))
    opt = gt.optim.SGD(model.parameters(), lr=0.01)
    rng = np.random.default_rng(rank)
    per = global_batch // size
    x = gt.tensor(rng.standard_normal((per, sizes[0])).astype(np.float32))
    y = gt.tensor(rng.integers(0, sizes[-1], per))
    times, waits = [], []
    for i in range(steps + 3):
        dist.barrier()
        t0 = time.perf_counter()
        opt.zero_grad()
        gt.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
        if i >= 3:  # after the warm-up
            times.append(time.perf_counter() - t0)
            waits.append(model.comm_stats["wait_s"])
    # The same steps without communication (no_sync): what is left of a DDP step's time beyond
    # them is the communication that backward did not hide.
    local = []
    for _ in range(steps):
        dist.barrier()
        t0 = time.perf_counter()
        opt.zero_grad()
        with model.no_sync():
            gt.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
        local.append(time.perf_counter() - t0)
    # The same all-reduces alone: what communication costs when nothing hides it.
    bufs = [np.ones(p.numel(), np.float32) for p in model.parameters()]
    alone = []
    for _ in range(steps):
        dist.barrier()
        t0 = time.perf_counter()
        for b in bufs:
            dist.all_reduce(b)
        alone.append(time.perf_counter() - t0)
    if rank == 0:
        out = dict(processes=size, median_s=statistics.median(times), min_s=min(times),
                   wait_s=statistics.median(waits), alone_s=statistics.median(alone),
                   local_s=statistics.median(local),
                   bytes=model.comm_stats["bytes"])  # fmt: skip
        print("DDP-RESULT " + json.dumps(out), flush=True)
    dist.destroy_process_group()


def ddp(ctx: Any) -> dict[str, Any]:
    from benchmarks.suites import log, mlp_name
    from gradtensor.distributed.launch import find_mpiexec

    sizes, batch, steps = QUICK if ctx.quick else (SIZES, GLOBAL_BATCH, STEPS)
    name = mlp_name(sizes, batch)
    try:
        mpiexec = find_mpiexec()
    except Exception as exc:  # no MPI installed: the suite says why and measures nothing
        return {"cases": [], "notes": [f"not measured: {exc}"]}
    root = str(Path(__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get(
        "PYTHONPATH")]))}  # fmt: skip
    runs: dict[int, dict] = {}
    for n in (1, 2):
        log(f"[ddp {n}/2] {name}: {n} process(es), {steps} steps")
        cmd = [mpiexec, "-n", str(n), sys.executable, "-m", "benchmarks.ddp", "worker",
               json.dumps([sizes, batch, steps])]  # fmt: skip
        proc = subprocess.run(cmd, env=env, cwd=root, capture_output=True, text=True, timeout=600)
        lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("DDP-RESULT ")]
        if proc.returncode or not lines:
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
            runs[n] = {"error": f"mpiexec exited {proc.returncode}: {tail[0]}"}
            continue
        runs[n] = json.loads(lines[-1][len("DDP-RESULT ") :])
    cases = []
    for n, r in runs.items():
        params = {"sizes": sizes, "batch": batch, "processes": n}
        case = {"name": f"{name}, {n} process{'es' * (n > 1)}", "params": params, "results": {}}
        if "error" in r:
            case["errors"] = {"gradtensor": r["error"]}
        else:
            res = dict(r)
            if n > 1 and "median_s" in runs.get(1, {}):
                res["scaling_efficiency"] = runs[1]["median_s"] / (n * r["median_s"])
                exposed = max(0.0, r["median_s"] - r["local_s"])
                res["hidden_fraction"] = max(0.0, 1 - exposed / r["alone_s"])
            case["results"]["gradtensor"] = res
            extra = "".join(f", {k.replace('_', ' ')} {res[k]:.2f}" for k in
                            ("scaling_efficiency", "hidden_fraction") if k in res)  # fmt: skip
            log(f"    {n} process(es): {r['median_s'] * 1e3:.1f} ms a step, "
                f"{r['bytes'] / 2**20:.1f} MiB all-reduced{extra}")  # fmt: skip
        cases.append(case)
    notes = [part.replace("\n", " ") for part in __doc__.split("\n\n")]
    for case in cases:
        r = case["results"].get("gradtensor", {})
        if "scaling_efficiency" in r:
            notes.append(
                f"Measured, {case['name']}: scaling efficiency {r['scaling_efficiency']:.2f}, "
                f"{r['bytes'] / 2**20:.1f} MiB all-reduced per process per step, "
                f"{r['hidden_fraction']:.0%} of the communication hidden behind backward "
                f"(a step takes {(r['median_s'] - r['local_s']) * 1e3:.1f} ms more than the same "
                f"step without communication; the same all-reduces alone take "
                f"{r['alone_s'] * 1e3:.1f} ms; the end of backward waited {r['wait_s'] * 1e3:.1f} "
                "ms, the other rank's backward included)."
            )
    return {"cases": cases, "notes": notes}


if __name__ == "__main__" and sys.argv[1:2] == ["worker"]:
    worker(*json.loads(sys.argv[2]))
