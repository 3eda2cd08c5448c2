"""Activations that change a layer's shape (glu halves the last axis): what Keras's symbolic
graph says, what its arrays are, and what the runner does with each."""

import numpy as np
import pytest

from helpers import explain, runs_of
from runner.errors import ConfigError
from runner.shapes import plan_stack, symbolic_finding

GLU_LAST = ("model=guide_bidirectional", "+model.layers.2.activation=glu")
# glu in the middle of a stack, before a Lambda without weights: it runs
GLU_BEFORE_LAMBDA = ("model=lambda_lstm", "model.layers.3.units=2",
                     "+model.layers.3.activation=glu")
FOUND = "Keras's symbolic shape output (None, {}), its arrays output ({}, {})"
WHY = "glu on model.layers.{} halves the last axis, which Keras's symbolic shape ignores"

# A user's own stack: glu in the middle, before an LSTM that Keras builds for the wrong width
GLU_BEFORE_LSTM = """\
# Input(T, D) -> Dense(4, glu) -> LSTM(3)   -> (B, 3)
input_shape: ["${data.timesteps}", "${data.features}"]
layers:
  - _target_: keras.layers.Dense   # (B, T, 2): glu halves the 4 units
    units: 4
    activation: glu
  - _target_: keras.layers.LSTM    # (B, 3), were Keras to build it for 2 features
    units: 3
"""
REFUSAL = ("model.layers.1: glu on model.layers.0 halves the last axis of the arrays this LSTM "
           "reads to 2, but Keras's symbolic shape keeps 4 and builds its weights for 4, so "
           "every prediction would fail; give glu to the last layer, or follow it only by "
           "layers without weights (Dropout, Masking)")


def dense(units, activation=None):
    return {"_target_": "keras.layers.Dense", "units": units,
            **({"activation": activation} if activation else {})}


LSTM = {"_target_": "keras.layers.LSTM", "units": 3}
DROPOUT = {"_target_": "keras.layers.Dropout", "rate": 0.5}
MASKING = {"_target_": "keras.layers.Masking"}
EXPAND = {"_target_": "keras.layers.Lambda", "function": "expand_last_axis"}
SCALE = {"_target_": "keras.layers.Lambda", "function": "scale", "arguments": {"factor": 2.0}}
CONV_GLU = {"_target_": "keras.layers.Conv1D", "filters": 6, "kernel_size": 2,
            "activation": "glu"}
TIME_GLU = {"_target_": "keras.layers.TimeDistributed", "layer": dense(6, "glu")}

# After glu, layers with weights are built from Keras's symbolic width and fail on the arrays
REFUSED = {
    "Dense": ([dense(6, "glu"), dense(2)], 1),
    "LSTM": ([dense(6, "glu"), LSTM], 1),
    "Bidirectional": ([dense(6, "glu"), {"_target_": "keras.layers.Bidirectional",
                                         "layer": LSTM}], 1),
    "RNN(GRUCell)": ([dense(6, "glu"), {"_target_": "keras.layers.RNN",
                                        "cell": {"_target_": "keras.layers.GRUCell",
                                                 "units": 2}}], 1),
    "Conv1D": ([dense(6, "glu"), {"_target_": "keras.layers.Conv1D", "filters": 2,
                                  "kernel_size": 2}], 1),
    "BatchNormalization": ([dense(6, "glu"), {"_target_": "keras.layers.BatchNormalization"}], 1),
    "TimeDistributed": ([dense(6, "glu"), {"_target_": "keras.layers.TimeDistributed",
                                           "layer": dense(2)}], 1),
    "Dense glu": ([dense(6, "glu"), dense(2, "glu")], 1),
    "Dropout, Dense": ([dense(6, "glu"), DROPOUT, dense(2)], 2),
    "Masking, LSTM": ([dense(6, "glu"), MASKING, LSTM], 2),
    "Lambda(scale), Dense": ([dense(6, "glu"), SCALE, dense(2)], 2),
    "Conv1D glu, LSTM": ([CONV_GLU, LSTM], 1),
    "TimeDistributed glu, Dense": ([TIME_GLU, dense(2)], 1),
}
# ... while these run: (layers, the layers whose symbolic shape Keras gets wrong)
RUN = {
    "Dense glu last": ([LSTM | {"return_sequences": True}, dense(6, "glu")], [1]),
    "Conv1D glu last": ([CONV_GLU], [0]),
    "TimeDistributed glu last": ([TIME_GLU], [0]),
    "Dropout": ([dense(6, "glu"), DROPOUT], [0, 1]),
    "Masking": ([dense(6, "glu"), MASKING], [0, 1]),
    "Lambda(expand), Dense": ([dense(6, "glu"), EXPAND, dense(2)], [0, 1, 2]),
}
SHAPE = (2, 5, 4)


