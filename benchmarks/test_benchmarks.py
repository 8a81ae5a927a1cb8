"""The workloads as pytest-benchmark tests at small sizes (`pytest benchmarks --benchmark-only`),
each implementation checked against gradtensor first; and the harness's own tests."""

import json

import numpy as np
import pytest

from benchmarks import impls as I
from benchmarks import suites as S

KEYS = [k for k, (_, _, device) in I.LIBRARIES.items() if device in (None, "cpu")]
SIZES, _x = [784, 128, 128, 10], np.random.default_rng(0).standard_normal(8).astype(np.float32)
_cnn = S.cnn_inputs(*S.CNNS["quick"][0])  # params, x, t, pools
WORKLOADS = {  # the group -> the adapters' method, its arguments, the gradients' names
    "overhead: 151-op chain": ("chain", (_x,), ["grad x"]),
    **{f"linear 128x256x128 {act}": ("linear", (*S.linear_inputs((128, 256, 128), 1), act),
                                     ["grad x", "grad W", "grad b"]) for act in ("relu", "gelu")},
    **{f"mlp step {S.mlp_name(SIZES, b)}": ("mlp", (*S.mlp_inputs(SIZES, b), S.LR),
                                            S.mlp_names(SIZES)) for b in (32, 128)},
    **{f"conv {shape}": ("conv", S.conv_inputs(shape, 2), ["grad x", "grad W", "grad b"])
       for shape in [(8, 1, 6, 5, 16, 0), (4, 16, 16, 3, 12, 1)]},
    "cnn step": ("cnn", (*_cnn[:3], S.LR, _cnn[3]), [f"{p}{i}" for i in range(1, 6) for p in "Wb"]),
}  # fmt: skip
_libs: dict = {}


def lib(key: str):
    if key not in _libs:
        libs, skipped = I.load([key], "cpu")
        _libs[key] = libs.get(key) or I.Skip(skipped[key])
    if isinstance(_libs[key], I.Skip):
        pytest.skip(str(_libs[key]))
    return _libs[key]


@pytest.mark.parametrize("key", KEYS)
@pytest.mark.parametrize("group", WORKLOADS)
def test_workload(benchmark, group, key):
    workload, args, names = WORKLOADS[group]
    if (workload, key) == ("chain", "gradtensor-nokernels"):
        pytest.skip("the chain has no linear layer: no kernels to turn off")
    try:
        impl = getattr(lib(key), workload)(*args)
    except I.Skip as exc:  # a workload this implementation does not do (the kernels' MLP)
        pytest.skip(str(exc))
    I.compare(impl.result(), getattr(lib("gradtensor"), workload)(*args).result(), names)
    benchmark.group = group
    benchmark.pedantic(impl.step, rounds=7, iterations=1, warmup_rounds=2)


def test_compare_rejects_a_wrong_gradient():
    (params, x, t), names = S.mlp_inputs([20, 8, 3], 5), S.mlp_names([20, 8, 3])
    ref = lib("gradtensor").mlp(params, x, t, S.LR).result()
    loss, grads = lib("numpy").mlp(params, x, t, S.LR).result()
    assert max(I.compare((loss, grads), ref, names).values()) < 1e-5
    bad = [g.copy() for g in grads]
    bad[2][0, 0] += 1e-2 * np.abs(bad[2]).max()
    for got, match in (((loss, bad), "W2 differs"), ((loss * 1.01, grads), "value differs"),
                       ((loss, grads[:-1]), "3 gradients where gradtensor has 4")):  # fmt: skip
        with pytest.raises(AssertionError, match=match):
            I.compare(got, ref, names)


def test_a_mismatch_drops_the_row_not_the_run(capsys):
    class Wrong:
        def chain(self, x0):
            impl = lib("gradtensor").chain(x0)
            value, grads = impl.result()
            return I.Impl(impl.step, lambda: (value, [2 * g for g in grads]))

    ctx = S.Context({"gradtensor": lib("gradtensor"), "numpy": Wrong()}, quick=True)
    case = S.run_case(ctx, "[t]", "chain", {}, "chain", (np.ones(4, np.float32),), ["grad x"], 1)
    assert list(case["results"]) == ["gradtensor"]
    assert case["errors"]["numpy"].startswith("mismatch: grad x differs")
    assert "DROPPED" in capsys.readouterr().out


def test_cli_quick_overhead_writes_a_run_the_report_reads(tmp_path, capsys):
    import gradtensor as gt
    from benchmarks.__main__ import main
    from benchmarks.report import build

    out = tmp_path / "results" / "2000-01-01-test.json"
    assert main(["--quick", "--suite", "overhead", "--libs", "numpy", "--out", str(out)]) == 0
    run = json.loads(out.read_text())
    assert {"gradtensor", "numpy"} <= set(run["suites"]["overhead"]["cases"][0]["results"])
    assert run["targets"][0]["target"] == "per-op overhead no higher than PyTorch eager's"
    text = build(True, out.parent, tmp_path / "RESULTS.md", tmp_path / "figures")
    assert "Per-op overhead" in text and "No GPU results yet" in text
    if (reason := gt.backend.cuda_unavailable_reason()) is not None:  # said, and not an error
        assert main(["--device", "cuda", "--quick", "--no-save"]) == 0
        assert f"needs a CUDA GPU: {reason}" in capsys.readouterr().out


