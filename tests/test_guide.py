"""Keras's guide "Working with RNNs", model by model, as config: each runs with the defaults,
passes its checks, and has the output shape and parameter count Keras reports for it."""

import json

import numpy as np
import pytest

from helpers import runs_of
from runner.validate import validate

GUIDE = {  # model -> (output shape at the defaults, Keras's parameter count for the guide's model)
    "guide_embedding_lstm": ((4, 10), 164106),
    "guide_gru_simple_rnn": ((4, 10), 361866),
    "guide_encoder_decoder": ((4, 10), 258698),
    "guide_bidirectional": ((4, 10), 80266),
    "guide_cells": ((4, 10), 24714),
    "guide_stateful": ((4, 64), 29440),
}


def _run(make_cfg, tmp_path, *overrides):
    """The job's experiment in this process: built, predicted, checked."""
    from runner.experiment import run_experiment

    result = run_experiment(validate(make_cfg(*overrides)), tmp_path / "artifacts")
    assert result.error is None, result.error.line
    return result


@pytest.mark.parametrize("model", sorted(GUIDE))
def test_every_guide_model_runs_with_the_defaults_and_passes_its_checks(make_cfg, tmp_path,
                                                                         model):
    shape, params = GUIDE[model]
    spec = validate(make_cfg(f"model={model}"))
    assert spec.expected.outputs == {"output": shape}
    assert spec.plan.param_count == params
    result = _run(make_cfg, tmp_path, f"model={model}")
    assert result.outputs == {"output": shape}
    assert result.metrics["param_count"] == params
    assert result.tags["shape.match"] == "true" and result.metrics["oracle.max_abs_err"] <= 1e-5


@pytest.mark.parametrize("sequences,masked", [("false", None), ("true", "output")])
def test_a_masked_run_passes_its_reference_check(make_cfg, tmp_path, sequences, masked):
    result = _run(make_cfg, tmp_path, "model=guide_embedding_lstm",
                  "model.layers.0.mask_zero=true", "data.padding=0.5",
                  f"return_sequences={sequences}")
    assert result.tags.get("mask.outputs") == masked
    with np.load(tmp_path / "artifacts" / "predictions.npz") as npz:
        ids = npz["input"]
    assert [int(np.count_nonzero(row)) for row in ids] == [27, 23, 19, 15]  # padded ends
    shapes = json.loads((tmp_path / "artifacts" / "shapes.json").read_text())
    assert shapes["layers"][0]["masked"] == ["output"]


def test_a_stateful_run_carries_its_states_over_three_batches(make_cfg, tmp_path):
    result = _run(make_cfg, tmp_path, "model=guide_stateful", "data.batches=3")
    assert result.tags["batches"] == "3, states carried"
    with np.load(tmp_path / "artifacts" / "predictions.npz") as npz:
        assert npz["input"].shape == (3, 4, 10, 50) and npz["output"].shape == (3, 4, 64)


def test_initializers_are_objects_with_arguments(make_cfg, tmp_path):
    from runner.model import build_model

    constant = "{_target_:keras.initializers.Constant,value:0.5}"
    spec = validate(make_cfg("model=gru", f"+model.layers.0.kernel_initializer={constant}",
                             "+model.layers.0.activation=elu"))
    model, built = build_model(spec.layers, spec.plan, spec.name)
    np.testing.assert_array_equal(built[0].get_weights()[0], 0.5)
    _run(make_cfg, tmp_path, "model=gru", f"+model.layers.0.kernel_initializer={constant}",
         "+model.layers.0.activation=elu")


@pytest.mark.slow
def test_the_encoder_decoder_from_the_command_line(run_cli, client):
    shown = run_cli("model=guide_encoder_decoder", "mode=explain")
    [decoder] = [line.split() for line in shown.stdout.splitlines() if line.startswith("3 ")]
    assert " ".join(decoder) == ("3 LSTM decoder decoder_embedding, states of encoder "
                                 "output (4, 64) 33024 3.9e06 129.0 KiB 1.0 KiB")
    result = run_cli("model=guide_encoder_decoder")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0] == (
        "guide_encoder_decoder return_sequences=false -> output (4, 10)")
    [run] = runs_of(client)
    assert run.data.tags["shape.input.encoder_tokens"] == "(4, 30)"
    assert run.data.tags["shape.input.decoder_tokens"] == "(4, 30)"
    assert run.data.params["model.layers.3.initial_state"] == "encoder"
    assert run.data.metrics["param_count"] == 258698
