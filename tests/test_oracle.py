"""The oracle and the NumPy reference against Keras, on random stacks and small graphs
(hypothesis): masks, initial states and stateful batches included."""

import numpy as np
import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from helpers import examples
from runner.errors import ConfigError, StackError
from runner.shapes import plan_model, plan_stack
from runner.validate import JobSpec, validate

CELLS = ("SimpleRNN", "LSTM", "GRU")
# Bounded activations keep a recurrence finite; each of the others is checked on its own below
RECURRENT_ACTIVATIONS = ["tanh", "relu", "softsign", "sigmoid", "hard_sigmoid", "elu", "selu",
                         "gelu", "silu", "mish", "softplus", "hard_tanh", "relu6", "celu"]


@st.composite
def recurrent(draw, units_max=6, last=False, sequences=None):
    """A recurrent layer: plain, over a cell or a list of cells, or Bidirectional."""
    kind = draw(st.sampled_from(CELLS))
    layer = {"units": draw(st.integers(1, units_max)),
             "return_sequences": draw(st.booleans()) if sequences is None else sequences}
    if draw(st.booleans()):
        layer["activation"] = draw(st.sampled_from(RECURRENT_ACTIVATIONS))
    if kind == "GRU":
        layer["reset_after"] = draw(st.booleans())
    form = draw(st.sampled_from(["plain", "plain", "cell", "cells", "bidirectional"]))
    if form == "bidirectional":
        return {"_target_": "keras.layers.Bidirectional",
                "merge_mode": draw(st.sampled_from(["concat", "sum", "mul", "ave"])),
                "layer": {"_target_": f"keras.layers.{kind}",
                          "return_state": draw(st.booleans()) and last, **layer}}
    flags = {k: layer.pop(k) for k in ("return_sequences",)}
    flags["return_state"] = draw(st.booleans()) and last
    flags["go_backwards"] = draw(st.booleans())
    if form == "plain":
        return {"_target_": f"keras.layers.{kind}", **layer, **flags}
    cell = {"_target_": f"keras.layers.{kind}Cell", **layer}
    if form == "cell":
        return {"_target_": "keras.layers.RNN", "cell": cell, **flags}
    second = {"_target_": f"keras.layers.{draw(st.sampled_from(CELLS))}Cell",
              "units": draw(st.integers(1, units_max))}
    return {"_target_": "keras.layers.RNN", "cell": [cell, second], **flags}


@st.composite
def stacks(draw):
    """(layers, {input: shape}, padding): a front (Embedding, Masking, Conv1D or none), 1-3
    recurrent layers, and maybe Dense, TimeDistributed, BatchNormalization or Dropout."""
    batch, timesteps = draw(st.integers(1, 4)), draw(st.integers(2, 9))
    front = draw(st.sampled_from(["none", "embedding", "masking", "conv1d"]))
    layers, padding = [], 0.0
    shape = (batch, timesteps, draw(st.integers(1, 4)))
    if front == "embedding":
        shape = (batch, timesteps)
        layers.append({"_target_": "keras.layers.Embedding", "input_dim": draw(st.integers(2, 20)),
                       "output_dim": draw(st.integers(1, 5)), "mask_zero": draw(st.booleans())})
    elif front == "masking":
        layers.append({"_target_": "keras.layers.Masking"})
    elif front == "conv1d":
        layers.append({"_target_": "keras.layers.Conv1D", "filters": draw(st.integers(1, 4)),
                       "kernel_size": draw(st.integers(1, 3)),
                       "padding": draw(st.sampled_from(["valid", "same", "causal"]))})
    if layers and (layers[0].get("mask_zero") or front == "masking") and draw(st.booleans()):
        padding = draw(st.sampled_from([0.3, 0.6]))
    depth = draw(st.integers(1, 3))
    for index in range(depth):
        last = index == depth - 1
        layers.append(draw(recurrent(last=last, sequences=None if last else True)))
    tail = draw(st.sampled_from(["none", "dense", "time_distributed", "batch_norm", "dropout"]))
    if tail == "dense":
        layers.append({"_target_": "keras.layers.Dense", "units": draw(st.integers(1, 4)),
                       "activation": draw(st.sampled_from([None, "tanh", "softmax"]))})
    elif tail == "time_distributed":
        layers.append({"_target_": "keras.layers.TimeDistributed",
                       "layer": {"_target_": "keras.layers.Dense", "units": 2}})
    elif tail == "batch_norm":
        layers.append({"_target_": "keras.layers.BatchNormalization", "epsilon": 0.01})
    elif tail == "dropout":
        layers.append({"_target_": "keras.layers.Dropout", "rate": 0.5})
    return layers, {"inputs": shape}, padding


