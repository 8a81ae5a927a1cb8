"""What tests/test_distributed.py runs on every rank under mpiexec (not a test module itself).

    mpiexec -n 2 python tests/_ddp_worker.py main CHECKPOINT_PATH
    mpiexec -n 2 python tests/_ddp_worker.py fail
    mpiexec -n 2 python tests/_ddp_worker.py timeout

`main` checks the collectives and DistributedDataParallel against one process on the full batch
and writes its findings to CHECKPOINT_PATH.rank<r>.json; `fail` and `timeout` end in an error
on one rank.
"""

from __future__ import annotations

import json
import sys
import time

import numpy as np

import gradtensor as gt
import gradtensor.distributed as dist
import gradtensor.nn.functional as F
from gradtensor import nn, optim
from gradtensor.autograd import Function

SIZES = [5, 7, 6, 3]


def make_model() -> nn.Module:
    gt.manual_seed(0)
    return nn.MLP(SIZES, activation="tanh").to(dtype="float64")


def data(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, SIZES[0])), rng.integers(0, SIZES[-1], n)


def loss_of(model: nn.Module, X: np.ndarray, y: np.ndarray, probe: bool = False) -> gt.Tensor:
    x = gt.tensor(X, requires_grad=probe)
    if probe:
        x = Probe.apply(x)
    return F.cross_entropy(model(x), gt.tensor(y))


EVENTS: list[str] = []


class Probe(Function):
    """Identity, made before the model's ops: its derivative is the last one backward runs."""

    @staticmethod
    def forward(ctx, x):
        return x

    @staticmethod
    def backward(ctx, g):
        EVENTS.append("last derivative")
        return g


def error_of(call) -> str:
    try:
        call()
    except (ValueError, TypeError, RuntimeError) as exc:
        return f"{type(exc).__name__}: {exc}"
    return "no error"


def check_collectives(rank: int, world: int, out: dict) -> None:
    t = gt.tensor([rank + 1.0, 2.0], dtype="float64")
    dist.all_reduce(t)
    out["sum"] = t.tolist()
    a = np.array([rank + 1.0])
    dist.all_reduce(a, op=dist.ReduceOp.AVG)
    out["mean"] = a.tolist()
    m = np.arange(6, dtype=np.int64).reshape(2, 3) * (rank + 1)
    view = m[:, ::2]  # not contiguous: communicated through a copy, written back
    dist.all_reduce(view, "MAX")
    out["max"] = m.tolist()
    b = gt.tensor([float(rank)] * 3)
    dist.broadcast(b, src=world - 1)
    out["broadcast"] = b.tolist()
    gathered = [gt.zeros(2, dtype="int64") for _ in range(world)]
    dist.all_gather(gathered, gt.tensor([rank, 10 * rank]))
    out["all_gather"] = [g.tolist() for g in gathered]
    o = gt.zeros(2, dtype="float64")
    dist.reduce_scatter(
        o, [gt.full((2,), float(i * 10 + rank), dtype="float64") for i in range(world)]
    )
    out["reduce_scatter"] = o.tolist()
    w = dist.all_reduce(np.ones(4), async_op=True)
    out["async_done"] = w.wait()
    out["errors"] = {
        "op": error_of(lambda: dist.all_reduce(np.ones(2), op="median")),
        "mean_int": error_of(lambda: dist.all_reduce(np.ones(2, dtype=np.int32), op="mean")),
        "src": error_of(lambda: dist.broadcast(np.ones(2), src=world)),
        "gather_dtype": error_of(
            lambda: dist.all_gather([np.zeros(2, np.float32)] * world, np.ones(2))
        ),
        "gather_len": error_of(lambda: dist.all_gather([np.zeros(2)], np.ones(2))),
        "not_tensor": error_of(lambda: dist.all_reduce([1.0, 2.0])),
        "init_twice": error_of(dist.init_process_group),
    }


def flat_params(model: nn.Module) -> np.ndarray:
    return np.concatenate([p.data.ravel() for p in model.parameters()])


def flat_grads(model: nn.Module) -> np.ndarray:
    return np.concatenate([p.grad.data.ravel() for p in model.parameters()])


