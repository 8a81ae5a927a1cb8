"""gt.save / gt.load: round trips, and clear errors for missing, truncated and foreign files."""

import io
import json
import os
import random
import stat
import tracemalloc
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


def test_memory_layouts_round_trip(tmp_path):
    obj = {
        "fortran": np.asfortranarray(np.arange(6.0).reshape(2, 3)),
        "big-endian": np.arange(4, dtype=">i4"),
        "empty": gt.zeros(0, 2),
        "bool": np.array([[True], [False]]),
        "complex": np.array([1 + 2j], dtype=np.complex64),
    }
    gt.save(obj, tmp_path / "l.npz")
    back = gt.load(tmp_path / "l.npz")
    for k in ("fortran", "big-endian", "bool", "complex"):
        np.testing.assert_array_equal(back[k], obj[k])
    assert back["big-endian"].dtype == np.int32 and back["big-endian"].dtype.isnative
    assert back["empty"].shape == (0, 2)


def test_save_into_a_missing_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="save: no such folder: .*absent"):
        gt.save({"a": 1}, tmp_path / "absent" / "x.npz")


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


# -- what save refuses ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "bad",
    [
        gt.Tensor._make(np.array([1, "a"], dtype=object)),
        np.array(["a", "b"]),
        np.array([b"x"]),
        np.array(["2024-01-01"], dtype="datetime64[D]"),
        np.array([1], dtype="timedelta64[s]"),
        np.zeros(2, dtype=[("a", "<f4")]),
        np.zeros(2, dtype="V4"),
        np.datetime64("2024-01-01"),
        np.void(b"ab"),
    ],
    ids=["object-tensor", "str", "bytes", "datetime", "timedelta", "struct", "void", "dt64", "v"],
)
def test_non_numeric_arrays_are_refused_at_save(tmp_path, bad):
    path = tmp_path / "x.npz"
    with pytest.raises(TypeError, match=r"save: .* at \['x'\]\[0\] has dtype .*not numeric"):
        gt.save({"x": [bad]}, path)
    assert list(tmp_path.iterdir()) == []


def test_nesting_depth_is_limited_both_ways(tmp_path):
    deep = ok = [1]
    for _ in range(99):
        ok = [ok]
    gt.save(ok, tmp_path / "ok.npz")  # 100 levels round-trip
    back = gt.load(tmp_path / "ok.npz")
    for _ in range(99):
        back = back[0]
    assert back == deep
    with pytest.raises(ValueError, match="nested more than 100 levels"):
        gt.save([ok], tmp_path / "deep.npz")
    loop = []
    loop.append(loop)
    with pytest.raises(ValueError, match="contain itself"):
        gt.save({"a": loop}, tmp_path / "loop.npz")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ok.npz"]


# -- how save writes ------------------------------------------------------------------------------


