"""Launch geometry of kernels.cuda against CUDA's limits, for shapes far too big to launch here."""

import pytest

from gradtensor.kernels import cuda as kcuda

# CUDA: gridDim.x up to 2**31 - 1, gridDim.y and z up to 65535; at most 1024 threads a block.
GRID_LIMITS = (2**31 - 1, 65535)
KERNELS = ["epilogue_forward", "epilogue_backward", "gemm_forward", "gemm_grad_x", "gemm_grad_w"]
SHAPES = [
    (2**22, 1, 1),  # path B by default, and 2**16 row tiles of 64
    (10**9, 0, 7),  # In == 0: no multiply-adds, so path B for any batch
    (3, 0, 2**34),
    (2**40, 2**40, 2**40),
    (1, 1, 1),
    (0, 5, 0),
]


def test_geometry_is_the_gpu_one():
    assert not kcuda.SIMULATOR
    assert kcuda.MAX_GRID == GRID_LIMITS
    assert kcuda.use_path_b(2**22, 1, 1) and kcuda.use_path_b(10**9, 0, 7)


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("kernel", KERNELS)
def test_launch_sizes_respect_cuda_limits(kernel, shape):
    grid, block = kcuda.launch_sizes(kernel, *shape)
    assert len(grid) == 2 and all(isinstance(g, int) for g in grid)
    assert 1 <= grid[0] <= GRID_LIMITS[0] and 1 <= grid[1] <= GRID_LIMITS[1], grid
    assert block[0] * block[1] <= 1024 and block[0] <= 1024 and block[1] <= 1024


@pytest.mark.parametrize("kernel", ["gemm_forward", "gemm_grad_x"])
def test_grid_covers_the_rows_up_to_the_limit(kernel):
    # Below the limit a block per row tile (no striding); above it, the limit.
    (_, rows), _ = kcuda.launch_sizes(kernel, 65535 * kcuda.TILE, 3, 3)
    assert rows == 65535
    (_, rows), _ = kcuda.launch_sizes(kernel, 65536 * kcuda.TILE, 3, 3)
    assert rows == 65535
    (_, rows), _ = kcuda.launch_sizes(kernel, 100 * kcuda.TILE + 1, 3, 3)
    assert rows == 101
