"""Keras's own recurrent-layer unit tests, as data (tests/data/keras_rnn_cases.json, each case
citing the Keras test it ports): the oracle's shapes and the NumPy reference's numbers must be
the arrays those tests expect. No TensorFlow: the data holds the weights and the answers."""

import json
from pathlib import Path

import numpy as np
import pytest

from runner.reference import apply_layer
from runner.shapes import plan_stack

CASES = json.loads((Path(__file__).parent / "data" / "keras_rnn_cases.json").read_text())


@pytest.mark.parametrize("case", CASES, ids=[case["name"] for case in CASES])
def test_the_reference_gives_what_kerass_own_test_expects(case):
    layer = case["layer"]
    stateful = layer.get("stateful") or (layer.get("layer") or {}).get("stateful")
    batches = case["inputs"] if stateful else [case["inputs"]]
    masks = case["mask"] if stateful and case["mask"] is not None else [case["mask"]] * len(
        batches)
    expected = ([{name: values[i] for name, values in case["expected"].items()}
                 for i in range(len(batches))] if stateful else [case["expected"]])
    carried = case["initial_state"]
    for inputs, mask, want in zip(batches, masks, expected):
        inputs = np.asarray(inputs, np.float32)
        plan = plan_stack([layer], inputs.shape)
        results, _, final = apply_layer(layer, case["weights"], inputs, mask, carried)
        named = dict(zip(plan.layers[0].outputs, results))
        for name, values in want.items():
            if values is None:  # the Keras test checks a later batch only
                continue
            assert plan.layers[0].outputs[name] == np.shape(values), name
            np.testing.assert_allclose(named[name], values, atol=1e-5, rtol=0, err_msg=name)
        carried = final if stateful else case["initial_state"]
