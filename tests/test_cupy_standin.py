"""The CuPy stand-in is as strict as CuPy, and gradtensor.backend behaves on it.

No GPU is needed: each test gives the stand-in its own pretend GPUs, whatever the session set.
"""

import pickle
import sys

import cupy_standin as cp
import numpy as np
import pytest

from gradtensor import backend


@pytest.fixture(autouse=True)
def one_gpu(monkeypatch):
    monkeypatch.setattr(cp._core._Config, "device_count", 1)
    cp.reset_sync_count()


# -- no implicit transfers ----------------------------------------------------------------------


def test_implicit_conversion_to_numpy_is_refused():
    x = cp.arange(3.0)
    for convert in (np.asarray, np.array, lambda a: np.array([a, a])):
        with pytest.raises(TypeError, match=r"Implicit conversion .* Please use `\.get\(\)`"):
            convert(x)
    assert cp.sync_count() == 0


def test_host_arrays_are_refused_in_device_maths_but_scalars_are_not():
    x = cp.arange(3, dtype=cp.float32)
    for bad in (
        lambda: x + np.ones(3),
        lambda: np.ones(3) + x,
        lambda: cp.maximum(x, np.ones(3)),
        lambda: cp.where(x > 0, x, np.zeros(3)),
        lambda: cp.concatenate([x, np.ones(3)]),
        lambda: np.concatenate([x, np.ones(3)]),
        lambda: cp.exp([1.0, 2.0]),
        lambda: x + np.array(1.0),  # a 0-d NumPy array is an array, not a scalar
    ):
        with pytest.raises(TypeError, match="Unsupported type|incorrect type"):
            bad()
    for ok in (x + 2, 2.0 * x, x * np.float32(2), np.float32(2) - x, x**2, np.exp(x)):
        assert isinstance(ok, cp.ndarray) and ok.dtype == cp.float32
    assert (x + np.float64(1)).dtype == cp.float64  # NumPy scalars are not weak (NEP 50)


def test_results_are_device_arrays_never_scalars():
    x = cp.arange(6.0).reshape(2, 3)
    for r in (x.sum(), x[0, 1], cp.max(x), np.sum(x), x.argmax(), x.mean(axis=None)):
        assert isinstance(r, cp.ndarray) and r.shape == ()
    assert np.ndim(x) == 2 and np.shape(x) == (2, 3) and cp.get_array_module(x) is cp


def test_an_operand_that_opts_out_of_ufuncs_gets_the_reflected_operator():
    class Opaque:
        __array_ufunc__ = None

        def __radd__(self, other):
            return "reflected"

    assert cp.ones(2) + Opaque() == "reflected"


def test_every_device_to_host_transfer_is_counted_by_kind():
    x = cp.arange(4.0)
    y = (x * 2 + 1)[1:]
    assert cp.sync_count() == 0
    x.get(), y[0].item(), bool(y[0] > 0), float(y[1]), int(y[2]), y.tolist()
    cp.asnumpy(y), repr(y), pickle.dumps(y)
    assert dict(cp.SYNCS) == {
        "get": 2, "item": 1, "bool": 1, "float": 1, "int": 1, "tolist": 1, "asnumpy": 1,
        "repr": 1,
    }  # fmt: skip
    cp.reset_sync_count()
    assert cp.sync_count() == 0


def test_bool_of_an_array_follows_cupy():
    with pytest.raises(ValueError, match="more than one element is ambiguous"):
        bool(cp.ones(2))
    with pytest.warns(DeprecationWarning, match="empty array is ambiguous"):
        assert not bool(cp.ones(0))


# -- indexing and scatter ---------------------------------------------------------------------


def test_indexing_with_device_and_host_indices():
    x = cp.arange(10.0).reshape(5, 2)
    assert x[cp.asarray([4, 0, 4])].get().tolist() == [[8, 9], [0, 1], [8, 9]]
    assert x[np.array([1])].shape == (1, 2)  # CuPy copies host indices to the device
    assert x[x[:, 0] > 4].shape == (2, 2)
    x[cp.asarray([0])] = np.full((1, 2), 7.0)  # host values are copied with an index array
    with pytest.raises(ValueError, match="non-scalar numpy.ndarray cannot be used for fill"):
        x[:2] = np.ones((2, 2))
    x[:2] = cp.zeros((2, 2))
    x[4] = 3
    assert x.get()[[0, 4]].tolist() == [[0, 0], [3, 3]]


def test_add_at_accumulates_and_the_old_scatter_add_warns_as_in_cupy_14():
    a = cp.zeros(4, cp.float32)
    cp.add.at(a, cp.asarray([1, 1, 3]), cp.ones(3, cp.float32))
    assert a.get().tolist() == [0, 2, 0, 1]
    with pytest.warns(DeprecationWarning, match="Please use `cupy.add.at` instead"):
        a.scatter_add(cp.asarray([0]), 1.0)
    with pytest.warns(DeprecationWarning, match="ndarray.scatter_add"):
        cp._cupyx.scatter_add(a, cp.asarray([0]), 1.0)
    assert a.get().tolist() == [2, 2, 0, 1]
    with pytest.raises(TypeError, match="cupy.add.at only supports"):
        cp.add.at(cp.zeros(2, cp.int64), cp.asarray([0]), 1)