@pytest.mark.slow
def test_firstuse_runs_fresh_processes_on_a_cache_of_its_own(tmp_path):
    from benchmarks.__main__ import main
    from benchmarks.report import build

    out = tmp_path / "results" / "2000-01-01-firstuse.json"
    assert main(["--quick", "--suite", "firstuse", "--libs", "numpy", "--out", str(out)]) == 0
    run = json.loads(out.read_text())
    cold, warm = run["suites"]["firstuse"]["cases"]
    assert cold["params"]["cache"] == "cold" and warm["params"]["cache"] == "warm"
    for case in (cold, warm):
        assert set(case["results"]) == {"gradtensor", "gradtensor-nokernels"}
    # The first compilation in a process is announced; loading from the cache is not. Each
    # cold run compiles afresh, on an empty cache of its own.
    from benchmarks.firstuse import COLD_RUNS

    assert len(cold["results"]["gradtensor"]["runs"]) == COLD_RUNS
    assert all(r["announced"] for r in cold["results"]["gradtensor"]["runs"])
    assert not any(r["announced"] for r in warm["results"]["gradtensor"]["runs"])
    assert not cold["results"]["gradtensor-nokernels"]["runs"][0]["announced"]
    rows = [r for r in run["targets"] if r["suite"] == "firstuse"]
    assert [r["limit"] for r in rows] == [3.0, 0.3] and all(r["ref"] is None for r in rows)
    assert rows[0]["ratio"] == cold["results"]["gradtensor"]["median_s"]
    # Numba's own start-up is measured beside them, as the floor under a warm first step.
    assert 0 < warm["numba_floor_s"] < 60
    text = build(True, out.parent, tmp_path / "RESULTS.md", tmp_path / "figures")
    assert "First use" in text and " s | ≤ 3.00" in text and "Numba's own start-up" in text


def test_contention_times_each_step_alone_and_beside_a_load_it_starts(tmp_path):
    from benchmarks.__main__ import main

    out = tmp_path / "results" / "2000-01-01-contention.json"
    assert main(["--quick", "--suite", "contention", "--libs", "numpy", "--out", str(out)]) == 0
    run = json.loads(out.read_text())
    (case,) = run["suites"]["contention"]["cases"]
    r = case["results"]["gradtensor"]
    assert r["slowdown"] == r["median_s"] / r["idle_median_s"]
    (row,) = [t for t in run["targets"] if t["suite"] == "contention"]
    assert row["ratio"] == r["slowdown"] and row["limit"] == 2.0 and row["unit"] == ""


def test_cli_quick_conv_checks_gradtensor_against_torch(tmp_path):
    pytest.importorskip("torch", reason="the conv suite compares with PyTorch")
    from benchmarks.__main__ import main
    from benchmarks.report import build

    out = tmp_path / "results" / "2000-01-01-conv.json"
    assert main(["--quick", "--suite", "conv", "--libs", "torch", "--out", str(out)]) == 0
    cases = json.loads(out.read_text())["suites"]["conv"]["cases"]
    assert [c["params"]["kind"] for c in cases] == ["conv", "conv", "cnn"]
    for case in cases:  # PyTorch agreed with gradtensor, so it was timed
        assert "errors" not in case and {"gradtensor", "torch"} <= set(case["results"])
    text = build(True, out.parent, tmp_path / "RESULTS.md", tmp_path / "figures")
    assert "### Convolution" in text and "CNN step" in text


def test_the_conv_target_holds_one_thread_runs_to_1_5x_torch():
    def case(threads, kind="conv", gt=1.4, torch=1.0):
        res = {"gradtensor": {"median_s": gt}, "torch": {"median_s": torch}}
        return {"name": f"{kind} {threads}", "params": {"kind": kind, "threads": threads},
                "results": res}  # fmt: skip

    cases = [case(1), case(2, gt=9.0), case(1, "cnn", gt=9.0), case(1, gt=1.6)]
    run = {"settings": {"device": "cpu"}, "suites": {"conv": {"cases": cases}}}
    got = [(r["case"], round(r["ratio"], 3), r["met"]) for r in S.check_targets(run)]
    assert got == [("conv 1", 1.4, True), ("conv 1", 1.6, False)]


def test_the_committed_results_page_is_generated_from_the_committed_runs(tmp_path):
    from benchmarks.report import OUT, RESULTS_DIR, build

    text = build(False, RESULTS_DIR, tmp_path / "RESULTS.md", tmp_path / "figures")
    assert text == OUT.read_text()


def test_memory_probe_measures_a_step():
    out = S._probe("numpy", [784, 256, 10], 64, "cpu")  # in a process of its own
    assert out["param_bytes"] == 4 * (784 * 256 + 256 + 256 * 10 + 10)
    # at least its copy of the weights and the hidden activations
    assert min(out["peak_bytes"], out["traced_peak_bytes"]) > out["param_bytes"] + 64 * 256 * 4


def test_batches_are_drawn_clear_of_the_relu_kink():
    params, x, _ = S.mlp_inputs([784, 256, 256, 10], 512)
    for w, b in params[:-1]:
        z = x.astype(np.float64) @ w.T.astype(np.float64) + b
        assert np.abs(z).min() >= S.KINK_CLEARANCE * z.std() * 0.99
        x = np.maximum(z, 0)


def test_gpu_targets_judge_gradtensor_against_torch_where_they_apply():
    def case(shape, **times):
        params = dict(zip(("batch", "in", "out"), shape))
        results = {k: {"median_s": v} for k, v in times.items()}
        return {"name": "x".join(map(str, shape)), "params": params, "results": results}

    small = case((64, 64, 64), gradtensor=1.0, torch=2.0)  # launch-bound
    large = case((4096, 4096, 2048), gradtensor=1.2, torch=1.0)
    run = {"settings": {"device": "cuda"}, "suites": {"linear": {"cases": [small, large]}}}
    got = [(r["case"], round(r["ratio"], 3), r["met"]) for r in S.check_targets(run)]
    # no slower than PyTorch, then >= 1.3x faster where memory- or launch-bound
    assert got == [("64x64x64", 0.5, True), ("4096x4096x2048", 1.2, False), ("64x64x64", 0.5, True)]
