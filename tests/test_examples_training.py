"""The training examples run in-process: the digits network reaches 96% test accuracy, the CNN
98% (slow), the chain example's printed factors multiply to gradtensor's gradients, and the MLP
benchmark smoke-runs."""

import builtins
import importlib.util
import struct
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]


def _example(name):
    spec = importlib.util.spec_from_file_location(
        f"example_{name}", ROOT / "examples" / f"{name}.py"
    )
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _hide(monkeypatch, *names):
    """Make `import name` fail, as on a machine without that optional package."""
    real_import = builtins.__import__

    def fake(name, *args, **kwargs):
        if name.split(".")[0] in names:
            raise ImportError(f"No module named {name!r}")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", fake)


def test_digits_example_reaches_96_percent(tmp_path, capsys):
    pytest.importorskip("sklearn", reason="scikit-learn ships the digits data set")
    pytest.importorskip("matplotlib", reason="the example saves its curve with matplotlib")
    plot = tmp_path / "curve.png"
    result = _example("train_digits").main(["--no-progress", "--plot", str(plot)])
    out = capsys.readouterr().out
    assert result["sizes"] == [64, 128, 10]
    assert result["test_accuracy"] >= 0.96, out
    assert len(result["train_loss"]) == result["epochs"]
    assert result["train_loss"][-1] < result["train_loss"][0] / 10
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert f"test accuracy {result['test_accuracy']:.2%}" in out


def test_digits_example_under_gt_compile_trains_to_eagers_numbers(capsys):
    pytest.importorskip("sklearn", reason="scikit-learn ships the digits data set")
    mod = _example("train_digits")
    eager = mod.main(["--no-progress", "--no-plot"])
    compiled = mod.main(["--no-progress", "--no-plot", "--compile"])
    # The replayed steps are eager's, bit for bit: every epoch's loss, the same accuracy.
    assert compiled["train_loss"] == eager["train_loss"]
    assert compiled["test_accuracy"] == eager["test_accuracy"] >= 0.96


def test_digits_example_without_tqdm_and_matplotlib(tmp_path, capsys, monkeypatch):
    pytest.importorskip("sklearn", reason="scikit-learn ships the digits data set")
    mod = _example("train_digits")
    _hide(monkeypatch, "tqdm", "matplotlib")
    monkeypatch.chdir(tmp_path)
    result = mod.main(["--epochs", "1"])
    out = capsys.readouterr().out
    assert result["plot"] is None and "matplotlib is not installed" in out
    assert "epoch   1/1" in out
    assert not (tmp_path / "runs").exists()


def test_digits_example_writes_its_curve_into_the_output_folder(tmp_path, monkeypatch):
    pytest.importorskip("sklearn", reason="scikit-learn ships the digits data set")
    pytest.importorskip("matplotlib", reason="the example saves its curve with matplotlib")
    mod = _example("train_digits")
    monkeypatch.chdir(tmp_path)
    default = mod.main(["--epochs", "1", "--no-progress"])["plot"]
    assert default == str(Path("runs") / "digits_curve.png") and (tmp_path / default).is_file()
    named = mod.main(["--epochs", "1", "--no-progress", "--out-dir", "elsewhere/out"])["plot"]
    assert (tmp_path / "elsewhere" / "out" / "digits_curve.png").is_file() and named
    assert sorted(p.name for p in tmp_path.iterdir()) == ["elsewhere", "runs"]


def _write_idx(folder, prefix, n, rng):
    labels = rng.integers(0, 10, size=n)
    images = np.zeros((n, 28, 28), np.uint8)
    for i, c in enumerate(labels):
        images[i, 2 * c : 2 * c + 4, :] = 255  # a bar whose height says the class
    (folder / f"{prefix}-images-idx3-ubyte").write_bytes(
        struct.pack(">iiii", 2051, n, 28, 28) + images.tobytes()
    )
    (folder / f"{prefix}-labels-idx1-ubyte").write_bytes(
        struct.pack(">ii", 2049, n) + labels.astype(np.uint8).tobytes()
    )


