"""The CUDA optimizer kernels: dispatch and checks here, the updates in the simulator suite.

sim_optim_cuda.py compares kernels.optim_cuda with kernels.optim_cpu in Numba's CUDA simulator;
NUMBA_ENABLE_CUDASIM must be set before Numba is first imported, so it runs in a subprocess.
Nothing else here launches a kernel: a stand-in class with __cuda_array_interface__ is enough.
"""

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from gradtensor import kernels
from gradtensor.kernels import optim_cpu as kcpu
from gradtensor.kernels import optim_cuda as kcuda

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]


class FakeCudaArray:
    """Looks like a CuPy array to the dispatch and the checks; its memory is a NumPy array's."""

    def __init__(self, a, readonly=False):
        self._a, self._readonly = a, readonly
        self.dtype, self.shape, self.flags = a.dtype, a.shape, a.flags

    @property
    def __cuda_array_interface__(self):
        info = self._a.__array_interface__
        data = (info["data"][0], self._readonly)
        return dict(info, data=data, version=3)


def _fake(shape=(4, 5), dtype=np.float32, **kw):
    return FakeCudaArray(np.zeros(shape, dtype), **kw)


@pytest.mark.parametrize("fn", ["sgd_update", "adam_update", "rmsprop_update"])
def test_cuda_arrays_dispatch_to_optim_cuda_and_numpy_to_optim_cpu(fn):
    assert kernels._optim(fn, _fake()) is getattr(kcuda, fn)
    assert kernels._optim(fn, np.zeros(3, np.float32)) is getattr(kcpu, fn)
    with pytest.raises(ValueError, match=f"{fn}: param must be a NumPy array or a CUDA array"):
        kernels._optim(fn, [1.0, 2.0])


def test_update_accepts_cuda_arrays_of_one_float_dtype_shape_and_layout():
    assert kernels.update_accepts([_fake(), _fake(), None, _fake()])
    assert kernels.update_accepts([_fake(dtype=np.float64), _fake(dtype=np.float64)])
    assert not kernels.update_accepts([_fake(dtype=np.float16), _fake(dtype=np.float16)])
    assert not kernels.update_accepts([_fake(), _fake(dtype=np.float64)])
    assert not kernels.update_accepts([_fake(), _fake((5, 4))])
    assert not kernels.update_accepts([_fake(), FakeCudaArray(np.zeros((5, 4), np.float32).T)])
    # One kind of memory per update: a host array next to CUDA arrays goes to the array path.
    assert not kernels.update_accepts([_fake(), np.zeros((4, 5), np.float32)])
    assert not kernels.update_accepts([np.zeros((4, 5), np.float32), _fake()])
    assert kernels.update_accepts([np.zeros((4, 5), np.float32), np.zeros((4, 5), np.float32)])


@pytest.mark.parametrize(
    "arrays, match",
    [
        ((np.ones(3, np.float32), None), r"param must be a float32 or float64 CUDA \(CuPy\) array"),
        ((_fake(dtype=np.int32), None), "param must be a float32 or float64 .* got int32"),
        ((_fake(), _fake(dtype=np.float64)), "grad must be a CUDA .* array like param"),
        ((_fake(), _fake((5, 4))), r"grad .* shape \(4, 5\)"),
        ((_fake(), np.ones((4, 5), np.float32)), "grad must be a CUDA"),
        (
            (_fake(), FakeCudaArray(np.zeros((5, 4), np.float32).T)),
            "grad must be C-contiguous",
        ),
        ((_fake(readonly=True), _fake()), "param must be C-contiguous and writeable"),
    ],
)
def test_optim_cuda_refuses_bad_arrays_by_name_before_any_launch(arrays, match):
    p, g = arrays
    g = _fake() if g is None else g
    with pytest.raises(ValueError, match=match):
        kcuda.sgd_update(p, g, None, lr=0.1)


@pytest.mark.slow
def test_optim_cuda_kernels_in_simulator():
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="1")
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:randomly"]
    cmd.append(str(HERE / "sim_optim_cuda.py"))
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    output = done.stdout + done.stderr
    assert done.returncode == 0, f"simulator suite failed:\n{output[-20000:]}"
    passed = re.search(r"(\d+) passed", output)
    assert passed and int(passed.group(1)) > 150, f"simulator suite ran too few tests:\n{output}"
    assert "skipped" not in output, f"simulator suite skipped tests:\n{output}"