def test_erf_follows_cupys_type_table():
    x = cp.asarray([0.5, -1.0])
    for dtype, want in ((cp.float16, cp.float64), (cp.float32, cp.float32), (cp.int64, cp.float64)):
        assert cp._cupyx.special.erf(x.astype(dtype)).dtype == want
    np.testing.assert_allclose(cp._cupyx.special.erf(x).get(), [0.5204998778, -0.8427007929])


# -- memory, interop -----------------------------------------------------------------------------


def test_arrays_look_like_cupys():
    x = cp.zeros((2, 3), cp.float32)
    assert x.flags.c_contiguous and x.flags["OWNDATA"] and not hasattr(x.flags, "writeable")
    assert x.strides == (12, 4) and x.device.id == 0 and x.T.base is x
    b = cp.broadcast_to(cp.ones(3), (2, 3))
    b[0, 0] = 5  # CuPy has no read-only arrays
    assert b.base is not None and b[1, 0].item() == 5


def test_the_pool_counts_live_arrays():
    pool = cp.get_default_memory_pool()
    before = pool.used_bytes()
    x = cp.zeros(1000, cp.float64)
    view = x[10:]
    assert pool.used_bytes() == before + 8192  # 8000 bytes, in 512-byte blocks
    del x
    assert pool.used_bytes() == before + 8192  # the view keeps the memory
    del view
    assert pool.used_bytes() == before


def test_cuda_array_interface_and_dlpack_share_memory():
    x = cp.arange(3.0)
    cai = x.__cuda_array_interface__
    assert cai["version"] == 3 and cai["stream"] == 1 and cai["strides"] is None

    class Exporter:
        __cuda_array_interface__ = cai

    view = cp.asarray(Exporter())
    view[0] = 42
    shared = cp.from_dlpack(x)
    shared[1] = 43
    assert x.get().tolist() == [42, 43, 2]
    assert x.__dlpack_device__() == (2, 0)
    with pytest.raises(BufferError, match="Unsupported device"):
        np.from_dlpack(x)  # a host consumer gets no device memory
    with pytest.raises(TypeError, match="CPU arrays cannot be directly imported"):
        cp.from_dlpack(np.ones(2))
    assert np.from_dlpack(_HostRequest(x)).tolist() == [42, 43, 2]
    assert cp.SYNCS["dlpack"] == 1


class _HostRequest:
    """A consumer that asks for a copy on the host, as DLPack allows."""

    def __init__(self, x):
        self.x = x

    def __dlpack__(self, **kwargs):
        return self.x.__dlpack__(dl_device=(1, 0), max_version=kwargs.get("max_version"))

    def __dlpack_device__(self):
        return (1, 0)


# -- devices, streams, random numbers ----------------------------------------------------------


def test_without_a_gpu_device_calls_raise_as_in_cupy():
    cp.set_device_count(0)
    for call in (cp.runtime.getDeviceCount, lambda: cp.zeros(2), lambda: cp.random.default_rng(0)):
        with pytest.raises(cp.CUDARuntimeError, match="cudaErrorNoDevice"):
            call()
    assert not cp.cuda.is_available()


def test_arrays_live_on_the_current_device_and_do_not_mix():
    cp.set_device_count(2)
    with cp.cuda.Device(1):
        y = cp.ones(2)
        gen = cp.random.default_rng(0)
    assert y.device.id == 1 and cp.zeros(1).device.id == 0
    with pytest.raises(ValueError, match="Peer access is unavailable"):
        cp.zeros(2) + y
    with pytest.raises(ValueError, match="Peer access is unavailable"):
        gen.random(2)  # its state lives on device 1
    assert cp.asarray(y).device.id == 0  # asarray copies to the current device
    with pytest.raises(cp.CUDARuntimeError, match="invalid device ordinal"):
        cp.cuda.Device(2).use()


def test_streams_and_generators():
    s = cp.cuda.Stream(non_blocking=True)
    with s:
        assert (
            cp.cuda.get_current_stream() is s
            and cp.ones(1).__cuda_array_interface__["stream"] == s.ptr
        )
    assert cp.cuda.get_current_stream().ptr == 0
    a = cp.random.default_rng(3).standard_normal((2, 2), dtype=cp.float32)
    b = cp.random.default_rng(3).standard_normal((2, 2), dtype=cp.float32)
    assert a.dtype == cp.float32 and cp.array_equal(a, b).item()
    with pytest.raises(TypeError, match="Unsupported dtype float16"):
        cp.random.default_rng(0).standard_normal(2, dtype=cp.float16)


def test_install_never_replaces_another_cupy(monkeypatch):
    monkeypatch.setitem(sys.modules, "cupy", object())
    with pytest.raises(RuntimeError, match="a real cupy is already imported"):
        cp.install()


# -- gradtensor.backend on the stand-in ------------------------------------------------------


