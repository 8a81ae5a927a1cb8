"""Every registered op fed what users get wrong, generated from the op registry.

Each sample's tensor arguments are replaced, one at a time, by strings, ragged lists, bools, ints,
float16, empty and 0-d tensors, NaNs, non-contiguous and broadcast-strided views. An op must then
give the right value (the same as on a plain contiguous copy, where the input is a valid one) or
raise an error that names the op: no bare NumPy, Numba or Python error escapes the API. Backward
is held to the same rule.
"""

from __future__ import annotations

import re
import warnings

import numpy as np
import pytest

import gradtensor as gt
from gradtensor.ops import REGISTRY
from gradtensor.testing import sample_call

# The errors an op may raise for bad input; each must name the op.
OURS = (TypeError, ValueError, IndexError, RuntimeError)


def _tensor_positions(structure: list) -> list[int]:
    """Where the tensor arguments are (a list of tensors counts: its first is varied)."""
    return [
        i
        for i, a in enumerate(structure)
        if isinstance(a, gt.Tensor) or (isinstance(a, list) and a and isinstance(a[0], gt.Tensor))
    ]


def _tensor_at(structure: list, pos: int) -> gt.Tensor:
    a = structure[pos]
    return a[0] if isinstance(a, list) else a


def _each(structure: list, variants) -> list[tuple]:
    """(position, variant name, value) for every tensor argument and every variant of it."""
    return [
        (pos, variant, value)
        for pos in _tensor_positions(structure)
        for variant, value in variants(_tensor_at(structure, pos).detach()).items()
    ]


def _valid_variants(t: gt.Tensor) -> dict:
    """Inputs with the sample's values, held differently: each must give the same result."""
    a = t.detach().numpy()
    out = {}
    if a.ndim >= 2:
        strided = np.asfortranarray(a)  # same values, other strides
        out["non_contiguous"] = strided
    if a.ndim >= 1:
        wide = np.empty(a.shape[:-1] + (a.shape[-1] * 2,), a.dtype)
        wide[..., ::2] = a
        out["every_other"] = wide[..., ::2]
    if a.size:
        first = a.reshape(-1)[:1].reshape((1,) * a.ndim)
        out["broadcast"] = np.broadcast_to(first, a.shape)
    return out


def _bad_variants(t: gt.Tensor) -> dict:
    """Inputs that may be refused (with the op named) or computed (and then must not crash)."""
    shape = t.shape
    return {
        "string": "abc",
        "ragged": [[1.0, 2.0], [3.0]],
        "none_list": [None, 1.0],
        "object_array": np.array([object(), object()], dtype=object),
        "complex": np.ones(shape, np.complex128),
        "str_array": np.full(shape, "x"),
        "bool": gt.ones(shape, dtype=gt.bool_),
        "python_bool": True,
        "int": gt.ones(shape, dtype=gt.int64),
        "float16": gt.tensor(t.detach().numpy(), dtype=gt.float16),
        "empty": gt.zeros((0,) + shape[1:], dtype=gt.float64),
        "zero_d": gt.tensor(0.5, dtype=gt.float64),
        "nan": gt.full(shape, float("nan"), dtype=gt.float64),
        "inf": gt.full(shape, float("inf"), dtype=gt.float64),
    }


NUMERIC = ("bool", "int", "float16", "empty", "zero_d", "nan", "inf")


def _same_values(name, variant, out, ref, dtype) -> None:
    outs = out if isinstance(out, (list, tuple)) else [out]
    refs = ref if isinstance(ref, (list, tuple)) else [ref]
    assert len(outs) == len(refs), f"{name} given {variant}: {len(outs)} outputs, not {len(refs)}"
    rtol = 2e-3 if dtype == gt.float16 else 1e-6
    for o, r in zip(outs, refs):
        assert o.shape == r.shape, f"{name} given {variant}: shape {o.shape}, not {r.shape}"
        if dtype.kind in "biu" and o.dtype.kind != "f":
            continue  # computed in the integers, as NumPy and PyTorch do: not a float64 value
        got, want = o.detach().numpy().astype(np.float64), r.detach().numpy().astype(np.float64)
        np.testing.assert_allclose(
            got, want, rtol=rtol, atol=rtol, equal_nan=True, err_msg=f"{name} given {variant}"
        )


