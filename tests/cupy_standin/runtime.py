"""cupy.cuda.runtime: device queries; without a (pretend) GPU they raise as CuPy's do."""

from __future__ import annotations

from typing import Any

from ._core import CUDARuntimeError, _check_device, _Config, _local, _Pool

is_hip = False
streamLegacy = 1
streamPerThread = 2
_TOTAL = 16 << 30  # the pretend GPU's memory


def getDeviceCount() -> int:  # noqa: N802  (CuPy's names)
    if _Config.device_count == 0:
        raise CUDARuntimeError(100, "cudaErrorNoDevice: no CUDA-capable device is detected")
    return _Config.device_count


def getDevice() -> int:  # noqa: N802
    _check_device(_local.device)
    return _local.device


def setDevice(device: int) -> None:  # noqa: N802
    _check_device(int(device))
    _local.device = int(device)


def deviceSynchronize() -> None:  # noqa: N802
    getDevice()


def memGetInfo() -> tuple[int, int]:  # noqa: N802
    getDevice()
    return _TOTAL - _Pool.used, _TOTAL


def getDeviceProperties(device: int) -> dict[str, Any]:  # noqa: N802
    _check_device(int(device))
    return {"name": b"CuPy stand-in (CPU)", "totalGlobalMem": _TOTAL, "major": 9, "minor": 0,
            "multiProcessorCount": 1}  # fmt: skip


def runtimeGetVersion() -> int:  # noqa: N802
    return 12080


def driverGetVersion() -> int:  # noqa: N802
    return 12080


__all__ = ["CUDARuntimeError"]