def test_only_the_halving_activations_change_a_shape_and_keras_s_symbolic_shape_ignores_them():
    """vocabulary.HALVING against Keras, for every activation a config may name: on Dense,
    Conv1D and TimeDistributed(Dense), the arrays' last axis is halved by exactly those, while
    the symbolic shape always keeps the units."""
    import keras

    from runner.vocabulary import ACTIVATIONS, HALVING

    x = np.random.default_rng(0).standard_normal(SHAPE).astype("float32")
    for name in ACTIVATIONS:
        for layer in (keras.layers.Dense(6, activation=name),
                      keras.layers.Conv1D(6, 1, activation=name),
                      keras.layers.TimeDistributed(keras.layers.Dense(6, activation=name))):
            symbolic = layer(keras.Input(SHAPE[1:])).shape
            arrays = layer(x).shape
            assert (symbolic[-1], arrays[-1]) == (6, 3 if name in HALVING else 6), (name, layer)


def _keras_predicts(layers: list) -> dict:
    """Keras's arrays for the stack, built layer by layer as a notebook builds it."""
    import keras

    from runner.model import make_layer

    keras.backend.clear_session()
    inputs = keras.Input(SHAPE[1:])
    x = inputs
    for layer_cfg in layers:
        x = make_layer(layer_cfg)(x)
    model = keras.Model(inputs, x)
    return model.predict_on_batch(np.ones(SHAPE, "float32"))


@pytest.mark.parametrize("layers,refused", REFUSED.values(), ids=list(REFUSED))
def test_a_layer_keras_builds_from_a_wrong_symbolic_shape_is_refused_and_fails_in_keras(
        layers, refused):
    with pytest.raises(ConfigError, match=rf"^model\.layers\.{refused}: glu on model\.layers\."):
        plan_stack(layers, SHAPE)
    with pytest.raises(ValueError):  # what the oracle refuses, Keras cannot predict
        _keras_predicts(layers)


@pytest.mark.parametrize("layers,found", RUN.values(), ids=list(RUN))
def test_a_stack_that_only_passes_the_arrays_on_runs_and_its_findings_are_keras_s(
        layers, found):
    """Keras's symbolic shapes and its arrays, layer by layer, as the oracle says."""
    import keras

    from runner.data import make_inputs
    from runner.experiment import check_outputs, predict
    from runner.model import build_model
    from runner.validate import JobSpec

    expected = plan_stack(layers, SHAPE)
    plan = plan_stack(layers, (None, *SHAPE[1:]))
    assert [layer.index for layer in plan.layers if layer.symbolic] == found
    keras.backend.clear_session()
    model, built = build_model(layers, plan, "glu")
    batches = make_inputs(expected, {"batches": 1, "scale": 1.0, "padding": 0.0}, 0)
    predictions = [predict(model, batches[0])[0]]
    spec = JobSpec("glu", "glu", {}, layers, {"inputs": SHAPE}, plan, expected)
    checks = check_outputs(spec, model, built, batches, predictions)
    assert checks["problems"] == [] and checks["oracle.max_abs_err"] <= 1e-5
    assert {k: v.shape for k, v in predictions[0].items()} == expected.outputs
    assert checks["symbolic_findings"] == {
        f"model.layers.{index}": symbolic_finding(plan.layers[index].symbolic,
                                                  expected.layers[index].outputs)
        for index in found}
    assert checks["symbolic_findings"][f"model.layers.{found[0]}"].startswith(
        "Keras's symbolic shape output (None, ")


