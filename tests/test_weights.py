"""Weights drawn in NumPy from the seed (runner/weights.py): the same whatever Keras drew, near
Keras's own defaults. On TensorFlow, JAX and PyTorch the same numbers give the same
predictions: tests/test_backends.py."""

import numpy as np
import pytest

from runner.shapes import plan_stack
from runner.weights import draw_weights

# Every layer of the allowlist that holds trainable weights, each kind of weight among them
EVERY_WEIGHT = [
    {"_target_": "keras.layers.Embedding", "input_dim": 20, "output_dim": 4},
    {"_target_": "keras.layers.Conv1D", "filters": 3, "kernel_size": 2},   # (B, 5, 3)
    {"_target_": "keras.layers.Bidirectional",                              # (B, 5, 6)
     "layer": {"_target_": "keras.layers.GRU", "units": 3, "return_sequences": True}},
    {"_target_": "keras.layers.RNN", "return_sequences": True,              # (B, 5, 2)
     "cell": [{"_target_": "keras.layers.LSTMCell", "units": 4},
              {"_target_": "keras.layers.SimpleRNNCell", "units": 2}]},
    {"_target_": "keras.layers.BatchNormalization"},
    {"_target_": "keras.layers.TimeDistributed",                            # (B, 5, 2)
     "layer": {"_target_": "keras.layers.Dense", "units": 2}},
]


def _built(layers: list, keras_seed: int, shape=(2, 6), precision: str = "float32") -> dict:
    """{index: Keras layer} of a model built after keras.utils.set_random_seed(keras_seed)."""
    from runner.model import build_model
    from runner.session import fresh_session

    fresh_session(keras_seed, False, precision)
    _, built = build_model(layers, plan_stack(layers, shape), "weights")
    return built


def _weights(built: dict) -> dict:
    """{variable path without the layer's own name: its values}, comparable across models."""
    return {f"{index}/{variable.path.split('/', 1)[1]}": np.asarray(variable.numpy())
            for index, layer in built.items() for variable in layer.weights}


def test_the_same_seed_draws_the_same_weights_whatever_keras_drew():
    first, second = _built(EVERY_WEIGHT, keras_seed=1), _built(EVERY_WEIGHT, keras_seed=2)
    kerass = _weights(first)["0/embeddings"], _weights(second)["0/embeddings"]
    assert not np.array_equal(*kerass)  # Keras's own initializers followed their seeds
    draw_weights(first, EVERY_WEIGHT, seed=7)
    draw_weights(second, EVERY_WEIGHT, seed=7)
    drawn, again = _weights(first), _weights(second)
    assert list(drawn) == list(again) and len(drawn) == 21
    for path in drawn:
        np.testing.assert_array_equal(drawn[path], again[path], err_msg=path)


def test_another_seed_draws_every_trainable_weight_anew():
    first, second = _built(EVERY_WEIGHT, keras_seed=0), _built(EVERY_WEIGHT, keras_seed=0)
    draw_weights(first, EVERY_WEIGHT, seed=7)
    draw_weights(second, EVERY_WEIGHT, seed=8)
    trainable = {f"{index}/{variable.path.split('/', 1)[1]}"
                 for index, layer in first.items() for variable in layer.trainable_weights}
    assert len(trainable) == 19
    drawn, other = _weights(first), _weights(second)
    assert {path for path in drawn if not np.array_equal(drawn[path], other[path])} == trainable


def test_non_trainable_weights_keep_kerass_constants():
    built = _built(EVERY_WEIGHT, keras_seed=0)
    draw_weights(built, EVERY_WEIGHT, seed=7)
    weights = _weights(built)
    np.testing.assert_array_equal(weights["4/moving_mean"], np.zeros(2))
    np.testing.assert_array_equal(weights["4/moving_variance"], np.ones(2))


