#!/usr/bin/env bash
# Everything a lent GPU is for, in ONE device call, from the repository root:
#   [GPU_CHECK_DEADLINE_S=480] bash benchmarks/gpu_session.sh [--only a,b,...]
# benchmarks/gpu_check.py runs its parts under the deadline and writes at most 5 files to $OUT
# (default benchmarks/results/gpu); gradtensor runs from the checkout, nothing is installed.
set -uo pipefail
cd "$(dirname "$0")/.."
export OUT=${OUT:-benchmarks/results/gpu} PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1 CUPY_TF32=0
deadline=${GPU_CHECK_DEADLINE_S:-480}
# A backstop 30 s past the script's own deadline, in case the driver itself hangs.
timeout -k 10 $((${deadline%.*} + 30)) "${PYTHON:-python3}" benchmarks/gpu_check.py --deadline "$deadline" "$@"
