"""Shared test settings: tests marked `cuda` run only where a CUDA GPU can be used.

Where no real CuPy is installed (or GRADTENSOR_CUPY_STANDIN=1), the strict CuPy stand-in of
tests/cupy_standin/ is installed as `cupy` before gradtensor is imported. It shows one GPU to
`cuda` tests only, which then run on the CPU through it; every other test sees CuPy without a
usable GPU. Fused kernels are off in `cuda` tests on the stand-in: Numba-CUDA needs a real driver.
"""

import importlib.util
import os

import pytest

if os.environ.get("GRADTENSOR_CUPY_STANDIN") == "1" or importlib.util.find_spec("cupy") is None:
    import cupy_standin

    cupy_standin.install()
    cupy_standin.set_device_count(0)  # no GPU outside `cuda` tests (see _cupy_standin_gpu)
else:
    cupy_standin = None

import gradtensor as gt  # noqa: E402  (after the stand-in, so that gradtensor sees it)
from gradtensor import backend  # noqa: E402


def pytest_collection_modifyitems(config, items):
    cuda_tests = [item for item in items if item.get_closest_marker("cuda")]
    if not cuda_tests or cupy_standin is not None:
        return
    reason = backend.cuda_unavailable_reason()
    if reason is None:
        return
    skip = pytest.mark.skip(reason=f"needs a CUDA GPU: {reason}")
    for item in cuda_tests:
        item.add_marker(skip)


@pytest.fixture(autouse=True)
def _cupy_standin_gpu(request):
    """On the stand-in, a `cuda` test gets one GPU, a fresh sync count and the plain array path."""
    if cupy_standin is None or request.node.get_closest_marker("cuda") is None:
        yield
        return
    cupy_standin.set_device_count(1)
    cupy_standin.reset_sync_count()
    try:
        with gt.use_kernels(False):
            yield
    finally:
        cupy_standin.set_device_count(0)
