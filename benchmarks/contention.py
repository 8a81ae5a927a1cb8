"""Contention: a digits training step (64-128-10, batch 32, dropout 0.2, Adam) timed alone and
beside a CPU-bound process that this suite starts, alternating; each implementation's time beside
the load over its time alone (below 2: it held up)."""

from __future__ import annotations

import multiprocessing as mp
import statistics
import time
from typing import Any

import numpy as np

SIZES, BATCH, ROUNDS = [64, 128, 10], 32, 3


def _burn(stop: Any) -> None:
    while not stop.is_set():
        sum(range(100_000))


def _gradtensor_step(gt: Any, x: np.ndarray, y: np.ndarray) -> Any:
    gt.manual_seed(0)
    model = gt.nn.MLP(SIZES, dropout=0.2)
    opt = gt.optim.Adam(model.parameters(), lr=1e-2)
    xt, yt = gt.tensor(x), gt.tensor(y)

    def step() -> None:
        gt.nn.functional.cross_entropy(model(xt), yt).backward()
        opt.step()
        opt.zero_grad()

    return step


def _torch_step(torch: Any, x: np.ndarray, y: np.ndarray) -> Any:
    torch.manual_seed(0)
    layers = [torch.nn.Linear(SIZES[0], SIZES[1]), torch.nn.ReLU(), torch.nn.Dropout(0.2),
              torch.nn.Linear(SIZES[1], SIZES[2])]  # fmt: skip
    model = torch.nn.Sequential(*layers)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)

    def step() -> None:
        torch.nn.functional.cross_entropy(model(xt), yt).backward()
        opt.step()
        opt.zero_grad()

    return step


def contention(ctx: Any) -> dict[str, Any]:
    from benchmarks.suites import log, mlp_name

    rng = np.random.default_rng(0)
    x = rng.standard_normal((BATCH, SIZES[0])).astype(np.float32)
    y = (np.arange(BATCH) % SIZES[-1]).astype(np.int64)
    steps = {"gradtensor": _gradtensor_step(ctx.libs["gradtensor"].gt, x, y)}
    if "torch" in ctx.libs:
        steps["torch"] = _torch_step(ctx.libs["torch"].torch, x, y)
    n = 20 if ctx.quick else 300
    samples: dict[str, dict[str, list[float]]] = {k: {"idle": [], "busy": []} for k in steps}
    log(f"[contention] {mlp_name(SIZES, BATCH)}: {ROUNDS} rounds alone and beside a busy process")
    spawn = mp.get_context("spawn")
    for _ in range(1 if ctx.quick else ROUNDS):
        for state in ("idle", "busy"):
            stop = spawn.Event()
            burner = spawn.Process(target=_burn, args=(stop,)) if state == "busy" else None
            if burner:
                burner.start()
                time.sleep(0.3)
            try:
                for key, step in steps.items():
                    for _ in range(n // 10):
                        step()
                    for _ in range(n):
                        t = time.perf_counter()
                        step()
                        samples[key][state].append(time.perf_counter() - t)
            finally:
                if burner:
                    stop.set()
                    burner.join()
    params = {"sizes": SIZES, "batch": BATCH, "threads": ctx.threads}
    case = {"name": mlp_name(SIZES, BATCH) + " beside a busy process", "params": params,
            "results": {}}  # fmt: skip
    for key, s in samples.items():
        idle, busy = statistics.median(s["idle"]), statistics.median(s["busy"])
        mean_idle, mean_busy = statistics.fmean(s["idle"]), statistics.fmean(s["busy"])
        case["results"][key] = {"median_s": busy, "idle_median_s": idle, "slowdown": busy / idle,
                                "mean_slowdown": mean_busy / mean_idle}  # fmt: skip
        print(f"    {key:22s} alone {idle * 1e3:.3f} ms, beside the load {busy * 1e3:.3f} ms: "
              f"{busy / idle:.2f}x (means: {mean_busy / mean_idle:.2f}x)")  # fmt: skip
    note = ("The table's times are medians beside the load; alone, each took its idle_median_s "
            f"(in the JSON). {ctx.threads} thread(s) per library; the load is one Python process "
            "spinning.")  # fmt: skip
    return {"cases": [case], "notes": [note]}