@pytest.mark.skipif(os.name != "posix", reason="file modes and umask are POSIX")
def test_save_keeps_an_existing_files_mode_and_a_new_one_follows_the_umask(tmp_path):
    path = tmp_path / "m.npz"
    gt.save({"a": 1}, path)
    for mode in (0o600, 0o640, 0o755):
        os.chmod(path, mode)
        gt.save({"a": mode}, path)
        assert stat.S_IMODE(os.stat(path).st_mode) == mode
        assert gt.load(path) == {"a": mode}
    old = os.umask(0o027)
    try:
        gt.save({"a": 1}, tmp_path / "new.npz")
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(tmp_path / "new.npz").st_mode) == 0o640  # as open() would make


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="needs symbolic links")
def test_save_writes_through_a_symlink(tmp_path):
    store = tmp_path / "store"
    store.mkdir()
    gt.save({"v": 1}, store / "real.npz")
    link = tmp_path / "link.npz"
    link.symlink_to(os.path.join("store", "real.npz"))  # relative, as users often make them
    gt.save({"v": 2}, link)
    assert link.is_symlink() and os.readlink(link) == os.path.join("store", "real.npz")
    assert gt.load(store / "real.npz") == {"v": 2} == gt.load(link)
    dangling = tmp_path / "next.npz"
    dangling.symlink_to(os.path.join("store", "next.npz"))
    gt.save({"v": 3}, dangling)  # open() would create the target: so does save
    assert dangling.is_symlink() and gt.load(store / "next.npz") == {"v": 3}
    assert sorted(p.name for p in store.iterdir()) == ["next.npz", "real.npz"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link.npz", "next.npz", "store"]


# -- what load refuses ----------------------------------------------------------------------------


def _npy(arr=None, *, header=None, data=b"", version=(1, 0)):
    """An .npy member: a real array, or a crafted header dict followed by `data`."""
    f = io.BytesIO()
    if arr is not None:
        np.lib.format.write_array(f, arr)
        return f.getvalue()
    write = {
        (1, 0): np.lib.format.write_array_header_1_0,
        (2, 0): np.lib.format.write_array_header_2_0,
    }
    write[version](f, header)
    return f.getvalue() + data


def _craft(path, meta, members=(), compression=zipfile.ZIP_STORED):
    """A zip with a structure record `meta` (dict, or raw bytes) and members {name: npy bytes}."""
    raw = meta if isinstance(meta, bytes) else json.dumps(meta).encode()
    with zipfile.ZipFile(path, "w", compression) as z:
        z.writestr("__gradtensor__.npy", _npy(np.frombuffer(raw, np.uint8)))
        for name, data in dict(members).items():
            z.writestr(name + ".npy", data)


def _record(root, version=1):
    return {"format": "gradtensor.save", "version": version, "root": root}


def _zeros_member(z, name, n, compression=zipfile.ZIP_DEFLATED):
    """Write an .npy of n zero bytes into z in pieces (deflated, it is a few kB per MB)."""
    info = zipfile.ZipInfo(name + ".npy")
    info.compress_type = compression
    with z.open(info, "w", force_zip64=True) as f:
        f.write(_npy(header={"descr": "|u1", "fortran_order": False, "shape": (n,)}))
        chunk = bytes(1 << 20)
        for start in range(0, n, len(chunk)):
            f.write(chunk[: min(len(chunk), n - start)])


def _peak_bytes(fn):
    tracemalloc.start()
    try:
        fn()
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return peak


BOMB = 64 << 20  # 64 MiB of zeros, deflated to about 64 kB


def test_members_nobody_refers_to_are_not_read(tmp_path):
    path = tmp_path / "bomb.npz"
    gt.save({"w": gt.arange(3)}, path)
    with zipfile.ZipFile(path, "a") as z:
        _zeros_member(z, "junk", BOMB)
    assert path.stat().st_size < BOMB // 100

    def load():
        assert gt.load(path)["w"].tolist() == [0, 1, 2]

    assert _peak_bytes(load) < 4 << 20


def test_a_member_bigger_than_the_file_needs_max_bytes(tmp_path):
    path = tmp_path / "bomb.npz"
    with zipfile.ZipFile(path, "w") as z:
        meta = json.dumps(_record({"ndarray": "a0"})).encode()
        z.writestr("__gradtensor__.npy", _npy(np.frombuffer(meta, np.uint8)))
        _zeros_member(z, "a0", BOMB)

    def refuse():
        with pytest.raises(ValueError, match=r"bomb.npz.*member 'a0' would take .*max_bytes="):
            gt.load(path)

    assert _peak_bytes(refuse) < 4 << 20
    with pytest.raises(ValueError, match="member 'a0' would take"):
        gt.load(path, max_bytes=BOMB // 2)
    arr = gt.load(path, max_bytes=BOMB + 1000)  # a compressed archive, read when allowed
    assert arr.shape == (BOMB,) and not arr.any()
    with pytest.raises(ValueError, match="max_bytes"):
        gt.load(path, max_bytes=-1)


@pytest.mark.parametrize("shape", [(2**40,), (2**20, 2**20, 2**20), (2**62, 4)])
def test_a_member_declaring_a_huge_shape_is_refused(tmp_path, shape):
    path = tmp_path / "huge.npz"
    member = _npy(header={"descr": "<f8", "fortran_order": False, "shape": shape}, data=bytes(8))
    _craft(path, _record({"tensor": "a0"}), {"a0": member})
    with pytest.raises(
        ValueError, match=r"huge.npz.*member 'a0' declares shape .* but the archive"
    ):
        gt.load(path)


def _member_cases():
    f8 = {"descr": "<f8", "fortran_order": False, "shape": (2,)}
    return {
        "object dtype": _npy(np.array([1, None], dtype=object)),
        "str dtype": _npy(np.array(["ab"])),
        "struct dtype": _npy(np.zeros(2, dtype=[("a", "<f4")])),
        "negative shape": _npy(header=dict(f8, shape=(-1, -16)), data=bytes(16)),
        "short data": _npy(header=f8, data=bytes(8)),
        "long data": _npy(header=f8, data=bytes(24)),
        "npy version 3": b"\x93NUMPY\x03\x00" + _npy(header=f8, data=bytes(16))[8:],
        "no npy magic": b"just some bytes, not an array",
        "empty": b"",
        "bad header": b"\x93NUMPY\x01\x00\x10\x00{'descr': nope }",
    }


@pytest.mark.parametrize("case", list(_member_cases()))
def test_crafted_members_raise_value_error(tmp_path, case):
    path = tmp_path / "m.npz"
    _craft(path, _record({"ndarray": "a0"}), {"a0": _member_cases()[case]})
    with pytest.raises(ValueError, match=r"^load: .*m\.npz"):
        gt.load(path)


DEEP = "[" * 100_000 + "]" * 100_000
CRAFTED_RECORDS = {
    "tensor is a number": _record({"tensor": 5}),
    "tensor extra key": _record({"tensor": "a0", "shape": [2]}),
    "requires_grad a string": _record({"tensor": "a0", "requires_grad": "yes"}),
    "int tensor requires grad": _record({"tensor": "a1", "requires_grad": True}),
    "missing member": _record({"tensor": "a9"}),
    "member named by a list": _record({"ndarray": ["a0"]}),
    "dict key is a list": _record({"dict": [[{"list": [1]}, 2]]}),
    "dict key is a tensor": _record({"dict": [[{"tensor": "a0"}, 2]]}),
    "dict item not a pair": _record({"dict": [[1, 2, 3]]}),
    "dict items not a list": _record({"dict": {"a": 1}}),
    "list of a number": _record({"list": 5}),
    "bare JSON list": _record([1, 2]),
    "unknown kind": _record({"set": [1]}),
    "two kinds": _record({"list": [], "tuple": []}),
    "float text": _record({"float": "1e5"}),
    "float list": _record({"float": [1]}),
    "scalar not 0-d": _record({"scalar": "a0"}),
    "deeply nested entries": _record(json.loads("[" * 300 + "]" * 300)),
    "nested 101 lists": _record(json.loads('{"list": [' * 101 + "]}" * 101)),
    "version a string": _record(1, version="1"),
    "version a bool": _record(1, version=True),
    "version 0": _record(1, version=0),
    "version too new": _record(1, version=2),
    "no root": {"format": "gradtensor.save", "version": 1},
    "no format": {"version": 1, "root": 1},
    "record is a list": [1, 2],
    "record is a number": 5,
    "deep JSON": ('{"format": "gradtensor.save", "version": 1, "root": ' + DEEP + "}").encode(),
    "not JSON": b"{not json",
    "not UTF-8": b'{"format": "\xff"}',
    "huge integer": b'{"format": "gradtensor.save", "version": 1, "root": ' + b"9" * 5000 + b"}",
}


@pytest.mark.parametrize("case", list(CRAFTED_RECORDS))
def test_crafted_structure_records_raise_value_error(tmp_path, case):
    path = tmp_path / "c.npz"
    members = {"a0": _npy(np.arange(3.0)), "a1": _npy(np.arange(3))}
    _craft(path, CRAFTED_RECORDS[case], members)
    with pytest.raises(ValueError, match=r"^load: .*c\.npz"):
        gt.load(path)


def test_structure_record_of_another_dtype_is_refused(tmp_path):
    path = tmp_path / "f.npz"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("__gradtensor__.npy", _npy(np.zeros(3)))
    with pytest.raises(ValueError, match=r"f\.npz.*not gt.save's"):
        gt.load(path)


def _random_json(rng, depth=0):
    pick = rng.randrange(12 if depth < 3 else 6)
    if pick == 0:
        return rng.choice([None, True, False, 0, -1, 2**70, 1.5, "", "a0", "a1", "zz"])
    if pick == 1:
        return rng.choice(["tensor", "ndarray", "scalar", "dict", "list", "tuple", "float"])
    if pick == 2:
        return {"tensor": rng.choice(["a0", "a1", "a2", 0, None, ["a0"]])}
    if pick == 3:
        return {"float": rng.choice(["inf", "nan", "x", 1, None])}
    if pick == 4:
        return {rng.choice(["scalar", "ndarray"]): rng.choice(["a0", "a1", "a2", "zz", 3])}
    if pick == 5:
        return "__DEEP__"
    if pick < 8:
        return [_random_json(rng, depth + 1) for _ in range(rng.randrange(4))]
    kind = rng.choice(["dict", "list", "tuple", "tensor", "float", "other"])
    return {kind: [_random_json(rng, depth + 1) for _ in range(rng.randrange(3))]}


def _mutate(node, rng):
    """node with one random part replaced, removed, or given an extra key."""
    if isinstance(node, (dict, list)) and node and rng.random() < 0.7:
        keys = list(node) if isinstance(node, dict) else list(range(len(node)))
        k = rng.choice(keys)
        node[k] = _mutate(node[k], rng)
        return node
    action = rng.randrange(3)
    if action == 0 and isinstance(node, dict) and node:
        del node[rng.choice(list(node))]
        return node
    if action == 1 and isinstance(node, dict):
        node[rng.choice(["requires_grad", "tensor", "list", "x"])] = _random_json(rng)
        return node
    return _random_json(rng)


def _load_or_value_error(path, about):
    try:
        gt.load(path)
    except ValueError as exc:
        assert str(exc).startswith("load: ") and path.name in str(exc), (about, exc)
    except Exception as exc:
        pytest.fail(f"{type(exc).__name__}: {exc} from {about}")


def test_fuzzed_structure_records_raise_only_value_error(tmp_path):
    rng = random.Random(20240601)
    good = tmp_path / "good.npz"
    obj = {
        "model": nn.MLP([3, 4, 2]).state_dict(),
        "x": [np.arange(4), np.float32(2.5), (1, "two", None, float("inf"))],
        3: {"t": gt.ones(2, requires_grad=True)},
    }
    gt.save(obj, good)
    with zipfile.ZipFile(good) as z:
        members = {n[:-4]: z.read(n) for n in z.namelist() if n != "__gradtensor__.npy"}
        record = json.loads(np.load(io.BytesIO(z.read("__gradtensor__.npy"))).tobytes())
    path = tmp_path / "fuzz.npz"
    for _ in range(400):
        meta = json.loads(json.dumps(record))
        for _ in range(rng.randrange(1, 4)):
            meta = _mutate(meta, rng)
        text = json.dumps(meta).replace('"__DEEP__"', DEEP)
        kept = {k: v for k, v in members.items() if rng.random() < 0.9}
        _craft(path, text.encode(), kept)
        _load_or_value_error(path, text[:300])


def test_fuzzed_bytes_raise_only_value_error(tmp_path):
    rng = random.Random(7)
    good = tmp_path / "good.npz"
    gt.save({"w": gt.randn(4, 3), "b": [np.arange(3), {"k": 1.5}]}, good)
    raw = good.read_bytes()
    path = tmp_path / "flipped.npz"
    for _ in range(400):
        data = bytearray(raw)
        for _ in range(rng.randrange(1, 4)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        if rng.random() < 0.1:
            data = data[: rng.randrange(len(data))]
        path.write_bytes(bytes(data))
        _load_or_value_error(path, bytes(data))