@st.composite
def graphs(draw):
    """An encoder whose states start a decoder: two token inputs, masks or not."""
    kind = draw(st.sampled_from(CELLS))
    units, batch = draw(st.integers(1, 5)), draw(st.integers(1, 3))
    masks = draw(st.booleans())
    layers = [
        {"name": "enc_embed", "input": "enc", "_target_": "keras.layers.Embedding",
         "input_dim": 7, "output_dim": 3, "mask_zero": masks},
        {"name": "encoder", "_target_": f"keras.layers.{kind}", "units": units,
         "return_state": True},
        {"name": "dec_embed", "input": "dec", "_target_": "keras.layers.Embedding",
         "input_dim": 9, "output_dim": 2, "mask_zero": masks},
        {"name": "decoder", "_target_": f"keras.layers.{kind}", "units": units,
         "initial_state": "encoder", "return_sequences": draw(st.booleans())},
        {"_target_": "keras.layers.Dense", "units": 2},
    ]
    inputs = {"enc": (batch, draw(st.integers(2, 7))), "dec": (batch, draw(st.integers(2, 7)))}
    return layers, inputs, 0.4 if masks and draw(st.booleans()) else 0.0


@st.composite
def stateful(draw):
    """A stateful layer over 2-3 consecutive batches, a fixed batch, maybe masked."""
    kind = draw(st.sampled_from(CELLS))
    layer = {"_target_": f"keras.layers.{kind}", "units": draw(st.integers(1, 5)),
             "stateful": True, "return_sequences": draw(st.booleans()),
             "return_state": draw(st.booleans())}
    masks = draw(st.booleans())
    layers = ([{"_target_": "keras.layers.Masking"}] if masks else []) + [layer]
    return layers, {"inputs": (draw(st.integers(1, 3)), draw(st.integers(2, 6)), 2)}, (
        0.5 if masks else 0.0), draw(st.integers(2, 3))


def _chain_in_keras(layers: list, shape: tuple) -> None:
    """Call each layer on what the one before returns, as a notebook cell would."""
    import keras

    from runner.model import make_layer

    x = keras.Input(shape=shape[1:], dtype="int32" if len(shape) == 2 else "float32")
    for layer_cfg in layers:
        x = make_layer(layer_cfg)(x)
        x = keras.tree.flatten(x)[0]


def _agree(layers, inputs, padding, seed, batches=1, fixed=False, tolerance=1e-5):
    """Build in Keras, predict every batch, check against the oracle and the reference."""
    import keras

    from runner.data import make_inputs
    from runner.experiment import check_outputs, predict
    from runner.model import build_model

    keras.backend.clear_session()
    keras.utils.set_random_seed(seed)
    try:
        expected = plan_model(layers, inputs)
    except StackError:
        event("refused by the oracle")  # what the oracle refuses, Keras refuses too
        with pytest.raises(Exception):
            _chain_in_keras(layers, next(iter(inputs.values())))
        return
    event(f"built, padding {padding}, {batches} batches")
    plan = plan_model(layers, {k: (v[0] if fixed else None, *v[1:]) for k, v in inputs.items()})
    spec = JobSpec("random", "random", {}, layers, inputs, plan, expected)
    data = {"batches": batches, "scale": 1.0, "padding": padding}
    batch_list = make_inputs(expected, data, seed)
    model, built = build_model(layers, plan, "random", seed=seed)  # as a run draws them
    predictions = [predict(model, batch)[0] for batch in batch_list]
    checks = check_outputs(spec, model, built, batch_list, predictions)
    assert checks["problems"] == []
    assert {k: tuple(v.shape) for k, v in predictions[0].items()} == expected.outputs
    assert model.count_params() == expected.param_count
    assert checks["oracle.max_abs_err"] <= tolerance


@settings(max_examples=examples(60))
@given(stacks(), st.integers(0, 2**16))
def test_oracle_and_reference_agree_with_keras_on_stacks(stack, seed):
    layers, inputs, padding = stack
    _agree(layers, inputs, padding, seed)


@settings(max_examples=examples(24))
@given(graphs(), st.integers(0, 2**16))
def test_oracle_and_reference_agree_with_keras_on_graphs(graph, seed):
    layers, inputs, padding = graph
    _agree(layers, inputs, padding, seed)


@settings(max_examples=examples(18))
@given(stateful(), st.integers(0, 2**16))
def test_stateful_layers_carry_their_states_as_keras_does(case, seed):
    layers, inputs, padding, batches = case
    _agree(layers, inputs, padding, seed, batches=batches, fixed=True)


def test_every_activation_is_kerass():
    """Each activation a config may name, the NumPy definition against Keras's own."""
    import keras

    from runner.equations import ACTIVATIONS
    from runner.vocabulary import ACTIVATIONS as NAMES

    x = np.linspace(-4.0, 4.0, 64).reshape(4, 16)
    for name in NAMES:
        if name == "sparsemax":
            continue  # below: Keras 3.15 computes it wrongly
        want = keras.ops.convert_to_numpy(keras.activations.get(name)(x.astype("float32")))
        np.testing.assert_allclose(ACTIVATIONS[name](x), want, atol=2e-6, rtol=2e-6,
                                   err_msg=name)


