#!/usr/bin/env bash
# What a lent GPU is for, from the repository root, in parts that each fit one device call:
#
#   bash benchmarks/gpu_session.sh tests    # the cuda-marked tests: every op and gradient on
#                                           # the GPU against the CPU, kernels on CuPy arrays,
#                                           # digits training; and the kernel tests
#   bash benchmarks/gpu_session.sh suite    # python -m benchmarks --device cuda (MLP steps and
#                                           # per-op overhead against PyTorch eager, and more)
#   bash benchmarks/gpu_session.sh sweep    # bench_linear_act's GPU sweep: path A, path B,
#                                           # unfused CuPy, PyTorch eager, the GEMMs alone
#
# Everything lands in $OUT (the device tool's folder that comes back; default
# benchmarks/results/gpu): device.txt (GPU, driver, versions), tests.txt (the pytest summary with
# device.txt at its top), and the benchmark JSON. Copy those under benchmarks/results/ as
# <date>-<gpu>-tests.txt and the JSON files, then run `python -m benchmarks.report`.
# The machine has CuPy, Numba, numba-cuda, PyTorch, JAX and pytest and no network: gradtensor is
# run from the checkout (PYTHONPATH), not installed.
set -uo pipefail
part=${1:?usage: bash benchmarks/gpu_session.sh tests|suite|sweep}
OUT=${OUT:-benchmarks/results/gpu}
mkdir -p "$OUT"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 CUPY_TF32=0
export GRADTENSOR_RESULTS_DIR="$OUT"
PY=${PYTHON:-python3}

"$PY" - >"$OUT/device.txt" 2>&1 <<'EOF'
import datetime, platform, subprocess
print("date", datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"))
print("python", platform.python_version())
try:
    smi = subprocess.run(
        ["nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"],
        capture_output=True, text=True, timeout=60,
    )
    print("nvidia-smi", smi.stdout.strip() or smi.stderr.strip())
except Exception as e:
    print("nvidia-smi unavailable:", e)
for mod in ("numpy", "cupy", "numba", "numba_cuda", "torch", "jax"):
    try:
        m = __import__(mod)
        print(mod, getattr(m, "__version__", "?"))
    except Exception as e:
        print(mod, "not importable:", type(e).__name__, e)
try:
    import cupy
    dev = cupy.cuda.Device()
    props = cupy.cuda.runtime.getDeviceProperties(dev.id)
    name = props["name"].decode() if isinstance(props["name"], bytes) else props["name"]
    print("cupy device", dev.id, name, "compute capability", dev.compute_capability)
    print("cuda runtime", cupy.cuda.runtime.runtimeGetVersion(),
          "driver", cupy.cuda.runtime.driverGetVersion())
except Exception as e:
    print("cupy device unavailable:", type(e).__name__, e)
EOF
cat "$OUT/device.txt"

case "$part" in
tests)
    {
        cat "$OUT/device.txt"
        echo "--- python -m pytest -m cuda tests"
        "$PY" -m pytest -m cuda -q -rs -p no:cacheprovider tests
        echo "exit status $?"
        echo "--- python -m pytest tests/kernels tests/test_linear_dispatch.py tests/test_optim.py"
        "$PY" -m pytest -q -rs -p no:cacheprovider tests/kernels tests/test_linear_dispatch.py \
            tests/test_optim.py
        echo "exit status $?"
    } 2>&1 | tee "$OUT/tests.txt"
    ;;
suite)
    "$PY" -m benchmarks --device cuda 2>&1 | tee "$OUT/suite.log"
    ;;
sweep)
    "$PY" -m benchmarks.bench_linear_act --no-cpu 2>&1 | tee "$OUT/sweep.log"
    ;;
*)
    echo "unknown part $part: expected tests, suite or sweep" >&2
    exit 2
    ;;
esac
