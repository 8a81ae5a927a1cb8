"""The benchmark workloads as pytest-benchmark tests, at small sizes.

    pytest benchmarks --benchmark-only     # the timings (a few seconds per library)
    pytest benchmarks                      # and the harness's own tests

Not part of the default `pytest` run (testpaths is tests/). Each timed implementation is first
checked against gradtensor on the same inputs, as in `python -m benchmarks`; a library that is
not installed is skipped with the reason.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from benchmarks import references as R
from benchmarks import suites as S

KEYS = list(R.LIBRARIES)
_libs: dict[str, object] = {}


def lib(key: str):
    if key not in _libs:
        libs, skipped = R.load([key], "cpu")
        _libs[key] = next(iter(libs.values())) if libs else R.Skip(skipped[key])
    if isinstance(_libs[key], R.Skip):
        pytest.skip(str(_libs[key]))
    return _libs[key]


def timed(benchmark, group: str, key: str, build, names: list[str]) -> None:
    impl = build(lib(key))
    if key != "gradtensor":
        R.compare(impl.result(), build(lib("gradtensor")).result(), names=names)
    benchmark.group = group
    benchmark.pedantic(impl.step, rounds=7, iterations=1, warmup_rounds=2)


@pytest.mark.parametrize("key", [k for k in KEYS if k != "gradtensor-nokernels"])
def test_overhead_chain(benchmark, key):
    x0 = np.random.default_rng(0).standard_normal(8).astype(np.float32)
    timed(benchmark, "overhead: 151-op chain", key, lambda lib: lib.chain(x0), ["grad x"])


@pytest.mark.parametrize("act", ["relu", "gelu"])
@pytest.mark.parametrize("key", KEYS)
def test_linear(benchmark, key, act):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((128, 256), np.float32)
    w = (rng.standard_normal((128, 256)) / 16).astype(np.float32)
    b = rng.standard_normal(128, np.float32)
    gy = rng.standard_normal((128, 128), np.float32)
    timed(
        benchmark,
        f"linear 128x256x128 {act}",
        key,
        lambda lib: lib.linear(x, w, b, gy, act),
        ["grad x", "grad W", "grad b"],
    )


@pytest.mark.parametrize("batch", [32, 128])
@pytest.mark.parametrize("key", KEYS)
def test_mlp_step(benchmark, key, batch):
    sizes = [784, 128, 128, 10]
    params, x, t = S.mlp_inputs(sizes, batch)
    timed(
        benchmark,
        f"mlp step {S.mlp_name(sizes, batch)}",
        key,
        lambda lib: lib.mlp(params, x, t, S.LR),
        S.mlp_names(sizes),
    )


# -- the harness itself (run by `pytest benchmarks`, skipped by --benchmark-only) --------------


def test_compare_rejects_a_wrong_gradient():
    params, x, t = S.mlp_inputs([20, 8, 3], 5)
    ref = lib("gradtensor").mlp(params, x, t, S.LR).result()
    loss, grads = lib("numpy").mlp(params, x, t, S.LR).result()
    R.compare((loss, grads), ref)
    bad = [g.copy() for g in grads]
    bad[2][0, 0] += 1e-2 * np.abs(bad[2]).max()
    with pytest.raises(AssertionError, match="grad\\[2\\] differs"):
        R.compare((loss, bad), ref)
    with pytest.raises(AssertionError, match="value differs"):
        R.compare((loss * 1.01, grads), ref)
    with pytest.raises(AssertionError, match="gradients"):
        R.compare((loss, grads[:-1]), ref)


def test_a_mismatch_drops_the_row_not_the_run(capsys):
    gt = lib("gradtensor")

    class Wrong:
        key = "numpy"

        def chain(self, x0):
            impl = gt.chain(x0)
            value, grads = impl.result()
            return R.Impl(impl.step, lambda: (value, [2 * g for g in grads]))

    ctx = S.Context(libs={"gradtensor": gt, "numpy": Wrong()}, quick=True)
    x0 = np.ones(4, np.float32)
    case = S.run_case(ctx, "[t]", "chain", {}, lambda lib: lib.chain(x0), ["grad x"], 1.0)
    assert list(case["results"]) == ["gradtensor"]
    assert case["errors"]["numpy"].startswith("mismatch: grad x differs")
    assert "DROPPED" in capsys.readouterr().out


def test_cli_quick_overhead_writes_a_run(tmp_path):
    from benchmarks.__main__ import main
    from benchmarks.report import build

    out = tmp_path / "results" / "2000-01-01-test.json"
    assert main(["--quick", "--suite", "overhead", "--libs", "numpy", "--out", str(out)]) == 0
    run = json.loads(out.read_text())
    case = run["suites"]["overhead"]["cases"][0]
    assert {"gradtensor", "numpy"} <= set(case["results"])
    assert all(math.isfinite(r["median_s"]) for r in case["results"].values())
    text = build(True, out.parent, tmp_path / "RESULTS.md", tmp_path / "figures")
    assert "Per-op overhead" in text and "No GPU results yet" in text


def test_cuda_without_a_gpu_says_why(capsys):
    import gradtensor as gt
    from benchmarks.__main__ import main

    reason = gt.backend.cuda_unavailable_reason()
    if reason is None:
        pytest.skip("a GPU is present")
    assert main(["--device", "cuda", "--quick", "--no-save"]) == 0
    assert f"needs a CUDA GPU: {reason}" in capsys.readouterr().out


def test_memory_probe_measures_a_step():
    out = S._probe(S.Context(libs={}), "numpy", [784, 256, 10], 64)  # in a process of its own
    assert out["param_bytes"] == 4 * (784 * 256 + 256 + 256 * 10 + 10)
    # at least its copy of the weights and the hidden activations
    assert out["peak_bytes"] > out["param_bytes"] + 64 * 256 * 4
    assert out["traced_peak_bytes"] > out["param_bytes"] + 64 * 256 * 4


def test_batches_are_drawn_clear_of_the_relu_kink():
    sizes = [784, 256, 256, 10]
    params, x, _ = S.mlp_inputs(sizes, 512)
    h = x.astype(np.float64)
    for w, b in params[:-1]:
        z = h @ w.T.astype(np.float64) + b
        assert np.abs(z).min() >= S.KINK_CLEARANCE * z.std() * 0.99
        h = np.maximum(z, 0)


def test_gpu_targets_judge_the_path_linear_takes():
    from benchmarks.bench_linear_act import gpu_targets

    def row(shape, b_chosen, **times):
        return {
            "shape": list(shape),
            "activation": "relu",
            "path_b_chosen_by_default": b_chosen,
            "times": {k: {"median_s": v} for k, v in times.items()},
        }

    rows = [
        row((64, 64, 64), True, path_a=9.0, path_b=1.0, torch=2.0),  # small: B runs, 2x faster
        row((4096, 4096, 2048), False, path_a=1.05, path_b=3.0, torch=1.0, gemms=1.0),
    ]
    got = {
        (tuple(t["shape"]), t["target"]): (round(t["ratio"], 3), t["met"])
        for t in gpu_targets(rows)
    }
    assert got == {
        ((64, 64, 64), "no slower than PyTorch eager"): (0.5, True),
        ((64, 64, 64), "1.3x faster than PyTorch (memory/launch-bound)"): (0.5, True),
        ((4096, 4096, 2048), "no slower than PyTorch eager"): (1.05, False),
        ((4096, 4096, 2048), "within 10% of the three GEMMs alone"): (1.05, True),
    }
