"""Module.load_state_dict and Optimizer.load_state_dict are all-or-nothing: every value is checked
and converted before anything changes, and the errors name the key and what was wrong."""

import copy

import numpy as np
import pytest

import gradtensor as gt
from gradtensor import nn, optim


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(3, 3)
        self.fc2 = nn.Linear(3, 3)
        self.register_buffer("steps", gt.tensor([0, 0], dtype=gt.int64))
        self.register_buffer("scale", gt.ones(3))


def _snapshot(module):
    """Values, array identities and versions of every parameter and buffer."""
    return {
        name: (t.data.copy(), id(t.data), t._version[0])
        for name, t in list(module.named_parameters()) + list(module.named_buffers())
    }


def _assert_unchanged(module, before):
    after = _snapshot(module)
    assert after.keys() == before.keys()
    for name, (data, ident, version) in before.items():
        np.testing.assert_array_equal(after[name][0], data, err_msg=name)
        assert after[name][1:] == (ident, version), name


def _state(net, **changes):
    sd = {k: np.asarray(v.data) + 1 for k, v in net.state_dict().items()}
    sd.update(changes)
    return sd


# The last key in load order is the bad one, so a load that writes as it goes shows itself.
@pytest.mark.parametrize(
    "value, error, message",
    [
        ("abc", TypeError, r"'scale' is a str of dtype <U3"),
        (object(), TypeError, r"'scale' is a object of dtype object"),
        (None, TypeError, r"'scale' is a NoneType"),
        ([[1.0, 2.0], [3.0]], ValueError, r"'scale' cannot be made into an array"),
        (np.ones(3, dtype=complex), TypeError, r"'scale' has dtype complex128 .* float32"),
        (np.ones(4), ValueError, r"'scale' has shape \(4,\) in the state dict but \(3,\)"),
        (gt.ones(1, 3), ValueError, r"'scale' has shape \(1, 3\)"),
    ],
    ids=["str", "object", "None", "ragged", "complex", "shape", "tensor-shape"],
)
def test_a_bad_value_changes_nothing(value, error, message):
    net = Net()
    before = _snapshot(net)
    with pytest.raises(error, match=f"load_state_dict for Net: {message}"):
        net.load_state_dict(_state(net, scale=value))
    _assert_unchanged(net, before)


def test_float_into_an_int_buffer_is_refused():
    net = Net()
    before = _snapshot(net)
    with pytest.raises(TypeError, match=r"'steps' has dtype float64 .* but int64 .*same_kind"):
        net.load_state_dict(_state(net, steps=np.array([1.5, 2.0])))
    _assert_unchanged(net, before)


def test_a_read_only_target_changes_nothing():
    net = Net()
    frozen = np.ones(3, dtype=np.float32)
    frozen.flags.writeable = False
    net.scale = gt.from_numpy(frozen)
    before = _snapshot(net)
    with pytest.raises(ValueError, match="'scale': the module's array is read-only"):
        net.load_state_dict(_state(net))
    _assert_unchanged(net, before)


def test_values_of_every_kind_are_converted():
    net = Net()
    ids = {k: id(v.data) for k, v in net.state_dict().items()}
    versions = {k: v._version[0] for k, v in net.state_dict().items()}
    sd = {
        "fc1.weight": np.arange(9, dtype=np.float64).reshape(3, 3),  # float64 into float32
        "fc1.bias": [1, 2, 3],  # a list of ints
        "fc2.weight": gt.full((3, 3), 2.0, dtype=gt.float64),
        "fc2.bias": gt.tensor([True, False, True]),
        "steps": np.array([5, 6], dtype=np.int32),
        "scale": [[0.5, 0.25, 2.0]][0],
    }
    net.load_state_dict(sd)
    out = net.state_dict()
    for k, v in sd.items():
        np.testing.assert_array_equal(out[k].data, np.asarray(v.data if hasattr(v, "data") else v))
        assert id(out[k].data) == ids[k] and out[k]._version[0] == versions[k] + 1
    assert out["fc1.weight"].dtype == gt.float32 and out["steps"].dtype == gt.int64


def test_a_permuted_own_state_dict_is_read_before_it_is_written():
    net = Net()
    sd = net.state_dict()  # shares memory with the module
    w1, w2 = sd["fc1.weight"].data.copy(), sd["fc2.weight"].data.copy()
    sd["fc1.weight"], sd["fc2.weight"] = sd["fc2.weight"], sd["fc1.weight"]
    net.load_state_dict(sd)
    np.testing.assert_array_equal(net.fc1.weight.data, w2)
    np.testing.assert_array_equal(net.fc2.weight.data, w1)


def test_strict_key_errors_change_nothing():
    net = Net()
    before = _snapshot(net)
    sd = _state(net)
    del sd["fc2.bias"]
    with pytest.raises(KeyError, match=r"missing keys \['fc2.bias'\]"):
        net.load_state_dict(sd)
    _assert_unchanged(net, before)
    with pytest.raises(TypeError, match="expected a dict, got list"):
        net.load_state_dict([1, 2])


# -- Optimizer ------------------------------------------------------------------------------------


def _trained_adam():
    ps = [nn.Parameter(gt.full((3,), float(i))) for i in range(3)]
    opt = optim.Adam([{"params": ps[:1]}, {"params": ps[1:], "lr": 0.5}])
    for p in ps:
        p.grad = gt.ones_like(p)
    opt.step()
    return ps, opt