@pytest.fixture
def backend_on_standin(monkeypatch):
    """gradtensor.backend with the stand-in as its CuPy, whatever CuPy this machine has."""
    for name, module in cp.modules().items():
        monkeypatch.setitem(sys.modules, name, module)
    monkeypatch.setattr(backend, "_cupy", cp)
    monkeypatch.setattr(backend, "_cp_rngs", {})


def test_manual_seed_works_with_cupy_but_no_gpu(backend_on_standin):
    cp.set_device_count(0)
    backend.manual_seed(3)  # made a CuPy generator (a device allocation) before the fix
    assert backend.cuda_unavailable_reason() == "no CUDA GPU is present"
    backend.synchronize()  # a no-op without a GPU


def test_gpu_draws_are_seeded_and_land_on_their_device(backend_on_standin):
    cp.set_device_count(2)
    backend.manual_seed(5)
    a = backend.random_normal((3,), np.float16, backend.Device("cuda:1"))
    backend.manual_seed(5)
    b = backend.random_normal((3,), np.float16, backend.Device("cuda:1"))
    assert a.device.id == 1 and a.dtype == np.float16 and a.get().tolist() == b.get().tolist()
    assert backend.random_uniform((2,), np.float32, backend.Device("cuda:0")).device.id == 0


def test_erf_of_float16_stays_float16_on_the_gpu(backend_on_standin):
    x = cp.asarray([0.5, -1.0], cp.float16)
    y = backend.erf(x)
    assert y.dtype == np.float16
    np.testing.assert_allclose(y.get(), [0.5205, -0.8427], rtol=1e-3)


def test_scatter_add_on_the_gpu_uses_add_at(backend_on_standin):
    out = cp.zeros(3, cp.float32)
    backend.scatter_add(out, (cp.asarray([2, 2, 0]),), cp.ones(3, cp.float32))  # no warning
    assert out.get().tolist() == [1, 0, 2]


def test_a_cupy_array_is_recognised_before_cuda_was_asked_for(backend_on_standin, monkeypatch):
    monkeypatch.setattr(backend, "_cupy", None)
    monkeypatch.setattr(backend, "_cupy_error", None)
    x = cp.ones(2)
    assert backend.is_cuda_array(x) and backend.device_of_array(x) == "cuda:0"
    assert not backend.is_cuda_array(np.ones(2))


# -- stream capture -----------------------------------------------------------------------------


def test_a_captured_graph_runs_its_device_work_again_on_the_same_memory():
    x = cp.arange(4, dtype=cp.float32)
    s = cp.cuda.Stream(non_blocking=True)
    with s:
        s.begin_capture()
        assert s.is_capturing()
        y = x * 2 + 1  # made during the capture: the graph writes into y again
        z = y[1:]  # a view: nothing of its own to write
        x += 1  # in place, on x itself
        graph = s.end_capture()
    assert not s.is_capturing()
    assert x.get().tolist() == [0, 1, 2, 3]  # a GPU runs nothing it captures: x is as it was
    graph.launch(s)
    assert y.get().tolist() == [1, 3, 5, 7] and x.get().tolist() == [1, 2, 3, 4]
    x[...] = cp.asarray(np.array([10, 20, 30, 40], np.float32))
    graph.launch(s)  # no Python of the capture runs: the operations, on the captured arrays
    assert y.get().tolist() == [21, 41, 61, 81] and z.get().tolist() == [41, 61, 81]
    assert x.get().tolist() == [11, 21, 31, 41]


def test_what_a_gpu_refuses_while_capturing_is_refused():
    x = cp.arange(3.0)
    with pytest.raises(cp.CUDARuntimeError, match="legacy default stream"):
        cp.cuda.Stream.null.begin_capture()
    s = cp.cuda.Stream()
    with s:
        s.begin_capture()
        try:
            for host in (x.get, x.item if x.size == 1 else lambda: x[0].item(), x.tolist,
                         lambda: cp.asarray(np.ones(2))):  # fmt: skip
                with pytest.raises(cp.CUDARuntimeError, match="StreamCaptureUnsupported"):
                    host()
        finally:
            s.end_capture()
    assert x.get().tolist() == [0.0, 1.0, 2.0]  # after the capture, transfers work again


def test_an_elementwise_kernel_runs_its_subset_of_cuda_and_refuses_the_rest():
    k = cp.ElementwiseKernel("float32 a, float32 c", "float32 o",
                             "float t = (a * c);\no = (t + fabs(-a));", "k")  # fmt: skip
    a = cp.asarray(np.array([[1.5, -2.0]], np.float32))
    out = k(a, np.float32(0.1))
    assert out.dtype == np.float32 and out.shape == (1, 2)
    want = a.get() * np.float32(0.1) + np.abs(a.get())
    assert np.array_equal(out.get(), want)
    with pytest.raises(TypeError, match="a is float64, declared float32"):
        k(cp.zeros(2), 1.0)
    for op in ("o = exp(a);", "o = a % c;", "int t = a;", "o = b;", "o = a; if (a) o = c;"):
        with pytest.raises(NotImplementedError):
            cp.ElementwiseKernel("float32 a, float32 c", "float32 o", op)
