"""Train a small network to read handwritten digits, and print its test accuracy.

    python examples/train_digits.py                       # scikit-learn's 8x8 digits, 64-128-10
    python examples/train_digits.py --mnist ~/data/mnist  # real MNIST: the classic 784-16-16-10
    python examples/train_digits.py --mnist ~/data/mnist --hidden 100,100 --activation relu

The recipe is the "improved" one of the classic digit recogniser: softmax cross-entropy loss,
initial weights scaled by 1/sqrt(fan_in) (nn.Linear's default), mini-batches, and optionally L2
weight decay (--weight-decay) and dropout (--dropout). The training curve is saved as a PNG in
runs/ (or --out-dir, or the path --plot names) when matplotlib is installed, and a progress bar
is shown when tqdm is.

Source: the network and both recipes follow Michael Nielsen, "Neural Networks and Deep Learning"
(chapter 1, and chapter 3's improvements); the 8x8 digits are the UCI optical recognition of
handwritten digits set, as scikit-learn ships it.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Any

import numpy as np

import gradtensor as gt
import gradtensor.nn.functional as F
from gradtensor import nn, optim
from gradtensor.data import DataLoader, load_digits, load_mnist


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--mnist",
        metavar="PATH",
        help="folder with the four MNIST IDX files "
        "(train-images-idx3-ubyte[.gz] ...); default: the bundled 8x8 digits",
    )
    p.add_argument(
        "--hidden",
        help="hidden layer sizes, comma-separated (default 128 for digits, 16,16 for MNIST)",
    )
    p.add_argument(
        "--activation",
        choices=list(F.ACTIVATIONS),
        help="hidden activation (default relu for digits, sigmoid for MNIST)",
    )
    p.add_argument("--epochs", type=int, help="default 50 for digits, 10 for MNIST")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--optimizer", choices=["adam", "sgd"], default="adam")
    p.add_argument(
        "--lr", type=float, help="default for Adam 1e-2 (digits) or 1e-3 (MNIST); for SGD 0.1"
    )
    p.add_argument(
        "--schedule",
        choices=["cosine", "constant"],
        default="cosine",
        help="learning rate over the epochs (default: cosine decay to 0)",
    )
    p.add_argument("--weight-decay", type=float, default=0.0, help="L2 penalty (default 0)")
    p.add_argument(
        "--dropout",
        type=float,
        help="after each hidden layer (default 0.2 for digits, 0 for MNIST)",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu", help="cpu, or cuda when CuPy and a GPU are present")
    p.add_argument("--out-dir", default="runs", help="folder for the outputs (default runs/)")
    p.add_argument(
        "--plot",
        help="where to save the training curve (PNG); default digits_curve.png or "
        "mnist_curve.png in --out-dir",
    )
    p.add_argument("--no-plot", action="store_true", help="do not save a plot")
    p.add_argument("--no-progress", action="store_true", help="plain lines, no progress bars")
    p.add_argument("--compile", action="store_true", help="run the training step under gt.compile")
    return p.parse_args(argv)


def accuracy(model: nn.Module, X: np.ndarray, y: np.ndarray, device: Any) -> float:
    """Fraction of X classified as y (in evaluation mode: dropout off)."""
    model.eval()
    correct = 0
    with gt.no_grad():
        for xb, yb in DataLoader(X, y, batch_size=1000, device=device):
            correct += int((model(xb).argmax(axis=1) == yb).sum())
    model.train()
    return correct / len(y)


def _progress(loader: DataLoader, desc: str, enabled: bool) -> Any:
    if enabled:
        try:
            from tqdm import tqdm

            return tqdm(loader, desc=desc, leave=False, dynamic_ncols=True)
        except ImportError:
            pass
    return loader


def _save_plot(path: str, losses: list[float], accs: list[float], title: str) -> str | None:
    try:
        import matplotlib

        matplotlib.use("Agg")  # files only: works without a display
        import matplotlib.pyplot as plt
    except ImportError:
        print("(matplotlib is not installed, so no plot was saved: pip install matplotlib)")
        return None
    epochs = range(1, len(losses) + 1)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 3.5))
    ax1.plot(epochs, losses, marker="o")
    ax1.set(xlabel="epoch", ylabel="mean training loss", title="training loss")
    ax2.plot(epochs, [100 * a for a in accs], marker="o", color="tab:green")
    ax2.set(xlabel="epoch", ylabel="test accuracy (%)", title="test accuracy")
    fig.suptitle(title)
    fig.tight_layout()
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Train and evaluate; returns the final test accuracy, the curves and the time taken."""
    args = parse_args(argv)
    mnist = args.mnist is not None
    name = "mnist" if mnist else "digits"
    hidden = args.hidden or ("16,16" if mnist else "128")
    activation = args.activation or ("sigmoid" if mnist else "relu")
    epochs = args.epochs if args.epochs is not None else (10 if mnist else 50)
    dropout = args.dropout if args.dropout is not None else (0.0 if mnist else 0.2)
    lr = args.lr
    if lr is None:
        lr = 0.1 if args.optimizer == "sgd" else (1e-3 if mnist else 1e-2)

    gt.manual_seed(args.seed)
    if mnist:
        X_train, y_train, X_test, y_test = load_mnist(os.path.expanduser(args.mnist))
    else:
        X_train, y_train, X_test, y_test = load_digits()  # the fixed split
    sizes = [X_train.shape[1], *(int(h) for h in hidden.split(",") if h), 10]
    model = nn.MLP(sizes, activation=activation, dropout=dropout).to(args.device)
    if args.optimizer == "adam":
        opt = optim.Adam(model.parameters(), lr=lr, weight_decay=args.weight_decay)
    else:
        opt = optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=args.weight_decay)
    sched = (
        optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs)
        if args.schedule == "cosine"
        else None
    )
    loader = DataLoader(
        X_train,
        y_train,
        batch_size=args.batch_size,
        shuffle=True,
        seed=args.seed,
        device=args.device,
    )
    arch = "-".join(map(str, sizes))
    print(
        f"{name}: {len(X_train)} training and {len(X_test)} test images; network {arch} "
        f"({activation}), {sum(p.numel() for p in model.parameters())} parameters, "
        f"{args.optimizer} lr={lr}"
    )

    losses, accs = [], []
    start = time.perf_counter()

    def train_step(xb: Any, yb: Any) -> Any:
        loss = F.cross_entropy(model(xb), yb)
        opt.zero_grad()
        loss.backward()
        opt.step()
        return loss

    # --compile: the step recorded at its first call and replayed on arrays after
    step = gt.compile(train_step) if args.compile else train_step
    for epoch in range(1, epochs + 1):
        total, count = 0.0, 0
        batches = _progress(loader, f"epoch {epoch}/{epochs}", not args.no_progress)
        for xb, yb in batches:
            loss = step(xb, yb)
            total += loss.item() * len(yb)
            count += len(yb)
            if batches is not loader:
                batches.set_postfix(loss=f"{loss.item():.4f}", refresh=False)
        if sched is not None:
            sched.step()
        losses.append(total / count)
        accs.append(accuracy(model, X_test, y_test, args.device))
        print(f"epoch {epoch:3d}/{epochs}  loss {losses[-1]:.4f}  test accuracy {accs[-1]:.2%}")
    seconds = time.perf_counter() - start

    print(
        f"test accuracy {accs[-1]:.2%} ({round(accs[-1] * len(y_test))}/{len(y_test)}) "
        f"after {epochs} epochs in {seconds:.1f} s"
    )
    plot = None
    if not args.no_plot:
        path = args.plot or os.path.join(args.out_dir, f"{name}_curve.png")
        plot = _save_plot(path, losses, accs, f"{name}: {arch}")
        if plot:
            print(f"training curve saved to {plot}")
    return {
        "dataset": name,
        "sizes": sizes,
        "epochs": epochs,
        "test_accuracy": accs[-1],
        "test_accuracy_curve": accs,
        "train_loss": losses,
        "seconds": seconds,
        "plot": plot,
    }


if __name__ == "__main__":
    main(sys.argv[1:])
