"""gradtensor.distributed, DistributedDataParallel and DistributedSampler.

The multi-process tests start real jobs with mpiexec (tests/_ddp_worker.py holds what each rank
runs), a few launches that each check many things; the rest runs in this process.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import gradtensor as gt
import gradtensor.distributed as dist
from gradtensor import nn
from gradtensor.autograd import engine
from gradtensor.data import DataLoader, DistributedSampler
from gradtensor.distributed import launch

WORKER = Path(__file__).with_name("_ddp_worker.py")
MPIEXEC = launch.find_mpiexec()
needs_mpi = pytest.mark.skipif(
    importlib.util.find_spec("mpi4py") is None or MPIEXEC is None,
    reason="needs mpi4py and mpiexec (pip install gradtensor[mpi])",
)


def run_job(n: int, *args: str, timeout: float = 60) -> tuple[subprocess.CompletedProcess, float]:
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
    start = time.monotonic()
    proc = subprocess.run(
        [MPIEXEC, "-n", str(n), sys.executable, str(WORKER), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )
    return proc, time.monotonic() - start


# -- several processes ---------------------------------------------------------------------------


@needs_mpi
@pytest.mark.parametrize("world", [2, 3])
def test_data_parallel_matches_one_process(world, tmp_path):
    path = tmp_path / "checkpoint.gt"
    proc, _ = run_job(world, "main", str(path))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    results = [json.loads(Path(f"{path}.rank{r}.json").read_text()) for r in range(world)]
    assert [r["rank"] for r in results] == list(range(world)), proc.stdout + proc.stderr
    for r in results:
        rank = r["rank"]
        # Collectives, in place, on Tensors and arrays.
        assert r["sum"] == [world * (world + 1) / 2, 2.0 * world]
        assert r["mean"] == [(world + 1) / 2]
        mine = np.arange(6).reshape(2, 3) * (rank + 1)
        mine[:, ::2] = np.arange(6).reshape(2, 3)[:, ::2] * world
        assert r["max"] == mine.tolist()
        assert r["broadcast"] == [world - 1.0] * 3
        assert r["all_gather"] == [[i, 10 * i] for i in range(world)]
        assert r["reduce_scatter"] == [sum(rank * 10 + i for i in range(world))] * 2
        assert r["async_done"] is True
        # Errors that name the function and what was wrong.
        errors = r["errors"]
        assert errors["op"].startswith("ValueError: all_reduce: op must be one of") and (
            "'median'" in errors["op"]
        )
        assert "all_reduce: op 'mean' needs a floating-point array" in errors["mean_int"]
        assert f"broadcast: src must be a rank in 0 .. {world - 1}" in errors["src"]
        assert "all_gather: tensor_list[0] is a host float32 array" in errors["gather_dtype"]
        assert f"one tensor per rank ({world}), got 1" in errors["gather_len"]
        assert "all_reduce: tensor must be a Tensor or an array, not a list" in errors["not_tensor"]
        assert "already initialized" in errors["init_twice"]
        # DistributedDataParallel: rank 0's start everywhere, the full batch's gradients after
        # one step, the single process's parameters after 50, on every rank alike.
        assert r["state_keys"] == ["module.layers.0.weight", "module.layers.0.bias"]
        assert r["same_start"] == 0.0
        assert r["grad_diff"] < 1e-10
        assert r["ranks_differ"] == 0.0
        assert r["param_diff"] < 1e-8
        # Buckets start from inside backward, before its last derivative has run.
        assert r["buckets"] == 6
        events = r["events"]
        assert events.count("bucket launch") == 6
        assert events.index("bucket launch") < events.index("last derivative")
        assert events[-1] == "backward returned"
        # no_sync: nothing sent, and the accumulated gradients are the larger batch's.
        assert r["no_sync_calls"] == 0
        assert r["no_sync_diff"] < 1e-10
        assert r["checkpoint_diff"] == 0.0
        # gt.compile replays DDP steps (recorded twice, then replayed) with eager's numbers.
        assert r["compiled_diff"] == 0.0 and r["compiled_traces"] == 2
    assert path.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".gtsave-tmp")]


@needs_mpi
def test_a_failing_rank_ends_the_job_with_its_error():
    proc, seconds = run_job(2, "fail", timeout=60)
    assert proc.returncode != 0
    out = proc.stdout + proc.stderr
    assert "rank 1 failed" in out and "ValueError: rank one fails on purpose" in out, out
    assert seconds < 20  # rank 0 waits in a barrier with a 300 s timeout: it was aborted


@needs_mpi
def test_a_collective_that_nobody_joins_times_out_naming_it():
    proc, seconds = run_job(2, "timeout", timeout=60)
    assert proc.returncode != 0
    out = proc.stdout + proc.stderr
    assert "all_reduce: rank 0 of 2 waited 1 s for the other ranks" in out, out
    assert "float64 array of shape (3, 4)" in out and "init_process_group(timeout=...)" in out
    assert seconds < 30  # rank 1 sleeps 60 s: the abort ended it


def test_launcher_builds_the_mpiexec_command(monkeypatch):
    monkeypatch.setattr(launch, "find_mpiexec", lambda: "/opt/mpi/bin/mpiexec")
    cmd = launch.command(["-n", "4", "--hostfile", "hosts", "train.py", "--epochs", "3"])
    assert cmd == [
        "/opt/mpi/bin/mpiexec",
        *["-n", "4", "--hostfile", "hosts"],
        sys.executable,
        *["train.py", "--epochs", "3"],
    ]
    with pytest.raises(SystemExit, match="usage"):
        launch.command(["-n", "2"])
    monkeypatch.setattr(launch, "find_mpiexec", lambda: None)
    with pytest.raises(SystemExit, match=r"gradtensor\[mpi\]"):
        launch.command(["-n", "2", "train.py"])


# -- one process -----------------------------------------------------------------------------


def test_importing_gradtensor_does_not_import_mpi4py():
    code = "import sys, gradtensor, gradtensor.distributed, gradtensor.nn.parallel; "
    code += "print('mpi4py' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize(
    "call",
    [
        lambda: dist.all_reduce(np.ones(2)),
        lambda: dist.broadcast(np.ones(2), 0),
        lambda: dist.all_gather([np.ones(2)], np.ones(2)),
        lambda: dist.reduce_scatter(np.ones(2), [np.ones(2)]),
        dist.barrier,
        dist.get_rank,
        dist.get_world_size,
        lambda: nn.parallel.DistributedDataParallel(nn.Linear(2, 2)),
    ],
)
def test_before_init_process_group_the_error_names_the_function(call):
    assert not dist.is_initialized()
    with pytest.raises(RuntimeError, match=r"^\w+: the default process group is not initialized"):
        call()


def test_init_process_group_checks_its_arguments():
    with pytest.raises(ValueError, match='init_process_group: backend must be "mpi", "nccl"'):
        dist.init_process_group("gloo")
    with pytest.raises(ValueError, match="timeout must be a positive number of seconds"):
        dist.init_process_group("mpi", timeout=0)
    assert not dist.is_initialized()


@pytest.mark.parametrize("n, world", [(10, 3), (12, 4), (7, 2), (2, 3), (0, 2), (5, 1)])
@pytest.mark.parametrize("shuffle", [False, True])
def test_distributed_sampler_covers_the_data_once_per_epoch(n, world, shuffle):
    samplers = [DistributedSampler(n, world, r, shuffle=shuffle, seed=3) for r in range(world)]
    per_rank = -(-n // world)
    for epoch in range(3):
        shards = []
        for s in samplers:
            s.set_epoch(epoch)
            shards.append(list(s))
        assert all(len(sh) == per_rank == len(s) for sh, s in zip(shards, samplers))
        together = [i for sh in shards for i in sh]
        assert sorted(set(together)) == list(range(n))  # every sample, somewhere
        assert len(together) - n == per_rank * world - n  # padding: only what evens shards out
        if n >= world:
            # Disjoint but for the padding, which repeats the order's first samples.
            order = [sh[k] for k in range(per_rank) for sh in shards]
            assert order[n:] == order[: len(order) - n]
            assert sorted(order[:n]) == list(range(n))
    if shuffle and n > 2:
        s = samplers[0]
        s.set_epoch(0)
        first = list(s)
        s.set_epoch(1)
        assert list(s) != first or len(first) < 2
        s.set_epoch(0)
        assert list(s) == first  # seed + epoch fixes the order on every rank


def test_distributed_sampler_drop_last_leaves_the_uneven_tail_out():
    shards = [list(DistributedSampler(10, 3, r, shuffle=False, drop_last=True)) for r in range(3)]
    assert shards == [[0, 3, 6], [1, 4, 7], [2, 5, 8]]
    padded = [list(DistributedSampler(10, 3, r, shuffle=False)) for r in range(3)]
    assert padded == [[0, 3, 6, 9], [1, 4, 7, 0], [2, 5, 8, 1]]  # as PyTorch pads


def test_distributed_sampler_errors():
    with pytest.raises(ValueError, match=r"DistributedSampler: rank must be in 0 \.\. 1, got 2"):
        DistributedSampler(10, 2, 2)
    with pytest.raises(ValueError, match="num_replicas must be >= 1"):
        DistributedSampler(10, 0, 0)
    with pytest.raises(RuntimeError, match="pass num_replicas and rank, or call"):
        DistributedSampler(10)
    with pytest.raises(TypeError, match="dataset must have a length"):
        DistributedSampler(object(), 2, 0)


def test_data_loader_takes_a_sampler():
    X = np.arange(20, dtype=np.float64).reshape(10, 2)
    y = np.arange(10)
    sampler = DistributedSampler(10, 3, 1, shuffle=True, seed=0)
    loader = DataLoader(X, y, batch_size=3, sampler=sampler)
    assert len(loader) == 2  # 4 samples on this rank
    for epoch in range(2):
        sampler.set_epoch(epoch)
        ys = [int(v) for _, yb in loader for v in yb.tolist()]
        assert ys == list(sampler)
    xb, yb = next(iter(loader))
    assert np.array_equal(xb.numpy(), X[yb.numpy()])
    with pytest.raises(ValueError, match="sampler and shuffle=True cannot be used together"):
        DataLoader(X, y, shuffle=True, sampler=sampler)
    with pytest.raises(IndexError, match="the sampler gave index 10"):
        list(DataLoader(X, y, sampler=[0, 10]))


def test_post_accumulate_grad_hooks_fire_once_the_gradient_is_whole():
    # w is used twice, far apart in the graph: its hook must wait for both contributions,
    # while b's fires as soon as the last op that uses it has run.
    w = gt.tensor([1.0, 2.0], requires_grad=True)
    b = gt.tensor([3.0, 4.0], requires_grad=True)
    seen = []
    engine.register_post_accumulate_grad_hook(w, lambda t: seen.append(("w", t.grad.tolist())))
    engine.register_post_accumulate_grad_hook(b, lambda t: seen.append(("b", t.grad.tolist())))
    h = (w * 2).tanh()  # made first: its derivative runs last
    marker = h * 1.0
    marker.register_hook(lambda g: seen.append("before w's first use"))
    ((marker + b) * w).sum().backward()
    assert [s if isinstance(s, str) else s[0] for s in seen] == ["b", "before w's first use", "w"]
    t = np.tanh(2 * w.data)
    assert np.allclose(seen[-1][1], t + b.data + w.data * 2 * (1 - t * t))  # both contributions
    assert seen[0][1] == w.data.tolist()


def test_queue_callback_runs_after_backward():
    x = gt.tensor([1.0, 2.0], requires_grad=True)
    y = x * 3
    calls = []
    y.register_hook(lambda g: engine.queue_callback(lambda: calls.append(x.grad.tolist())))
    y.sum().backward()
    assert calls == [[3.0, 3.0]]  # ran once, after the gradient reached x
    with pytest.raises(RuntimeError, match="queue_callback: no backward is in progress"):
        engine.queue_callback(lambda: None)


class _FakeNccl:
    """cupy.cuda.nccl's constants, and a communicator that records its calls (no GPUs talk)."""

    NCCL_SUM, NCCL_PROD, NCCL_MAX, NCCL_MIN = range(4)
    NCCL_INT8, NCCL_UINT8, NCCL_INT32, NCCL_UINT32 = range(10, 14)
    NCCL_INT64, NCCL_UINT64, NCCL_FLOAT16, NCCL_FLOAT32, NCCL_FLOAT64 = range(14, 19)

    def __init__(self):
        self.calls = []

    def __getattr__(self, name):  # allReduce, bcast, allGather, reduceScatter
        return lambda *args: self.calls.append((name, *args))


