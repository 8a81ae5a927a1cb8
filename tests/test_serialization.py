"""gt.save / gt.load: round trips, and clear errors for missing, truncated and foreign files."""

import io
import json
import zipfile

import numpy as np
import pytest

import gradtensor as gt
from gradtensor import nn, optim


def test_state_dict_round_trip(tmp_path):
    gt.manual_seed(0)
    a, b = nn.MLP([5, 7, 3]), nn.MLP([5, 7, 3])
    path = tmp_path / "model.npz"
    gt.save(a.state_dict(), path)
    assert path.exists() and not (tmp_path / "model.npz.npz").exists()
    b.load_state_dict(gt.load(path))
    x = gt.randn(4, 5)
    np.testing.assert_array_equal(a(x).data, b(x).data)


def test_nested_structures_and_types(tmp_path):
    obj = {
        "tensors": [
            gt.tensor([1.0, 2.0]),
            gt.tensor([[1, 2]], dtype=gt.int32),
            gt.tensor([True, False]),
            gt.zeros(0, 3, dtype=gt.float64),
            gt.tensor(3.5, dtype=gt.float16),
        ],
        "numbers": (1, -2.5, float("inf"), float("-inf"), True, None, "text ✓"),
        3: {"nested": [(), [], {}]},
        "array": np.arange(6, dtype=np.int16).reshape(2, 3),
        "scalar": np.float32(0.25),
        "grad": gt.ones(2, requires_grad=True),
    }
    path = tmp_path / "obj.npz"
    gt.save(obj, str(path))
    back = gt.load(path)
    assert set(back) == {"tensors", "numbers", 3, "array", "scalar", "grad"}
    for t, u in zip(obj["tensors"], back["tensors"], strict=True):
        assert isinstance(u, gt.Tensor) and u.dtype == t.dtype and u.shape == t.shape
        np.testing.assert_array_equal(u.data, t.data)
    assert back["numbers"] == obj["numbers"]
    assert isinstance(back["numbers"], tuple) and back[3] == {"nested": [(), [], {}]}
    assert isinstance(back[3]["nested"][0], tuple) and isinstance(back[3]["nested"][1], list)
    np.testing.assert_array_equal(back["array"], obj["array"])
    assert back["array"].dtype == np.int16
    assert back["scalar"] == np.float32(0.25) and back["scalar"].dtype == np.float32
    assert back["grad"].requires_grad and back["grad"].is_leaf
    gt.save(float("nan"), path)
    assert np.isnan(gt.load(path))


def test_file_objects(tmp_path):
    buf = io.BytesIO()
    gt.save({"w": gt.arange(3)}, buf)
    buf.seek(0)
    assert gt.load(buf)["w"].tolist() == [0, 1, 2]


def test_optimizer_state_round_trip(tmp_path):
    p = nn.Parameter(gt.ones(3))
    opt = optim.Adam([p], lr=0.1, betas=(0.8, 0.9))
    p.grad = gt.ones(3)
    opt.step()
    gt.save(opt.state_dict(), tmp_path / "opt.npz")
    sd = gt.load(tmp_path / "opt.npz")
    assert sd["param_groups"][0]["betas"] == (0.8, 0.9)
    assert sd["state"][0]["step"] == 1  # int keys survive
    opt2 = optim.Adam([p])
    opt2.load_state_dict(sd)
    assert opt2.param_groups[0]["lr"] == 0.1


def test_unsupported_objects_are_refused(tmp_path):
    with pytest.raises(TypeError, match=r"cannot store a set \(at \['a'\]\[1\]\)"):
        gt.save({"a": [1, {2}]}, tmp_path / "x.npz")
    with pytest.raises(TypeError, match="dict keys"):
        gt.save({(1, 2): 3}, tmp_path / "x.npz")
    with pytest.raises(TypeError, match="not numeric"):
        gt.save(np.array(["a"], dtype=object), tmp_path / "x.npz")
    assert not (tmp_path / "x.npz").exists()  # nothing half-written


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.npz"):
        gt.load(tmp_path / "nope.npz")


def test_truncated_file(tmp_path):
    path = tmp_path / "model.npz"
    gt.save(nn.Linear(50, 50).state_dict(), path)
    raw = path.read_bytes()
    for cut in (len(raw) // 2, 10, 0):
        bad = tmp_path / f"cut{cut}.npz"
        bad.write_bytes(raw[:cut])
        with pytest.raises(ValueError, match=f"cut{cut}.npz"):
            gt.load(bad)


def test_foreign_files(tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    with pytest.raises(ValueError, match="notes.txt"):
        gt.load(text)
    plain = tmp_path / "plain.npz"
    np.savez(plain, x=np.zeros(3))
    with pytest.raises(ValueError, match="plain.npz.*without"):
        gt.load(plain)
    npy = tmp_path / "one.npy"
    np.save(npy, np.zeros(3))
    with pytest.raises(ValueError, match="one.npy.*single .npy"):
        gt.load(npy)
    pickled = tmp_path / "pickled.npz"
    np.savez(pickled, __gradtensor__=np.array([{"a": 1}], dtype=object))
    with pytest.raises(ValueError, match="pickled.npz"):
        gt.load(pickled)  # an object array would need unpickling: refused


def test_damaged_structure(tmp_path):
    path = tmp_path / "d.npz"
    meta = {"format": "gradtensor.save", "version": 1, "root": {"tensor": "a7"}}
    with zipfile.ZipFile(path, "w") as z:
        with z.open("__gradtensor__.npy", "w") as f:
            np.lib.format.write_array(f, np.frombuffer(json.dumps(meta).encode(), np.uint8))
    with pytest.raises(ValueError, match="d.npz.*damaged"):
        gt.load(path)
    meta["version"] = 99
    with zipfile.ZipFile(path, "w") as z:
        with z.open("__gradtensor__.npy", "w") as f:
            np.lib.format.write_array(f, np.frombuffer(json.dumps(meta).encode(), np.uint8))
    with pytest.raises(ValueError, match="version 99"):
        gt.load(path)
