"""CUDA queries (`gt.cuda.is_available()` and friends); they never raise without a GPU."""

from __future__ import annotations

from . import backend


def is_available() -> bool:
    """Whether a CUDA GPU can be used (CuPy installed, a GPU and a working driver present)."""
    return backend.cuda_unavailable_reason() is None


def unavailable_reason() -> str | None:
    """Why CUDA cannot be used here (with what to install when CuPy is missing), or None."""
    return backend.cuda_unavailable_reason()


def device_count() -> int:
    return backend.cuda_device_count()


def synchronize() -> None:
    """Wait for all queued GPU work to finish (a no-op without CUDA)."""
    if is_available():
        backend.synchronize(backend.Device("cuda"))


def manual_seed(seed: int) -> None:
    """Seed the CUDA random generator only."""
    backend.manual_seed_cuda(seed)
