"""Compile every CPU kernel into Numba's on-disk cache: `python -m gradtensor.prepare`.

Run once after installing, by whoever can write to the install (a system install, a container
image's build step): the kernels are then cached beside the package, and users who may not write
there load them from it instead of compiling their own (gradtensor.kernels._numba_cache).
"""

from __future__ import annotations

import time

import numpy as np


def main() -> None:
    from . import backend
    from .kernels import conv_cpu, cpu, loss_cpu, optim_cpu

    start = time.perf_counter()
    cpu.warmup()
    optim_cpu.warmup()
    loss_cpu.warmup()
    conv_cpu.warmup()
    for dtype in (np.float32, np.float64):
        backend.erf(np.zeros(1, dtype))
    from numba.core import config

    where = config.CACHE_DIR or "the __pycache__ folders beside gradtensor's modules"
    print(f"gradtensor: CPU kernels compiled into {where} in {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