def test_glu_needs_an_even_width_on_conv1d_as_on_dense():
    with pytest.raises(ConfigError, match=r"^model\.layers\.0\.filters: glu halves the output, so "
                                          r"filters must be even, got 5$"):
        plan_stack([CONV_GLU | {"filters": 5}], SHAPE)


def test_explain_shows_where_keras_s_symbolic_shape_is_not_its_arrays(tmp_path):
    shown = explain(tmp_path, *GLU_LAST)
    assert shown.returncode == 0, shown.stderr
    assert "HEAVY []" in shown.stdout
    assert "2  Dense                output (4, 5)       650" in shown.stdout
    assert shown.stdout.splitlines()[-2:] == [
        f"model.layers.2: {FOUND.format(10, 4, 5)} ({WHY.format(2)})", "HEAVY []"]
    shown = explain(tmp_path, *GLU_BEFORE_LAMBDA)
    assert shown.stdout.splitlines()[-3:] == [
        f"model.layers.3: {FOUND.format(2, 4, 1)} ({WHY.format(3)})",
        f"model.layers.4: {FOUND.format(2, 4, 1)} ({WHY.format(3)})", "HEAVY []"]
    assert list(tmp_path.iterdir()) == []


def _own_stack(tmp_path):
    (tmp_path / "mine" / "model").mkdir(parents=True)
    (tmp_path / "mine" / "model" / "glu_middle.yaml").write_text(GLU_BEFORE_LSTM)
    return "--config-dir=mine", "model=glu_middle"


def test_glu_before_a_layer_with_weights_is_refused_before_any_job(tmp_path, run_cli):
    stack = _own_stack(tmp_path)
    for mode in ("mode=run", "mode=explain"):
        result = run_cli(*stack, mode)
        assert (result.returncode, result.stdout, result.stderr) == (1, "", REFUSAL + "\n")
    result = run_cli("-m", *stack, "model.layers.0.activation=glu,tanh")
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr == ("1 of 2 cells are invalid; no job was started:\n"
                             f"  model=glu_middle model.layers.0.activation=glu: {REFUSAL}\n")
    assert not (tmp_path / "outputs").exists()


@pytest.mark.slow
def test_glu_on_the_last_layer_runs_and_records_keras_s_symbolic_shape(run_cli, client):
    result = run_cli(*GLU_LAST)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith("guide_bidirectional return_sequences=false -> output (4, 5)\n")
    [run] = runs_of(client)
    tags = run.data.tags
    assert run.info.status == "FINISHED"
    assert (tags["shape.output"], tags["expected.output"], tags["shape.match"]) == (
        "(4, 5)", "(4, 5)", "true")
    assert {k: v for k, v in tags.items() if k.startswith("shape.symbolic.")} == {
        "shape.symbolic.model.layers.2": FOUND.format(10, 4, 5)}


@pytest.mark.slow
def test_glu_in_the_middle_before_a_lambda_runs_and_records_both_layers(run_cli, client):
    result = run_cli(*GLU_BEFORE_LAMBDA)
    assert result.returncode == 0, result.stdout + result.stderr
    [run] = runs_of(client)
    tags = run.data.tags
    assert (run.info.status, tags["shape.output"], tags["shape.match"]) == (
        "FINISHED", "(4, 1)", "true")
    assert {k: v for k, v in tags.items() if k.startswith("shape.symbolic.")} == {
        "shape.symbolic.model.layers.3": FOUND.format(2, 4, 1),
        "shape.symbolic.model.layers.4": FOUND.format(2, 4, 1)}
