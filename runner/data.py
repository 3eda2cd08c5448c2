"""Inputs drawn from the data config and the seed."""

import numpy as np


def make_inputs(shape: tuple, scale: float, seed: int) -> np.ndarray:
    """A standard normal of `shape` times `scale`, as the notebook's np.random.randn(...) * scale."""
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(shape) * scale).astype("float32")
