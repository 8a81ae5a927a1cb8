"""train_digits.py on several processes: data-parallel training with DistributedDataParallel.

    mpiexec -n 2 python examples/train_digits_ddp.py
    python -m gradtensor.distributed.launch -n 2 examples/train_digits_ddp.py --epochs 10
    mpiexec -n 2 python examples/train_digits_ddp.py --checkpoint runs/digits_ddp.gt  # resumable

The same network and recipe as examples/train_digits.py (8x8 digits, 64-128-10, relu, dropout
0.2, Adam 1e-2 with cosine decay, 50 epochs), at the same global batch: each of the N processes
takes batch_size / N samples of every step from its own shard (DistributedSampler), and
DistributedDataParallel averages the gradients, so a step sees the same batch size as one
process would, and the test accuracy ends where the single-process demo's does. Only rank 0
prints and writes the checkpoint; every rank resumes from it.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Any

import numpy as np

import gradtensor as gt
import gradtensor.distributed as dist
import gradtensor.nn.functional as F
from gradtensor import nn, optim
from gradtensor.data import DataLoader, DistributedSampler, load_digits


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--epochs", type=int, default=50)
    p.add_argument("--batch-size", type=int, default=32, help="global: summed over the ranks")
    p.add_argument("--lr", type=float, default=1e-2)
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--dropout", type=float, default=0.2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--checkpoint", help="save here after every epoch, and resume from it")
    return p.parse_args(argv)


def accuracy(model: nn.Module, X: np.ndarray, y: np.ndarray) -> float:
    model.eval()
    with gt.no_grad():
        correct = sum(
            int((model(xb).argmax(axis=1) == yb).sum())
            for xb, yb in DataLoader(X, y, batch_size=1000)
        )
    model.train()
    return correct / len(y)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    dist.init_process_group()
    rank, world = dist.get_rank(), dist.get_world_size()
    if args.batch_size % world:
        raise SystemExit(f"--batch-size {args.batch_size} must be a multiple of the {world} ranks")

    X_train, y_train, X_test, y_test = load_digits()  # the same fixed split on every rank
    gt.manual_seed(args.seed)
    net = nn.MLP([X_train.shape[1], args.hidden, 10], activation="relu", dropout=args.dropout)
    model = nn.parallel.DistributedDataParallel(net)  # rank 0's weights on every rank
    gt.manual_seed(args.seed + 1 + rank)  # but each rank its own dropout masks
    opt = optim.Adam(model.parameters(), lr=args.lr)
    sched = optim.lr_scheduler.CosineAnnealingLR(opt, T_max=args.epochs)
    sampler = DistributedSampler(len(X_train), shuffle=True, seed=args.seed)
    loader = DataLoader(X_train, y_train, batch_size=args.batch_size // world, sampler=sampler)

    first = 0
    if args.checkpoint and os.path.exists(args.checkpoint):
        state = gt.load(args.checkpoint)  # every rank reads what rank 0 wrote
        net.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        first = int(state["epoch"])
    if rank == 0:
        print(
            f"digits: {len(X_train)} training images on {world} processes, "
            f"{len(loader)} steps of {args.batch_size} ({args.batch_size // world} per process) "
            f"per epoch; starting at epoch {first + 1}"
        )

    start = time.perf_counter()
    acc = accuracy(net, X_test, y_test)
    for epoch in range(first, args.epochs):
        sampler.set_epoch(epoch)
        total = np.zeros(2)  # loss sum and sample count, summed over the ranks below
        for xb, yb in loader:
            loss = F.cross_entropy(model(xb), yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += (loss.item() * len(yb), len(yb))
        sched.step()
        dist.all_reduce(total)
        acc = accuracy(net, X_test, y_test)
        if rank == 0:
            print(f"epoch {epoch + 1:3d}/{args.epochs}  loss {total[0] / total[1]:.4f}  "
                  f"test accuracy {acc:.2%}")  # fmt: skip
        if args.checkpoint:
            dist.save_checkpoint(
                {
                    "model": net.state_dict(),
                    "optimizer": opt.state_dict(),
                    "scheduler": sched.state_dict(),
                    "epoch": epoch + 1,
                },
                args.checkpoint,
            )
    seconds = time.perf_counter() - start
    if rank == 0:
        print(f"test accuracy {acc:.2%} after {args.epochs} epochs in {seconds:.1f} s")
    dist.destroy_process_group()
    return {"test_accuracy": acc, "seconds": seconds, "world_size": world}


if __name__ == "__main__":
    main(sys.argv[1:])