def test_each_weight_is_drawn_from_kerass_default_family_biases_not_zero():
    built = _built(EVERY_WEIGHT, keras_seed=0)
    draw_weights(built, EVERY_WEIGHT, seed=7)
    weights = _weights(built)
    biases = {path: w for path, w in weights.items() if path.endswith(("/bias", "/beta"))}
    assert len(biases) == 7
    for path, bias in biases.items():
        assert np.all(bias != 0) and np.all(np.abs(bias) <= 0.1), path
    assert np.all(np.abs(weights["4/gamma"] - 1) <= 0.1) and np.all(weights["4/gamma"] != 1)
    assert np.all(np.abs(weights["0/embeddings"]) <= 0.05)
    # Glorot uniform: a Conv1D kernel (kernel_size 2, in 4, out 3) counts each tap
    assert np.max(np.abs(weights["1/kernel"])) <= np.sqrt(6 / (2 * 4 + 2 * 3))
    # Orthogonal: a recurrent kernel (units, gates * units) has orthonormal rows
    recurrent = weights["2/forward_gru/gru_cell/recurrent_kernel"]
    assert recurrent.shape == (3, 9)
    np.testing.assert_allclose(recurrent @ recurrent.T, np.eye(3), atol=1e-6)
    assert not np.array_equal(recurrent, weights["2/backward_gru/gru_cell/recurrent_kernel"])


def test_a_weight_whose_initializer_the_config_names_keeps_it():
    layers = [{"_target_": "keras.layers.GRU", "units": 3,
               "kernel_initializer": {"_target_": "keras.initializers.Constant", "value": 0.5}}]
    built = _built(layers, keras_seed=0, shape=(2, 6, 4))
    draw_weights(built, layers, seed=7)
    kernel, recurrent, bias = built[0].get_weights()
    np.testing.assert_array_equal(kernel, 0.5)
    assert np.all(bias != 0)  # the others drawn


def test_a_model_built_with_its_seed_holds_the_drawn_weights_and_the_named_initializers():
    """build_model(seed=) builds with zeros where the draw replaces Keras's initializers: the
    same weights as Keras's initializers drawn over, and a named initializer kept."""
    from runner.model import build_model
    from runner.session import fresh_session
    from runner.weights import undrawn

    layers = [*EVERY_WEIGHT[:3], {**EVERY_WEIGHT[3], "cell": [
        {**EVERY_WEIGHT[3]["cell"][0], "bias_initializer": "ones"}, EVERY_WEIGHT[3]["cell"][1]]},
        *EVERY_WEIGHT[4:]]
    over = _built(layers, keras_seed=0)
    draw_weights(over, layers, seed=7)
    fresh_session(0, False, "float32")
    _, seeded = build_model(layers, plan_stack(layers, (2, 6)), "weights", seed=7)
    drawn, built = _weights(over), _weights(seeded)
    assert list(drawn) == list(built)
    for path in drawn:
        np.testing.assert_array_equal(drawn[path], built[path], err_msg=path)
    np.testing.assert_array_equal(built["3/stacked_rnn_cells/lstm_cell/bias"], 1.0)
    assert undrawn(layers[3])["cell"][0]["bias_initializer"] == "ones"
    assert undrawn(layers[3])["cell"][1]["recurrent_initializer"] == "zeros"
    assert undrawn(layers[2])["layer"]["kernel_initializer"] == "zeros"
    assert undrawn(layers[4])["beta_initializer"] == "zeros"
    assert "moving_mean_initializer" not in undrawn(layers[4])  # not drawn: Keras's constant
    assert undrawn({"_target_": "keras.layers.Masking"}) == {"_target_": "keras.layers.Masking"}


@pytest.mark.parametrize("precision", ["mixed_float16", "mixed_bfloat16"])
def test_mixed_precision_keeps_float32_variables_set_to_the_drawn_numbers(precision):
    import keras

    float32 = _built(EVERY_WEIGHT, keras_seed=0)
    draw_weights(float32, EVERY_WEIGHT, seed=7)
    try:
        mixed = _built(EVERY_WEIGHT, keras_seed=0, precision=precision)
        draw_weights(mixed, EVERY_WEIGHT, seed=7)
    finally:
        keras.mixed_precision.set_dtype_policy("float32")  # for the tests after this one
    assert {str(v.dtype) for layer in mixed.values() for v in layer.weights} == {"float32"}
    want, got = _weights(float32), _weights(mixed)
    assert list(got) == list(want)
    for path in want:
        np.testing.assert_array_equal(got[path], want[path], err_msg=path)