@pytest.mark.cuda
def test_gpu_arrays_go_to_nccl_with_count_dtype_and_op(monkeypatch):
    import cupy

    from gradtensor.distributed import _nccl

    nccl = _FakeNccl()
    mpi = type("MPI", (), {"SUM": "mpi-sum"})
    comm = type("Comm", (), {"Get_rank": lambda self: 0, "Get_size": lambda self: 2})()
    g = dist._Group(comm, mpi, "nccl", 5.0)
    g.nccl = _nccl.Communicator(g, cupy, nccl, nccl)
    monkeypatch.setattr(dist, "_group", g)
    a = cupy.ones((2, 3), dtype=cupy.float32) * 4
    dist.all_reduce(a, op="mean")  # NCCL sums; the mean divides by the world size after
    name, send, recv, count, dtype, op, stream = nccl.calls[-1]
    assert (name, send, recv, count) == ("allReduce", a.data.ptr, a.data.ptr, 6)
    assert (dtype, op, stream) == (nccl.NCCL_FLOAT32, nccl.NCCL_SUM, g.nccl.stream.ptr)
    assert float(a.sum().get()) == 12.0
    t = gt.tensor(np.arange(3.0), dtype="float64", device="cuda")
    dist.broadcast(t, src=1)
    assert nccl.calls[-1][0] == "bcast" and nccl.calls[-1][2:5] == (3, nccl.NCCL_FLOAT64, 1)
    dist.all_reduce(cupy.ones(4, dtype=cupy.int64), op="max")
    assert nccl.calls[-1][4:6] == (nccl.NCCL_INT64, nccl.NCCL_MAX)
    with pytest.raises(TypeError, match="all_reduce: NCCL cannot communicate a complex64"):
        dist.all_reduce(cupy.ones(2, dtype=cupy.complex64))


@needs_mpi
def test_the_ddp_digits_example_reaches_the_single_process_accuracy(tmp_path):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))
    try:
        import train_digits
    finally:
        sys.path.pop(0)
    alone = train_digits.main(["--no-plot", "--no-progress", "--out-dir", str(tmp_path)])
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
    script = Path(__file__).resolve().parents[1] / "examples" / "train_digits_ddp.py"
    proc = subprocess.run([MPIEXEC, "-n", "2", sys.executable, str(script)], capture_output=True,
                          text=True, timeout=120, env=env, cwd=tmp_path)  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    final = [ln for ln in proc.stdout.splitlines() if ln.startswith("test accuracy")]
    assert len(final) == 1, proc.stdout  # rank 0 reports, once
    accuracy = float(final[0].split()[2].rstrip("%")) / 100
    assert accuracy >= 0.96 and abs(accuracy - alone["test_accuracy"]) <= 0.01, final