CASES = []
for _name, _op in sorted(REGISTRY.items()):
    for _i, _sample in enumerate(_op.samples):
        CASES.append(pytest.param(_name, _i, id=f"{_name}-{_i}"))


def _names(name: str) -> set[str]:
    """What an error may call the op: its registered name and public aliases."""
    return {name, name.lstrip("_")}


def _check_error(name: str, exc: BaseException, variant: str) -> None:
    assert isinstance(exc, OURS), f"{name} given {variant}: {type(exc).__name__}: {exc}"
    msg = str(exc)
    assert any(re.match(rf"{re.escape(n)}\b", msg) for n in _names(name)), (
        f"{name} given {variant}: the error does not start with the op's name: "
        f"{type(exc).__name__}: {msg}"
    )
    assert not re.match(rf"({re.escape(name)}: ){{2}}", msg), f"{name}: the name repeats: {msg}"


def _run(fn, structure, pos, value):
    args = list(structure)
    args[pos] = [value] + args[pos][1:] if isinstance(args[pos], list) else value
    return fn.op_call(*args)


def _call(op, sample):
    fn, xs = sample_call(op, sample)
    structure = list(fn.args)

    def op_call(*args):
        return op.call(*args, **sample.kwargs)

    fn.op_call = op_call
    return fn, structure


def _backward(out) -> None:
    outs = out if isinstance(out, (list, tuple)) else [out]
    live = [o for o in outs if isinstance(o, gt.Tensor) and o.requires_grad]
    if live:
        gt.autograd.backward(live, [gt.ones_like(o) for o in live])


@pytest.mark.parametrize("name,i", CASES)
def test_valid_inputs_held_differently_give_the_same_result(name, i):
    op = REGISTRY[name]
    fn, structure = _call(op, op.samples[i])
    for pos, variant, arr in _each(structure, _valid_variants):
        try:
            want = _run(fn, structure, pos, gt.tensor(np.ascontiguousarray(arr), dtype=arr.dtype))
        except OURS as exc:  # these values are refused (a singular matrix): held otherwise too
            with pytest.raises(type(exc), match=re.escape(str(exc))):
                _run(fn, structure, pos, gt.from_numpy(arr))
            continue
        got = _run(fn, structure, pos, gt.from_numpy(arr))
        want = want if isinstance(want, (list, tuple)) else [want]
        got = got if isinstance(got, (list, tuple)) else [got]
        for g, w in zip(got, want):
            # Sums may add in another order over another layout: equal to rounding, no more.
            np.testing.assert_allclose(
                g.detach().numpy(), w.detach().numpy(), rtol=1e-13, atol=1e-15,
                err_msg=f"{name} given {variant} as input {pos}",
            )  # fmt: skip


@pytest.mark.parametrize("name,i", CASES)
def test_bad_inputs_are_computed_or_refused_by_name(name, i):
    op = REGISTRY[name]
    fn, structure = _call(op, op.samples[i])
    for pos, variant, value in _each(structure, _bad_variants):
        if isinstance(value, gt.Tensor) and value.dtype.kind == "f":
            value = value.detach().requires_grad_()
        with warnings.catch_warnings():
            # A forward pass warns of NaN, inf and overflow as NumPy does (backward never warns:
            # test_autograd); only errors are judged here.
            warnings.simplefilter("ignore", RuntimeWarning)
            try:
                out = _run(fn, structure, pos, value)
            except Exception as exc:  # noqa: BLE001  (checked below)
                _check_error(name, exc, variant)
                continue
            if isinstance(value, gt.Tensor) and variant in NUMERIC:
                # Computed: then it is the value of the same numbers in float64.
                ref = _run(fn, structure, pos, value.detach().astype(gt.float64))
                _same_values(name, variant, out, ref, value.dtype)
        try:
            _backward(out)
        except Exception as exc:  # noqa: BLE001
            _check_error(name, exc, f"{variant} (in backward)")
