"""Shared test settings: tests marked `cuda` run only where a CUDA GPU can be used."""

import pytest

from gradtensor import backend


def pytest_collection_modifyitems(config, items):
    cuda_tests = [item for item in items if item.get_closest_marker("cuda")]
    if not cuda_tests:
        return
    reason = backend.cuda_unavailable_reason()
    if reason is None:
        return
    skip = pytest.mark.skip(reason=f"needs a CUDA GPU: {reason}")
    for item in cuda_tests:
        item.add_marker(skip)
