"""The oracle and the NumPy reference against Keras, on random small stacks (hypothesis)."""

import pytest
from hypothesis import event, given
from hypothesis import strategies as st

from runner.errors import StackError
from runner.shapes import plan_stack
from runner.validate import JobSpec, validate

CELLS = ("SimpleRNN", "LSTM", "GRU")


@st.composite
def stacks(draw):
    """(layers, input_shape): 1-3 recurrent layers, plain or Bidirectional, optional Dense."""
    cell = draw(st.sampled_from(CELLS))
    depth = draw(st.integers(1, 3))
    layers = []
    for index in range(depth):
        last = index == depth - 1
        layer = {
            "_target_": f"keras.layers.{cell}",
            "units": draw(st.integers(1, 8)),
            "return_sequences": draw(st.booleans()),
            "return_state": draw(st.booleans()) if last else False,
        }
        if cell == "GRU":
            layer["reset_after"] = draw(st.booleans())
        if draw(st.booleans()):
            layer["go_backwards"] = True
        if draw(st.booleans()):
            layer["activation"] = draw(st.sampled_from(["tanh", "relu", "softsign"]))
        if draw(st.booleans()):
            merge_mode = draw(st.sampled_from(["concat", "sum", "mul", "ave", "none"]))
            layer = {"_target_": "keras.layers.Bidirectional", "merge_mode": merge_mode,
                     "layer": layer}
        layers.append(layer)
    if draw(st.booleans()):
        layers.append({"_target_": "keras.layers.Dense", "units": draw(st.integers(1, 4)),
                       "activation": draw(st.sampled_from([None, "tanh", "sigmoid"]))})
    shape = (draw(st.integers(1, 4)), draw(st.integers(1, 12)), draw(st.integers(1, 5)))
    return layers, shape


def _chain_in_keras(layers: list, shape: tuple) -> None:
    """Call each layer on what the one before returns, as a notebook cell would."""
    import keras

    from runner.model import make_layer

    x = keras.Input(shape=shape[1:])
    for layer_cfg in layers:
        x = make_layer(layer_cfg)(x)


@given(stacks(), st.integers(0, 2**16))
def test_oracle_and_reference_agree_with_keras(stack, seed):
    import keras

    from runner.data import make_inputs
    from runner.experiment import check_outputs, predict
    from runner.model import build_model

    layers, shape = stack
    keras.backend.clear_session()
    keras.utils.set_random_seed(seed)
    inputs = make_inputs(shape, 1.0, seed)
    try:
        expected = plan_stack(layers, shape)
    except StackError:
        event("refused by the oracle")  # what the oracle refuses, Keras refuses too
        with pytest.raises(Exception):
            _chain_in_keras(layers, shape)
        return
    event("built")
    plan = plan_stack(layers, (None, *shape[1:]))
    spec = JobSpec("random", "random", {}, layers, shape, plan, expected)
    model = build_model(layers, plan, "random")
    outputs, _ = predict(model, inputs)
    checks = check_outputs(spec, model, inputs, outputs)
    assert checks["problems"] == []
    assert {k: tuple(v.shape) for k, v in outputs.items()} == expected.outputs
    assert model.count_params() == expected.param_count
    assert checks["oracle.max_abs_err"] <= 1e-5


def test_notebook_bidirectional_cell_with_states(make_cfg):
    import numpy as np

    from runner.data import make_inputs
    from runner.experiment import predict
    from runner.model import build_model

    cfg = make_cfg("model=bilstm", "return_state=true")
    spec = validate(cfg)
    notebook = {"output": (4, 6), "forward_h": (4, 3), "forward_c": (4, 3),
                "backward_h": (4, 3), "backward_c": (4, 3)}
    assert spec.expected.outputs == notebook
    model = build_model(spec.layers, spec.plan, spec.name)
    outputs, _ = predict(model, make_inputs(spec.input_shape, cfg.data.scale, cfg.seed))
    assert {k: v.shape for k, v in outputs.items()} == notebook
    # the last step of each direction is its final hidden state, concatenated
    np.testing.assert_allclose(outputs["output"],
                               np.concatenate([outputs["forward_h"], outputs["backward_h"]], -1))


