#!/usr/bin/env bash
# Everything a lent GPU is for, in ONE device call, from the repository root:
#
#   [GPU_CHECK_DEADLINE_S=480] bash benchmarks/gpu_session.sh [--only a,b,...]
#
# benchmarks/gpu_check.py runs the parts in priority order under a deadline (default 480 s,
# or GPU_CHECK_DEADLINE_S), skipping what no longer fits, with the reason:
#   (a) versions and what Numba sees   (b) every kernels.cuda variant + the grid-limit case
#   (c) pytest -m cuda                 (d) a CUDA graph of a training step
#   (e) compute-sanitizer              (f) path A/B, CuPy, PyTorch timings (PATH_B_MAX_MACS)
#   (g) an MLP step against PyTorch eager (the benchmark harness)
# At most 4 files land in $OUT (the device tool's folder; default benchmarks/results/gpu):
# results.json, session.log, tests.txt, bench-mlp.json. The machine has CuPy, Numba, numba-cuda,
# PyTorch and pytest and no network: gradtensor runs from the checkout, nothing is installed.
set -uo pipefail
cd "$(dirname "$0")/.."
export OUT=${OUT:-benchmarks/results/gpu}
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 CUPY_TF32=0
PY=${PYTHON:-python3}
deadline=${GPU_CHECK_DEADLINE_S:-480}
# A backstop 30 s past the script's own deadline, in case the driver itself hangs.
timeout -k 10 $((${deadline%.*} + 30)) "$PY" benchmarks/gpu_check.py --deadline "$deadline" "$@"