def test_digits_example_on_mnist_files(tmp_path, capsys):
    rng = np.random.default_rng(0)
    _write_idx(tmp_path, "train", 300, rng)
    _write_idx(tmp_path, "t10k", 50, rng)
    mod = _example("train_digits")
    result = mod.main(["--mnist", str(tmp_path), "--epochs", "3", "--no-plot", "--no-progress"])
    assert result["dataset"] == "mnist" and result["sizes"] == [784, 16, 16, 10]
    assert "784-16-16-10 (sigmoid)" in capsys.readouterr().out
    result = mod.main(
        [
            "--mnist",
            str(tmp_path),
            "--hidden",
            "100,100",
            "--activation",
            "relu",
            "--epochs",
            "5",
            "--no-plot",
            "--no-progress",
        ]
    )
    assert result["sizes"] == [784, 100, 100, 10]
    assert result["test_accuracy"] >= 0.9  # the bars are easy to tell apart


def test_cnn_example_learns_on_a_subset(tmp_path, capsys):
    pytest.importorskip("sklearn", reason="scikit-learn ships the digits data set")
    mod = _example("train_cnn_digits")
    args = ["--epochs", "2", "--subset", "400", "--batch-size", "16", "--lr", "5e-3"]
    result = mod.main([*args, "--no-progress", "--out-dir", str(tmp_path)])
    out = capsys.readouterr().out
    assert "400 training and 360 test images" in out and "epoch   2/2" in out
    assert result["train_loss"][1] < result["train_loss"][0] and len(result["train_loss"]) == 2
    assert result["test_accuracy"] >= 0.5, out  # chance is 0.1; seeds 0-2 give 0.60-0.86
    if result["plot"] is not None:  # matplotlib is installed
        assert result["plot"] == str(tmp_path / "cnn_digits_curve.png")
        assert (tmp_path / "cnn_digits_curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # Under gt.compile: the same steps (dropout's draws included), bit for bit.
    compiled = mod.main([*args, "--no-progress", "--no-plot", "--compile"])
    assert compiled["train_loss"] == result["train_loss"]
    assert compiled["test_accuracy"] == result["test_accuracy"]


@pytest.mark.slow
def test_cnn_example_reaches_98_percent(capsys):
    pytest.importorskip("sklearn", reason="scikit-learn ships the digits data set")
    result = _example("train_cnn_digits").main(["--no-progress", "--no-plot"])
    assert result["test_accuracy"] >= 0.98, capsys.readouterr().out


def test_one_neuron_chain_factors_match_gradients(capsys):
    result = _example("one_neuron_chain").main()
    out = capsys.readouterr().out
    layers = result["chain"]["layers"]
    assert [r["layer"] for r in layers] == [3, 2, 1]
    for r in layers:
        # The printed factors, multiplied, are gradtensor's gradients.
        assert r["a_prev"] * r["sigma_prime"] * r["upstream"] == pytest.approx(
            r["gt_dw"], rel=1e-12
        )
        assert r["dw"] == pytest.approx(r["gt_dw"], rel=1e-12)
        assert r["db"] == pytest.approx(r["gt_db"], rel=1e-12)
        if r["gt_da_prev"] is not None:
            assert r["da_prev"] == pytest.approx(r["gt_da_prev"], rel=1e-12)
    # The upstream factor of one layer is the da_prev of the layer above it.
    assert layers[1]["upstream"] == layers[0]["da_prev"]
    many = result["many"]
    np.testing.assert_allclose(many["path_sums"], many["gt_da_prev"], rtol=1e-12)
    assert many["dw"] == pytest.approx(many["gt_dw"], rel=1e-12)
    avg = result["average"]
    np.testing.assert_allclose(avg["mean_of_grads"], avg["grad_of_mean"], rtol=1e-12)
    for phrase in (
        "sigma'(z(3))",
        "2 (a(L) - y)",
        "dC0/dw(3) = product of the three",
        "gradtensor:",
        "sum over j",
    ):
        assert phrase in out


def test_bench_mlp_smoke(capsys):
    pytest.importorskip("torch", reason="the benchmark compares with PyTorch")
    sys.path.insert(0, str(ROOT))
    try:
        from benchmarks import bench_mlp
    finally:
        sys.path.remove(str(ROOT))
    result = bench_mlp.main(["--quick", "--sizes", "20,16,10", "--batch", "8"])
    out = capsys.readouterr().out
    assert result["check"]["grad"] < 1e-4 and "path" not in result  # --quick writes nothing
    assert result["ratio_gt_over_torch"] > 0 and "ratio gradtensor / PyTorch" in out
    assert set(result["phases"]["gt"]) == {"forward", "backward", "step"}