def _opt_snapshot(opt):
    groups = copy.deepcopy(
        [{k: v for k, v in g.items() if k != "params"} for g in opt.param_groups]
    )
    state = {
        id(p): {k: (v.data.copy() if isinstance(v, gt.Tensor) else v) for k, v in s.items()}
        for p, s in opt.state.items()
    }
    return groups, [list(map(id, g["params"])) for g in opt.param_groups], state


def _assert_opt_unchanged(opt, before):
    groups, params, state = _opt_snapshot(opt)
    assert (groups, params) == before[:2]
    assert state.keys() == before[2].keys()
    for pid, s in before[2].items():
        for k, v in s.items():
            np.testing.assert_array_equal(state[pid][k], v)


def _bad_states():
    def edit(fn):
        _, opt = _trained_adam()
        sd = copy.deepcopy(opt.state_dict())
        fn(sd)
        return sd

    def shape(sd):
        sd["state"][2]["exp_avg_sq"] = gt.zeros(4)

    def lr_str(sd):
        sd["param_groups"][1]["lr"] = "fast"

    def lr_neg(sd):
        sd["param_groups"][1]["lr"] = -1.0

    def betas(sd):
        sd["param_groups"][1]["betas"] = (0.9,)

    def index_str(sd):
        sd["param_groups"][1]["params"] = [1, "2"]

    def index_none(sd):
        sd["param_groups"][1]["params"] = [1, None]

    def index_twice(sd):
        sd["param_groups"][1]["params"] = [1, 1]

    def state_list(sd):
        sd["state"] = [1, 2]

    def state_entry(sd):
        sd["state"][2] = 5

    def state_unknown(sd):
        sd["state"][7] = {"step": 1}

    def array_str(sd):
        sd["state"][2]["exp_avg"] = np.array(["a", "b", "c"])

    def groups_dict(sd):
        sd["param_groups"] = {"params": [0]}

    def group_no_params(sd):
        del sd["param_groups"][1]["params"]

    return {
        "shape": (edit(shape), r"state 'exp_avg_sq' has shape \(4,\)"),
        "lr str": (edit(lr_str), "parameter group 1 has unusable hyperparameters"),
        "lr negative": (edit(lr_neg), "lr must be non-negative"),
        "betas": (edit(betas), "betas must be two numbers"),
        "index str": (edit(index_str), "parameter index '2', which is not an int"),
        "index None": (edit(index_none), "parameter index None"),
        "index twice": (edit(index_twice), "parameter index 1 appears more than once"),
        "state list": (edit(state_list), "'state' must be a dict"),
        "state entry": (edit(state_entry), "the state of parameter 2 is a int"),
        "state unknown": (edit(state_unknown), "parameter index 7, which no parameter group"),
        "array str": (edit(array_str), "state 'exp_avg' of parameter 2 has dtype <U1"),
        "groups dict": (edit(groups_dict), "'param_groups' must be a list of dicts"),
        "group without params": (edit(group_no_params), "'param_groups' must be a list of dicts"),
    }


@pytest.mark.parametrize("case", list(_bad_states()))
def test_a_failed_optimizer_load_changes_nothing(case):
    sd, message = _bad_states()[case]
    ps, opt = _trained_adam()
    before = _opt_snapshot(opt)
    with pytest.raises(ValueError, match=message):
        opt.load_state_dict(sd)
    _assert_opt_unchanged(opt, before)


def test_optimizer_state_as_numpy_arrays_resumes_exactly():
    ps, opt = _trained_adam()
    sd = opt.state_dict()
    as_numpy = {
        "param_groups": sd["param_groups"],
        "state": {
            i: {k: (np.asarray(v.data) if isinstance(v, gt.Tensor) else v) for k, v in s.items()}
            for i, s in sd["state"].items()
        },
    }
    twins = [nn.Parameter(p.detach().clone()) for p in ps]
    opt2 = optim.Adam([{"params": twins[:1]}, {"params": twins[1:]}])
    opt2.load_state_dict(as_numpy)
    assert all(isinstance(opt2.state[p]["exp_avg"], gt.Tensor) for p in twins)
    for a, b in ((ps, opt), (twins, opt2)):
        for p in a:
            p.grad = gt.full(p.shape, 0.3)
        b.step()
    for p, q in zip(ps, twins, strict=True):
        np.testing.assert_array_equal(p.data, q.data)


def test_a_group_missing_an_optional_hyperparameter_takes_the_default():
    ps, opt = _trained_adam()
    sd = copy.deepcopy(opt.state_dict())
    del sd["param_groups"][0]["amsgrad"]
    opt2 = optim.Adam([{"params": ps[:1]}, {"params": ps[1:]}], amsgrad=False)
    opt2.load_state_dict(sd)
    assert opt2.param_groups[0]["amsgrad"] is False and opt2.param_groups[1]["lr"] == 0.5
    # SGD built without a default lr: a group that lacks one has nothing to fall back on.
    sgd = optim.SGD([{"params": ps[:1], "lr": 0.1}, {"params": ps[1:], "lr": 0.1}])
    sgd_sd = copy.deepcopy(sgd.state_dict())
    del sgd_sd["param_groups"][0]["lr"]
    before = _opt_snapshot(sgd)
    with pytest.raises(ValueError, match="parameter group 0 lacks the hyperparameter 'lr'"):
        sgd.load_state_dict(sgd_sd)
    _assert_opt_unchanged(sgd, before)
