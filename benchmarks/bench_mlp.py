"""One MLP training step with SGD momentum, gradtensor against PyTorch on the CPU, phase by phase.

    python -m benchmarks.bench_mlp [--sizes 784,1024,1024,10] [--batch 256] [--threads N] [--quick]

zero_grad, forward through nn.MLP, cross-entropy, backward, optim.SGD(momentum 0.9).step(), and
the same with torch.nn: checked and timed as `python -m benchmarks` does, then phase by phase.
Writes results/<date>-<host>-mlp.json unless --quick or --no-save (--out: there in any case).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks import suites as S
from benchmarks.__main__ import RESULTS, limit_threads, machine
from benchmarks.impls import load


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.bench_mlp", description=__doc__)
    ap.add_argument("--sizes", default="784,1024,1024,10", help="layer sizes, comma-separated")
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="default: all cores")
    ap.add_argument("--budget", type=float, default=40.0, help="seconds of alternating timing")
    ap.add_argument("--quick", action="store_true", help="3 samples each: a smoke run")
    ap.add_argument("--out", type=Path, help="write the JSON here")
    ap.add_argument("--no-save", action="store_true", help="write no JSON")
    args = ap.parse_args(argv)
    sizes, load_before = [int(s) for s in args.sizes.split(",")], os.getloadavg()[0]
    libs = load(["gradtensor", "torch"], "cpu")[0]  # before limit_threads: torch loaded
    result = {"sizes": sizes, "batch": args.batch, "threads": limit_threads(args.threads)}
    result.update(dtype="float32", optimizer=f"SGD(lr={S.LR}, momentum=0.9)")
    work, names = (*S.mlp_inputs(sizes, args.batch), S.LR, 0.9), S.mlp_names(sizes)
    ctx = S.Context(libs, "cpu", args.quick, 1.0, args.threads)
    name = S.mlp_name(sizes, args.batch)
    case = S.run_case(ctx, "[bench_mlp]", name, {}, "mlp", work, names, args.budget)
    gt = lambda key: "gt" if key == "gradtensor" else key  # this script's JSON's name for it
    steps = result["step"] = {gt(k): r for k, r in case["results"].items()}
    if "torch" in steps:
        result["check"] = {"grad": steps["torch"]["check_max_rel_err"]}  # and the loss
        ratio = result["ratio_gt_over_torch"] = 1 / steps["torch"]["ratio"]
        S.log(f"ratio gradtensor / PyTorch = {ratio:.3f} (target <= 1.0: gradtensor is "
              f"{'no slower than' if ratio <= 1 else 'slower than'} PyTorch)")  # fmt: skip
    result["phases"] = {}
    for key, lib in libs.items():  # each phase's median, after 3 untimed steps
        forward, backward, update, _ = lib.mlp(*work).parts
        times: dict[str, list[float]] = {"forward": [], "backward": [], "step": []}
        for i in range(3 + (3 if args.quick else 11)):
            t0 = time.perf_counter()
            loss = forward()
            t1 = time.perf_counter()
            backward(loss)
            t2 = time.perf_counter()
            update()
            for k, dt in zip(times, (t1 - t0, t2 - t1, time.perf_counter() - t2)):
                times[k] += [dt] if i >= 3 else []
        ph = result["phases"][gt(key)] = {k: statistics.median(v) for k, v in times.items()}
        S.log(f"  {key:<10} " + "  ".join(f"{p} {S.fmt_time(v)}" for p, v in ph.items()))
    result.update(machine=machine(), loadavg_before=load_before)
    if args.out is not None or not (args.quick or args.no_save):
        name = f"{result['machine']['date'][:10]}-{result['machine']['host'].split('.')[0]}-mlp"
        path = result["path"] = str(args.out or RESULTS / f"{name}.json")
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(json.dumps(result, indent=1, sort_keys=True) + "\n")
        S.log(f"wrote {path}")
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