def test_sparsemax_is_the_projection_onto_the_simplex_where_keras_3_15_is_not():
    """Keras 3.15's sparsemax sums the cumulative sums over the whole support where the
    definition takes the one at its edge: its outputs do not sum to 1 once two or more inputs
    are in the support. The reference keeps the definition, so a run that names sparsemax
    ends FAILED with Keras's error in oracle.max_abs_err rather than passing it on."""
    import keras

    from runner.equations import ACTIVATIONS

    x = np.array([[0.5, 0.1, -1.0], [1.0, 2.0, 3.0]])
    np.testing.assert_allclose(ACTIVATIONS["sparsemax"](x), [[0.7, 0.3, 0.0], [0.0, 0.0, 1.0]])
    assert np.allclose(ACTIVATIONS["sparsemax"](np.random.default_rng(0).normal(size=(5, 7)))
                       .sum(axis=-1), 1.0)
    kerass = keras.ops.convert_to_numpy(keras.activations.sparsemax(x.astype("float32")))
    np.testing.assert_allclose(kerass, [[0.45, 0.05, 0.0], [0.0, 0.0, 1.0]], atol=1e-6)


def test_notebook_bidirectional_cell_with_states(make_cfg):
    from runner.data import make_inputs
    from runner.experiment import predict
    from runner.model import build_model

    cfg = make_cfg("model=bilstm", "return_state=true")
    spec = validate(cfg)
    notebook = {"output": (4, 6), "forward_h": (4, 3), "forward_c": (4, 3),
                "backward_h": (4, 3), "backward_c": (4, 3)}
    assert spec.expected.outputs == notebook
    model, _ = build_model(spec.layers, spec.plan, spec.name)
    [batch] = make_inputs(spec.expected, spec.config["data"], spec.seed)
    outputs, _ = predict(model, batch)
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
    ({"_target_": "keras.layers.RNN", "cell": [
        {"_target_": "keras.layers.LSTMCell", "units": 5},
        {"_target_": "keras.layers.GRUCell", "units": 3}]},
     4 * 5 * (2 + 5 + 1) + 3 * 3 * (5 + 3 + 2)),
    ({"_target_": "keras.layers.Dense", "units": 5}, 2 * 5 + 5),
    ({"_target_": "keras.layers.TimeDistributed",
      "layer": {"_target_": "keras.layers.Dense", "units": 5}}, 2 * 5 + 5),
    ({"_target_": "keras.layers.BatchNormalization"}, 4 * 2),
    ({"_target_": "keras.layers.BatchNormalization", "center": False}, 3 * 2),
    ({"_target_": "keras.layers.Conv1D", "filters": 4, "kernel_size": 3}, 3 * 2 * 4 + 4),
    ({"_target_": "keras.layers.Lambda", "function": "scale", "arguments": {"factor": 2}}, 0),
])
def test_parameter_formulas(layer, params):
    assert plan_stack([layer], (4, 30, 2)).param_count == params


def test_embedding_and_its_mask():
    plan = plan_stack([{"_target_": "keras.layers.Embedding", "input_dim": 50, "output_dim": 8,
                        "mask_zero": True},
                       {"_target_": "keras.layers.LSTM", "units": 3, "return_sequences": True},
                       {"_target_": "keras.layers.Dense", "units": 2}], (4, 30))
    assert plan.param_count == 50 * 8 + 4 * 3 * (8 + 3 + 1) + 3 * 2 + 2
    assert plan.outputs == {"output": (4, 30, 2)} and plan.masked == {"output"}
    assert plan.tokens == {"inputs": 50}


@pytest.mark.parametrize("layers,shape,message", [
    ([{"_target_": "keras.layers.LSTM", "units": 2, "return_sequences": True},
      {"_target_": "keras.layers.Embedding", "input_dim": 9, "output_dim": 2}], (4, 30, 1),
     "model.layers.1: Embedding takes token ids, but reads the floats of model.layers.0"),
    ([{"_target_": "keras.layers.LSTM", "units": 2, "input": "nowhere"}], (4, 30, 1),
     "model.layers.0.input: 'nowhere' is neither a model input nor a layer's name"),
    ([{"_target_": "keras.layers.LSTM", "units": 2, "name": "a", "input": "b"},
      {"_target_": "keras.layers.LSTM", "units": 2, "name": "b", "input": "a"}], (4, 30, 1),
     "a cycle between layers: a -> b -> a; a layer reads a model input or a layer before it"),
    ([{"_target_": "keras.layers.Dense", "units": 2, "name": "d"},
      {"_target_": "keras.layers.LSTM", "units": 2, "initial_state": "d"}], (4, 30, 1),
     "model.layers.1.initial_state: layer 'd' returns no states; set return_state: true on it"),
    ([{"_target_": "keras.layers.GRU", "units": 3, "name": "e", "return_state": True,
       "return_sequences": True},
      {"_target_": "keras.layers.LSTM", "units": 3, "initial_state": "e"}], (4, 30, 1),
     "model.layers.1.initial_state: layer 'e' gives states of sizes [3]; LSTM here keeps 2 of "
     "sizes [3, 3]: start it from a layer that keeps 2 states, as LSTM does"),
])
def test_graph_mistakes_are_refused_naming_the_key(layers, shape, message):
    with pytest.raises(ConfigError) as refusal:
        plan_stack(layers, shape)
    assert str(refusal.value).startswith(message) or message in str(refusal.value)


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
    from runner.cudnn import cudnn_eligible

    assert cudnn_eligible(layer) is eligible
