"""Runs the CUDA kernels' simulator suite (sim_linear_act.py) in a subprocess.

NUMBA_ENABLE_CUDASIM must be set before Numba is first imported, and this process has already
imported it, so the simulator suite gets an interpreter of its own.
"""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]


@pytest.mark.slow
def test_cuda_kernels_in_simulator():
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="1")
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:randomly"]
    cmd.append(str(HERE / "sim_linear_act.py"))
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    output = done.stdout + done.stderr
    assert done.returncode == 0, f"simulator suite failed:\n{output[-20000:]}"
    passed = re.search(r"(\d+) passed", output)
    assert passed and int(passed.group(1)) > 50, f"simulator suite ran too few tests:\n{output}"
    assert "skipped" not in output, f"simulator suite skipped tests:\n{output}"
