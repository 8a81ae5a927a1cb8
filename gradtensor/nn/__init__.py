"""Neural-network building blocks. `gradtensor.nn.functional` holds the functions."""

from . import functional

__all__ = ["functional"]
