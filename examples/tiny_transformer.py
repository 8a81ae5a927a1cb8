"""Train a tiny character-level transformer on a few KB of text, and print samples before and after.

    python examples/tiny_transformer.py                # about a minute on the CPU
    python examples/tiny_transformer.py --seconds 10 --seed 1

The model is the decoder-only recipe of GPT in miniature: token and position embeddings, two
pre-norm nn.TransformerEncoderLayers under a causal mask (each position sees only the past), a
final LayerNorm and a linear head predicting the next character; Adam minimises cross-entropy on
random windows of examples/data/tiny_text.txt (a short story written for this example).
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

import gradtensor as gt
import gradtensor.nn.functional as F
from gradtensor import nn, optim

TEXT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "tiny_text.txt")


class TinyTransformer(nn.Module):
    """Embeddings -> layers of causal self-attention -> LayerNorm -> next-character logits."""

    def __init__(self, vocab: int, context: int, d: int = 48, heads: int = 4, layers: int = 2):
        super().__init__()
        self.context = context
        self.tok = nn.Embedding(vocab, d)
        self.pos = nn.Parameter(gt.randn(context, d) * 0.1)
        self.blocks = nn.ModuleList(
            nn.TransformerEncoderLayer(d, heads, 4 * d, 0.0, batch_first=True, norm_first=True)
            for _ in range(layers)
        )
        self.norm = nn.LayerNorm(d)
        self.head = nn.Linear(d, vocab)

    def forward(self, idx: np.ndarray) -> gt.Tensor:
        T = idx.shape[1]
        x = self.tok(gt.tensor(idx)) + self.pos[:T]
        causal = np.triu(np.ones((T, T), bool), 1)  # True: may not attend (the future)
        for block in self.blocks:
            x = block(x, src_mask=causal, is_causal=True)
        return self.head(self.norm(x))


def sample(model: TinyTransformer, chars: list[str], start: str, n: int, rng) -> str:
    """Draw n characters one at a time from the model's predicted distribution."""
    index = {c: i for i, c in enumerate(chars)}
    idx = [index[c] for c in start]
    with gt.no_grad():
        for _ in range(n):
            logits = model(np.array([idx[-model.context :]]))[0, -1].numpy()
            p = np.exp(logits - logits.max())
            idx.append(int(rng.choice(len(chars), p=p / p.sum())))
    return "".join(chars[i] for i in idx)


def main(argv: list[str] | None = None) -> float:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=60.0, help="training time (default 60)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--context", type=int, default=32, help="characters the model sees")
    ap.add_argument("--batch", type=int, default=16)
    args = ap.parse_args(argv)
    gt.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)

    text = open(TEXT, encoding="utf-8").read()
    chars = sorted(set(text))
    data = np.array([chars.index(c) for c in text])
    model = TinyTransformer(len(chars), args.context)
    opt = optim.Adam(model.parameters(), lr=3e-3)
    n_params = sum(p.numel() for p in model.parameters())
    print(f"{len(text)} characters, vocabulary {len(chars)}, {n_params} parameters")
    model.eval()
    print("sample before:", repr(sample(model, chars, "The ", 60, rng)))
    model.train()

    T, step, start, last = args.context, 0, time.perf_counter(), None
    while True:
        starts = rng.integers(0, len(data) - T - 1, args.batch)
        x = np.stack([data[s : s + T] for s in starts])
        y = np.stack([data[s + 1 : s + T + 1] for s in starts])
        loss = F.cross_entropy(model(x).reshape(-1, len(chars)), y.reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()
        elapsed = time.perf_counter() - start
        done = elapsed >= args.seconds
        if step % 25 == 0 or done:
            last = float(loss.item())
            print(f"step {step:5d}  {elapsed:6.1f}s  loss {last:.4f}", flush=True)
        if done:
            break
        step += 1
    model.eval()
    print("sample after: ", repr(sample(model, chars, "The ", 60, rng)))
    return last


if __name__ == "__main__":
    main()