def main(path: str) -> None:
    dist.init_process_group("mpi", timeout=60)
    rank, world = dist.get_rank(), dist.get_world_size()
    out: dict = {"rank": rank, "world": world}
    check_collectives(rank, world, out)

    n = 12  # the global batch: 2 and 3 ranks each take an even share
    X, y = data(n * 50, seed=1)
    share = slice(rank * n // world, (rank + 1) * n // world)

    # One step: averaged gradients equal one process's on the whole batch.
    ref = make_model()
    if rank != 0:  # a different start, which the wrap replaces with rank 0's parameters
        gt.manual_seed(rank + 100)
        local = nn.MLP(SIZES, activation="tanh").to(dtype="float64")
    else:
        local = make_model()
    model = nn.parallel.DistributedDataParallel(local, bucket_cap_mb=1e-5)
    out["state_keys"] = list(model.state_dict())[:2]
    out["buckets"] = len(model._buckets)
    out["same_start"] = float(np.abs(flat_params(local) - flat_params(ref)).max())

    launch = dist.all_reduce

    def recording(t, *args, **kwargs):
        if kwargs.get("async_op"):
            EVENTS.append("bucket launch")
        return launch(t, *args, **kwargs)

    dist.all_reduce = recording
    loss_of(model, X[:n][share], y[:n][share], probe=True).backward()
    EVENTS.append("backward returned")
    dist.all_reduce = launch
    out["events"] = EVENTS[:]
    loss_of(ref, X[:n], y[:n]).backward()
    out["grad_diff"] = float(np.abs(flat_grads(local) - flat_grads(ref)).max())

    # 50 steps of SGD with momentum: the same parameters as one process, on every rank.
    opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    ref_opt = optim.SGD(ref.parameters(), lr=0.1, momentum=0.9)
    for step in range(50):
        xb, yb = X[step * n : (step + 1) * n], y[step * n : (step + 1) * n]
        opt.zero_grad()
        loss_of(model, xb[share], yb[share]).backward()
        opt.step()
        ref_opt.zero_grad()
        loss_of(ref, xb, yb).backward()
        ref_opt.step()
    mine = flat_params(local)
    everyone = [np.zeros_like(mine) for _ in range(world)]
    dist.all_gather(everyone, mine)
    out["ranks_differ"] = float(max(np.abs(e - mine).max() for e in everyone))
    out["param_diff"] = float(np.abs(mine - flat_params(ref)).max())

    # no_sync: two accumulated micro-batches equal one batch of both (twice its mean loss).
    calls = []

    def counting(t, *args, **kwargs):
        calls.append(1)
        return launch(t, *args, **kwargs)

    model.zero_grad()
    ref.zero_grad()
    dist.all_reduce = counting
    with model.no_sync():
        loss_of(model, X[:n][share], y[:n][share]).backward()
    out["no_sync_calls"] = len(calls)
    loss_of(model, X[n : 2 * n][share], y[n : 2 * n][share]).backward()
    dist.all_reduce = launch
    (loss_of(ref, X[: 2 * n], y[: 2 * n]) * 2).backward()
    out["no_sync_diff"] = float(np.abs(flat_grads(local) - flat_grads(ref)).max())

    # gt.compile: a recorded DDP step (its hooks, bucket launches and end-of-backward wait
    # replayed as calls) gives the eager DDP step's parameters bit for bit.
    pair = []
    for _ in range(2):
        m = nn.parallel.DistributedDataParallel(make_model(), bucket_cap_mb=1e-5)
        pair.append((m, optim.SGD(m.parameters(), lr=0.1, momentum=0.9)))

    def ddp_step(m, o, xb, yb):
        o.zero_grad()
        loss = F.cross_entropy(m(xb), yb)
        loss.backward()
        o.step()
        return loss

    compiled = gt.compile(ddp_step)
    for step in range(10):
        batch = slice(step * n, (step + 1) * n)
        xb, yb = gt.tensor(X[batch][share]), gt.tensor(y[batch][share])
        ddp_step(*pair[0], xb, yb)
        compiled(*pair[1], xb, yb)
    out["compiled_diff"] = float(
        np.abs(flat_params(pair[0][0].module) - flat_params(pair[1][0].module)).max()
    )
    out["compiled_traces"] = compiled.traces

    # A checkpoint written by rank 0 alone, read by every rank.
    dist.save_checkpoint(model.module.state_dict(), path)
    back = gt.load(path)
    out["checkpoint_diff"] = float(
        max(np.abs(back[k].data - v.data).max() for k, v in local.state_dict().items())
    )
    # A file per rank: the ranks' stdout lines may interleave.
    with open(f"{path}.rank{rank}.json", "w") as f:
        json.dump(out, f)
    dist.destroy_process_group()


def fail() -> None:
    dist.init_process_group()
    if dist.get_rank() == 1:
        raise ValueError("rank one fails on purpose")
    dist.barrier()  # waits for rank 1, which never comes: the abort must end it


def timeout() -> None:
    dist.init_process_group(timeout=1)
    if dist.get_rank() == 1:
        time.sleep(60)  # never joins; the job ends when rank 0 gives up and aborts
    dist.all_reduce(np.ones((3, 4)))


if __name__ == "__main__":
    mode = sys.argv[1]
    if mode == "main":
        main(sys.argv[2])
    elif mode == "fail":
        fail()
    else:
        timeout()
