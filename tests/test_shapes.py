"""Every stack x return_sequences: the notebook's table, from the oracle and from Keras."""

import numpy as np
import pytest

from runner.errors import StackError
from runner.shapes import plan_stack
from runner.validate import validate

# The notebook's printed shapes (B=4, T=30, D=1, U=3; 20 units in the Lambda stack)
NOTEBOOK = {
    ("simple_rnn", False): (4, 3),
    ("simple_rnn", True): (4, 30, 3),
    ("lstm", False): (4, 3),
    ("lstm", True): (4, 30, 3),
    ("bilstm", False): (4, 6),
    ("bilstm", True): (4, 30, 6),
    ("gru", False): (4, 3),
    ("gru", True): (4, 30, 3),
    ("lambda_lstm", False): (4, 1),
    ("lambda_lstm", True): (4, 30, 1),
}
PARAMS = {"simple_rnn": 15, "lstm": 60, "bilstm": 120, "gru": 54,
          "lambda_lstm": 4 * 20 * (1 + 20 + 1) + 4 * 20 * (20 + 20 + 1) + 21}


@pytest.mark.parametrize("model,sequences", sorted(NOTEBOOK))
def test_every_stack_has_the_notebooks_shape(make_cfg, model, sequences):
    from runner.data import make_inputs
    from runner.experiment import predict
    from runner.model import build_model

    cfg = make_cfg(f"model={model}", f"return_sequences={str(sequences).lower()}")
    spec = validate(cfg)
    assert spec.expected.outputs == {"output": NOTEBOOK[model, sequences]}
    assert spec.plan.param_count == PARAMS[model]

    model_, _ = build_model(spec.layers, spec.plan, spec.name)
    [batch] = make_inputs(spec.expected, spec.config["data"], spec.seed)
    outputs, _ = predict(model_, batch)
    assert {k: v.shape for k, v in outputs.items()} == {"output": NOTEBOOK[model, sequences]}
    assert model_.count_params() == PARAMS[model]


def test_lambda_stack_is_the_notebooks_cell(make_cfg):
    from runner.data import make_inputs
    from runner.model import build_model

    cfg = make_cfg("model=lambda_lstm")
    spec = validate(cfg)
    assert spec.input_shape == (4, 30)  # 2-D input, as randn(B, T) * 100
    assert cfg.data.scale == 100.0
    assert spec.plan.input_shape == (None, None)  # any number of timesteps
    assert [layer.label for layer in spec.plan.layers] == [
        "Lambda(expand_last_axis)", "LSTM", "LSTM", "Dense", "Lambda(scale)"]
    [batch] = make_inputs(spec.expected, spec.config["data"], spec.seed)
    inputs = batch["inputs"]
    assert 30 < np.std(inputs) < 300
    model, _ = build_model(spec.layers, spec.plan, spec.name)
    assert model(inputs[:, :7])["output"].shape == (4, 1)  # other lengths work too


def test_a_built_model_loads_back_in_safe_mode(make_cfg, tmp_path):
    import keras

    from runner.data import make_inputs
    from runner.model import build_model

    cfg = make_cfg("model=lambda_lstm")
    spec = validate(cfg)
    model, _ = build_model(spec.layers, spec.plan, spec.name)
    [batch] = make_inputs(spec.expected, spec.config["data"], spec.seed)
    inputs = batch["inputs"]
    model.save(tmp_path / "lambda_lstm.keras")
    loaded = keras.saving.load_model(tmp_path / "lambda_lstm.keras", safe_mode=True)
    np.testing.assert_array_equal(loaded(inputs)["output"], model(inputs)["output"])


def test_inner_layer_without_sequences_is_refused_with_its_key(make_cfg):
    cfg = make_cfg("model=lambda_lstm", "model.layers.1.return_sequences=false")
    refusal = validate(cfg).refusal
    assert isinstance(refusal, StackError)
    assert str(refusal) == ("model.layers.2: LSTM needs a 3-D input (batch, timesteps, features), "
                            "gets (4, 20); set model.layers.1.return_sequences=true")


def test_same_seed_same_inputs_other_seed_other_inputs():
    from runner.data import make_inputs

    plan = plan_stack([{"_target_": "keras.layers.LSTM", "units": 2}], (4, 30, 1))
    data = {"batches": 1, "scale": 1.0, "padding": 0.0}
    [a] = make_inputs(plan, data, 0)
    np.testing.assert_array_equal(a["inputs"], make_inputs(plan, data, 0)[0]["inputs"])
    assert not np.array_equal(a["inputs"], make_inputs(plan, data, 1)[0]["inputs"])


def test_token_ids_keep_zero_for_the_padding_at_each_rows_end():
    from runner.data import make_inputs

    plan = plan_stack([{"_target_": "keras.layers.Embedding", "input_dim": 5, "output_dim": 2,
                        "mask_zero": True}], (4, 10))
    [batch] = make_inputs(plan, {"batches": 1, "scale": 1.0, "padding": 0.5}, 0)
    ids = batch["inputs"]
    assert ids.dtype == np.int32 and ids.min() >= 0 and ids.max() < 5
    lengths = [int(np.count_nonzero(row)) for row in ids]
    assert lengths == [9, 8, 7, 5]  # floor(0.5 * 10 * (i + 1) / 4) steps of padding, at the end
    assert all(not row[length:].any() for row, length in zip(ids, lengths))


def test_several_batches_for_a_stateful_stack():
    from runner.data import make_inputs

    plan = plan_stack([{"_target_": "keras.layers.LSTM", "units": 2}], (4, 30, 1))
    batches = make_inputs(plan, {"batches": 3, "scale": 1.0, "padding": 0.0}, 0)
    assert len(batches) == 3 and not np.array_equal(batches[0]["inputs"], batches[1]["inputs"])


def test_output_picture_is_drawn(tmp_path):
    from runner.plots import grid_figure, output_over_time

    output_over_time(np.zeros((4, 30, 3)), "lstm return_sequences=true", tmp_path / "o.png")
    assert (tmp_path / "o.png").read_bytes()[:4] == b"\x89PNG"
    rows = [{"model": "lstm", "return_sequences": "true", "status": "FINISHED",
             "shape.output": "(4, 30, 3)", "overrides": "model=lstm"},
            {"model": "gru", "return_sequences": "false", "status": "FAILED",
             "shape.output": "", "overrides": "model=gru"}]
    figure = grid_figure(rows)
    texts = [t.get_text() for t in figure.texts if t.get_gid() == "shape"]
    assert texts == ["(4, 30, 3)", "FAILED"]


@pytest.mark.parametrize("first,hint", [
    ({"_target_": "keras.layers.LSTM", "units": 2}, "+model.layers.0.return_sequences=true"),
    ({"_target_": "keras.layers.LSTM", "units": 2, "return_sequences": False},
     "model.layers.0.return_sequences=true"),
    ({"_target_": "keras.layers.Bidirectional", "layer": {"_target_": "keras.layers.GRU",
                                                          "units": 2}},
     "+model.layers.0.layer.return_sequences=true"),
])
def test_the_hint_is_what_to_type(first, hint):
    """`+` where the model file does not set the key: Hydra refuses a plain override of it."""
    from runner.shapes import plan_stack

    with pytest.raises(StackError) as refusal:
        plan_stack([first, {"_target_": "keras.layers.LSTM", "units": 2}], (4, 30, 1))
    assert str(refusal.value).endswith(f"; set {hint}")
