"""Neural-network building blocks: Module, Parameter, layers, `init`, `utils`; `functional` holds
the functions.

>>> model = nn.MLP([64, 128, 10])                     # Linear(64, 128, relu) -> Linear(128, 10)
>>> logits = model(gt.randn(32, 64)); logits.shape
(32, 10)
"""

from . import functional, init, utils
from .layers import (
    GELU,
    MLP,
    Dropout,
    Identity,
    LeakyReLU,
    Linear,
    ReLU,
    Sequential,
    Sigmoid,
    SiLU,
    Softplus,
    Tanh,
)
from .module import IncompatibleKeys, Module
from .parameter import Parameter

__all__ = [
    "GELU",
    "MLP",
    "Dropout",
    "Identity",
    "IncompatibleKeys",
    "LeakyReLU",
    "Linear",
    "Module",
    "Parameter",
    "ReLU",
    "Sequential",
    "SiLU",
    "Sigmoid",
    "Softplus",
    "Tanh",
    "functional",
    "init",
    "utils",
]
