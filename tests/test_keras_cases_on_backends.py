"""Keras's own recurrent-layer unit tests (tests/data/keras_rnn_cases.json) run through real
Keras on each backend: the case's weights set, its inputs, mask, initial state and stateful
batches given as Keras's test gave them, must give the arrays that test expects, under the names
and shapes the oracle gives. Keras fixes its backend at import, so each backend runs every case
in one process of its own."""

import json
from pathlib import Path

import numpy as np
import pytest

from helpers import run_script, runner_env
from runner.shapes import plan_stack

DATA = Path(__file__).parent / "data" / "keras_rnn_cases.json"
CASES = json.loads(DATA.read_text())

# Every case on the Keras backend KERAS_BACKEND names, started as a job starts it (no TensorFlow
# imported on JAX or PyTorch), the layer called directly with training=False (JAX's
# predict_on_batch would not carry a stateful layer's states), written to argv[2] as JSON:
# case -> {"shapes": {output: shape}, "errors": {output: max abs error over its batches},
# "exception": one line or None}
CASE_RUNNER = """
import json, os, sys
from runner.backends import start_keras

start_keras(os.environ["KERAS_BACKEND"], verbose=False)
import keras
import numpy as np
from runner.model import make_layer
from runner.shapes import plan_stack
from runner.weights import undrawn


def tensor(values, dtype="float32"):
    return keras.ops.convert_to_tensor(np.asarray(values, dtype))


def run_case(case):
    config = case["layer"]
    stateful = bool(config.get("stateful") or (config.get("layer") or {}).get("stateful"))
    batches = case["inputs"] if stateful else [case["inputs"]]
    masks = case["mask"] if stateful and case["mask"] is not None else [case["mask"]] * len(
        batches)
    plan = plan_stack([config], np.shape(batches[0]))
    names = list(plan.layers[0].outputs)
    layer = make_layer(undrawn(config))  # set_weights gives its weights
    layer.build(np.shape(batches[0]))
    layer.set_weights([np.asarray(w, "float32") for w in case["weights"]])
    result = {"shapes": {}, "errors": {}, "exception": None}
    for index, (inputs, mask) in enumerate(zip(batches, masks)):
        kwargs = {"training": False}
        if mask is not None:
            kwargs["mask"] = tensor(mask, bool)
        if case["initial_state"] is not None:
            kwargs["initial_state"] = [tensor(state) for state in case["initial_state"]]
        returned = keras.tree.flatten(layer(tensor(inputs), **kwargs))
        if len(returned) != len(names):
            raise ValueError(f"Keras returns {len(returned)} outputs, the oracle names "
                             f"{len(names)} ({', '.join(names)})")
        for name, array in zip(names, returned):
            array = keras.ops.convert_to_numpy(array)
            result["shapes"][name] = list(array.shape)
            want = case["expected"].get(name)
            if want is not None and stateful:
                want = want[index]
            if want is None:  # the Keras test checks a later batch only
                continue
            error = float(np.max(np.abs(array.astype(np.float64) - np.asarray(want))))
            result["errors"][name] = max(error, result["errors"].get(name, 0.0))
    return result


results = {}
for case in json.load(open(sys.argv[1])):
    try:
        results[case["name"]] = run_case(case)
    except Exception as error:
        line = f"{type(error).__name__}: {error}".splitlines()[0]
        results[case["name"]] = {"shapes": {}, "errors": {}, "exception": line}
json.dump(results, open(sys.argv[2], "w"))
"""


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["tensorflow", "jax", "torch"])
def test_kerass_own_cases_give_what_its_tests_expect_on_each_backend(backend, tmp_path):
    """All 41 cases on the CPU (GPUs hidden): Keras's tests expect CPU float32 numbers."""
    written = tmp_path / "results.json"
    process = run_script(tmp_path, CASE_RUNNER, str(DATA), str(written),
                         env=runner_env(KERAS_BACKEND=backend, CUDA_VISIBLE_DEVICES=""))
    assert process.returncode == 0, process.stderr[-3000:]
    results = json.loads(written.read_text())
    assert sorted(results) == sorted(case["name"] for case in CASES)
    failures = []
    for case in CASES:
        found = results[case["name"]]
        if found["exception"] is not None:
            failures.append(f"{case['name']}: {found['exception']}")
            continue
        inputs = case["inputs"][0] if _stateful(case) else case["inputs"]
        planned = plan_stack([case["layer"]], np.shape(inputs)).layers[0].outputs
        shapes = {name: tuple(shape) for name, shape in found["shapes"].items()}
        if shapes != planned:
            failures.append(f"{case['name']}: Keras's shapes {shapes}, the oracle's {planned}")
        for name in case["expected"]:
            error = found["errors"].get(name)
            if error is None:
                failures.append(f"{case['name']}.{name}: not among Keras's outputs")
            elif not error <= 1e-5:  # NaN fails too
                failures.append(f"{case['name']}.{name}: max abs error {error:.6g}")
    assert failures == [], f"{backend}: " + "; ".join(failures)


def _stateful(case: dict) -> bool:
    """Whether the case's inputs are consecutive batches (a stateful layer, or one it wraps)."""
    layer = case["layer"]
    return bool(layer.get("stateful") or (layer.get("layer") or {}).get("stateful"))
