"""Inputs drawn from the data config and the seed: floats, or token ids for an Embedding."""

import numpy as np

from runner.shapes import StackPlan


def make_inputs(plan: StackPlan, data: dict, seed: int) -> list:
    """`data.batches` consecutive batches, each {model input name: array}.

    Floats are a standard normal times `data.scale`, as the notebook's np.random.randn(...);
    an input read by an Embedding gets token ids in [1, input_dim), so 0 stays padding. With
    `data.padding`, row i of every batch ends in floor(padding * T * (i + 1) / B) padding steps
    (zeros): the last row has that fraction of padding, the others less, so lengths differ."""
    rng = np.random.default_rng(seed)
    batches = []
    for _ in range(data["batches"]):
        batch = {}
        for name, shape in plan.inputs.items():
            if name in plan.tokens:
                values = rng.integers(1, plan.tokens[name], size=shape).astype("int32")
            else:
                values = (rng.standard_normal(shape) * data["scale"]).astype("float32")
            batch[name] = _padded(values, data["padding"])
        batches.append(batch)
    return batches


def _padded(values: np.ndarray, padding: float) -> np.ndarray:
    if not padding:
        return values
    rows, timesteps = values.shape[:2]
    for row in range(rows):
        steps = int(padding * timesteps * (row + 1) / rows)
        if steps:
            values[row, timesteps - steps:] = 0
    return values