@pytest.mark.parametrize("merge_mode,output", [
    ("concat", {"output": (4, 30, 6)}), ("sum", {"output": (4, 30, 3)}),
    ("mul", {"output": (4, 30, 3)}), ("ave", {"output": (4, 30, 3)}),
    ("none", {"forward_output": (4, 30, 3), "backward_output": (4, 30, 3)}),
])
def test_merge_modes(make_cfg, merge_mode, output):
    spec = validate(make_cfg("model=bilstm", "return_sequences=true", f"merge_mode={merge_mode}"))
    assert spec.expected.outputs == output


@pytest.mark.parametrize("model,states", [
    ("simple_rnn", {"state_h": (4, 3)}), ("gru", {"state_h": (4, 3)}),
    ("lstm", {"state_h": (4, 3), "state_c": (4, 3)}),
    ("lambda_lstm", {"state_h": (4, 20), "state_c": (4, 20)}),
])
def test_states_of_the_output_layer(make_cfg, model, states):
    spec = validate(make_cfg(f"model={model}", "return_state=true"))
    assert list(spec.expected.outputs) == ["output", *states]
    assert {k: spec.expected.outputs[k] for k in states} == states


@pytest.mark.parametrize("layer,params", [
    ({"_target_": "keras.layers.SimpleRNN", "units": 5}, 5 * (2 + 5 + 1)),
    ({"_target_": "keras.layers.LSTM", "units": 5}, 4 * 5 * (2 + 5 + 1)),
    ({"_target_": "keras.layers.GRU", "units": 5}, 3 * 5 * (2 + 5 + 2)),
    ({"_target_": "keras.layers.GRU", "units": 5, "reset_after": False}, 3 * 5 * (2 + 5 + 1)),
    ({"_target_": "keras.layers.Bidirectional", "layer": {"_target_": "keras.layers.LSTM",
                                                          "units": 5}}, 2 * 4 * 5 * (2 + 5 + 1)),
    ({"_target_": "keras.layers.Dense", "units": 5}, 2 * 5 + 5),
    ({"_target_": "keras.layers.Lambda", "function": "scale", "arguments": {"factor": 2}}, 0),
])
def test_parameter_formulas(layer, params):
    assert plan_stack([layer], (4, 30, 2)).param_count == params


def test_inner_states_are_refused_with_the_key():
    layers = [{"_target_": "keras.layers.LSTM", "units": 2, "return_sequences": True,
               "return_state": True},
              {"_target_": "keras.layers.LSTM", "units": 2}]
    with pytest.raises(StackError, match=r"^model.layers.0.return_state: only the last"):
        plan_stack(layers, (4, 30, 1))


def test_unknown_timesteps_stay_unknown():
    layers = [{"_target_": "keras.layers.Lambda", "function": "expand_last_axis"},
              {"_target_": "keras.layers.GRU", "units": 4, "return_sequences": True}]
    assert plan_stack(layers, (None, None)).outputs == {"output": (None, None, 4)}


@pytest.mark.parametrize("layer,eligible", [
    ({"_target_": "keras.layers.LSTM", "units": 2}, True),
    ({"_target_": "keras.layers.GRU", "units": 2}, True),
    ({"_target_": "keras.layers.GRU", "units": 2, "reset_after": False}, False),
    ({"_target_": "keras.layers.LSTM", "units": 2, "activation": "relu"}, False),
    ({"_target_": "keras.layers.LSTM", "units": 2, "recurrent_dropout": 0.1}, False),
    ({"_target_": "keras.layers.LSTM", "units": 2, "unroll": True}, False),
    ({"_target_": "keras.layers.LSTM", "units": 2, "use_bias": False}, False),
])
def test_cudnn_eligibility_follows_keras_rules(layer, eligible):
    from runner.shapes import cudnn_eligible

    assert cudnn_eligible(layer) is eligible
