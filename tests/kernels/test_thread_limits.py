"""Thread limits reach every pool gradtensor starts: gt.set_num_threads, OMP_NUM_THREADS."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import gradtensor as gt
from gradtensor.kernels import blas

ROOT = Path(__file__).resolve().parents[2]

# In a fresh process (limits are process-wide): what every pool, MKL and the passes use.
_REPORT = """
import json, sys
import numpy as np, threadpoolctl
import gradtensor as gt
from gradtensor.kernels import blas, cpu
if sys.argv[1] != "env":
    gt.set_num_threads(int(sys.argv[1]))
mkl = next((n for n in blas.available() if n != "numpy"), None)
if mkl:
    blas.select(mkl)
cpu.PARALLEL_MIN_ELEMENTS = 0
cpu._parallel_min = lambda: 0  # as beside MKL on GNU OpenMP: passes split across the threads
print(json.dumps({
    "gt": gt.get_num_threads(),
    "pools": {p["internal_api"]: p["num_threads"] for p in threadpoolctl.threadpool_info()},
    "mkl": blas._mkl()[0].MKL_Get_Max_Threads() if mkl else None,
    "chunks": cpu._chunks(1 << 24),
}))
"""


def _report(arg: str, **env: str) -> dict:
    run_env = {k: v for k, v in os.environ.items() if not k.endswith("_NUM_THREADS")}
    done = subprocess.run(
        [sys.executable, "-c", _REPORT, arg],
        env={**run_env, **env},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_set_num_threads_limits_every_pool():
    got = _report("1")
    assert got["gt"] == 1 and got["chunks"] == 1
    assert set(got["pools"].values()) == {1}, got["pools"]
    assert got["mkl"] in (None, 1)  # MKL loaded after the call still takes the limit


def test_omp_num_threads_limits_mkl_and_the_passes():
    got = _report("env", OMP_NUM_THREADS="1")
    assert got["gt"] == 1 and got["chunks"] == 1
    assert got["mkl"] in (None, 1), "MKL, loaded privately, must honour OMP_NUM_THREADS"
    if (os.cpu_count() or 1) > 1:  # without a limit the passes take every thread
        assert _report("env")["chunks"] > 1


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "2"])
def test_set_num_threads_rejects_what_is_not_a_count(bad):
    with pytest.raises(ValueError, match=r"set_num_threads: n must be a positive int"):
        gt.set_num_threads(bad)


def test_small_products_run_mkl_on_the_calling_thread_only(monkeypatch):
    calls = []
    monkeypatch.setitem(blas._GEMM, np.dtype(np.float32), (1, 0))  # addresses never called
    monkeypatch.setattr(blas, "_gemm", lambda *args: calls.append(args[-1]))
    for m, k, n in [(32, 64, 128), (256, 256, 256)]:  # 2**18 and 2**24 multiply-adds
        a, b = np.ones((m, k), np.float32), np.ones((k, n), np.float32)
        blas.matmul(a, b, np.empty((m, n), np.float32))
    assert calls == [True, False]
