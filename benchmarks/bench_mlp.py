"""One MLP training step with SGD momentum, gradtensor against PyTorch on the CPU, phase by phase.

    python -m benchmarks.bench_mlp [--sizes 784,1024,1024,10] [--batch 256] [--threads N] [--quick]

What a user's loop does: zero_grad, forward through nn.MLP (fused Linear + ReLU), cross-entropy,
backward, optim.SGD(momentum 0.9).step(); PyTorch the same with torch.nn and torch.optim. Checked
and timed as `python -m benchmarks` does, then timed phase by phase (forward, backward, update).
Writes results/<date>-<host>-mlp.json unless --quick or --no-save (--out writes there anyway).
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

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import suites as S  # noqa: E402
from benchmarks.__main__ import RESULTS, limit_threads, machine  # noqa: E402
from benchmarks.impls import load  # noqa: E402

MOMENTUM = 0.9


def phases(forward: Any, backward: Any, update: Any, repeats: int) -> dict[str, float]:
    """Median seconds of each phase of a step, after 3 untimed steps."""
    times: dict[str, list[float]] = {"forward": [], "backward": [], "step": []}
    for i in range(3 + repeats):
        t0 = time.perf_counter()
        loss = forward()
        t1 = time.perf_counter()
        backward(loss)
        t2 = time.perf_counter()
        update()
        for k, dt in zip(times, (t1 - t0, t2 - t1, time.perf_counter() - t2)):
            times[k] += [dt] if i >= 3 else []
    return {k: statistics.median(v) for k, v in times.items()}


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
    libs, skipped = load(["gradtensor", "torch"], "cpu")  # before limit_threads: torch loaded
    threads = limit_threads(args.threads)
    ctx = S.Context(libs, "cpu", args.quick, 1.0, args.threads)
    params, x, t = S.mlp_inputs(sizes, args.batch)
    S.log(f"SGD momentum {MOMENTUM}, float32; {args.threads} thread(s) for every library; the "
          f"kernels' GEMMs by {threads['kernels_blas']}; {skipped.get('torch', '')}")  # fmt: skip
    case = S.run_case(ctx, "[bench_mlp]", S.mlp_name(sizes, args.batch), {}, "mlp",
                      (params, x, t, S.LR, MOMENTUM), S.mlp_names(sizes), args.budget)  # fmt: skip
    steps = {("gt" if k == "gradtensor" else k): r for k, r in case["results"].items()}
    result = {"sizes": sizes, "batch": args.batch, "dtype": "float32", "threads": threads,
              "optimizer": f"SGD(lr={S.LR}, momentum={MOMENTUM})", "step": steps}  # fmt: skip
    if "torch" in steps:
        result["check"] = {"grad": steps["torch"]["check_max_rel_err"]}  # and the loss
        ratio = result["ratio_gt_over_torch"] = 1 / steps["torch"]["ratio"]
        S.log(f"ratio gradtensor / PyTorch = {ratio:.3f} (target <= 1.0: gradtensor is "
              f"{'no slower than' if ratio <= 1 else 'slower than'} PyTorch)")  # fmt: skip
    result["phases"] = {}
    for key, lib in libs.items():
        parts = lib.mlp(params, x, t, S.LR, MOMENTUM).parts[:3]
        result["phases"][key] = ph = phases(*parts, 3 if args.quick else 11)
        S.log(f"  {key:<10} " + "  ".join(f"{p} {S.fmt_time(v).strip()}" for p, v in ph.items()))
    result["phases"]["gt"] = result["phases"].pop("gradtensor")
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
