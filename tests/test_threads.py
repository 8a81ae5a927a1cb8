"""Threads are part of normal use: grad mode and the kernel switch are per thread, as in PyTorch,
and threads that train their own models get exactly what serial runs get."""

import threading

import numpy as np

import gradtensor as gt
import gradtensor.nn.functional as F
from gradtensor import nn
from gradtensor.ops import registry


def _run_threads(targets):
    errors = []

    def wrap(fn):
        def run():
            try:
                fn()
            except BaseException as exc:  # surfaced in the main thread below
                errors.append(exc)

        return run

    threads = [threading.Thread(target=wrap(fn)) for fn in targets]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]


def _train(seed, steps, kernels=True):
    """Train a small MLP with data and initial weights fixed by `seed`; return its parameters."""
    rng = np.random.default_rng(seed)
    model = nn.MLP([6, 16, 16, 3])
    with gt.no_grad():
        for p in model.parameters():
            p.data[...] = rng.standard_normal(p.shape).astype(np.float32) * 0.3
    opt = gt.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    x = gt.tensor(rng.standard_normal((32, 6)))
    y = gt.tensor(rng.integers(0, 3, 32))
    with gt.use_kernels(kernels):
        for _ in range(steps):
            opt.zero_grad()
            loss = F.cross_entropy(model(x), y)
            loss.backward()
            for p in model.parameters():
                assert p.grad is not None, "a parameter got no gradient"
            opt.step()
    return [p.detach().numpy().copy() for p in model.parameters()]


def test_threads_training_their_own_models_match_serial_runs():
    seeds = [1, 2, 3, 4]
    serial = {s: _train(s, 30) for s in seeds}
    got = {}
    _run_threads([lambda s=s: got.__setitem__(s, _train(s, 30)) for s in seeds])
    for s in seeds:
        for a, b in zip(got[s], serial[s]):
            np.testing.assert_array_equal(a, b)


def test_training_next_to_an_inference_thread_in_no_grad():
    stop = threading.Event()
    model = nn.MLP([6, 16, 3])

    def infer():
        while not stop.is_set():
            with gt.no_grad():
                out = model(gt.randn(8, 6))
                assert not out.requires_grad

    def train():
        try:
            for _ in range(3):
                assert _train(7, 20) is not None
        finally:
            stop.set()

    reference = _train(7, 20)
    _run_threads([infer, train])
    # The trained values are those of a run with no neighbour at all.
    np.testing.assert_array_equal(_train(7, 20)[0], reference[0])


def test_no_grad_in_one_thread_does_not_reach_another():
    entered, release = threading.Event(), threading.Event()

    def hold_no_grad():
        with gt.no_grad():
            entered.set()
            release.wait(10)

    t = threading.Thread(target=hold_no_grad)
    t.start()
    try:
        assert entered.wait(10)
        x = gt.ones(3, requires_grad=True)
        assert gt.is_grad_enabled()
        assert (x * 2).requires_grad
    finally:
        release.set()
        t.join()


def test_set_grad_enabled_is_per_thread():
    seen = []
    gt.set_grad_enabled(False)
    try:
        t = threading.Thread(target=lambda: seen.append(gt.is_grad_enabled()))
        t.start()
        t.join()
        assert not gt.is_grad_enabled()
    finally:
        gt.set_grad_enabled(True)
    assert seen == [True]


def test_backward_in_many_threads_leaves_grad_mode_on():
    def work():
        for _ in range(200):
            x = gt.randn(4, requires_grad=True)
            (x * x).sum().backward()
            assert gt.is_grad_enabled()

    _run_threads([work] * 4)
    assert gt.is_grad_enabled()


def test_use_kernels_is_per_thread():
    default = registry._KernelSwitch.enabled  # the process default (GRADTENSOR_KERNELS)
    seen = []
    with gt.use_kernels(not default):
        t = threading.Thread(target=lambda: seen.append(registry._switch.enabled))
        t.start()
        t.join()
        assert registry._switch.enabled is (not default)
    assert seen == [default]
    assert registry._switch.enabled is default
