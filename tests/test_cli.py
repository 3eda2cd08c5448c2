"""User stories, each through `python -m runner` in a subprocess, read back with MlflowClient."""

import importlib.metadata
import json

import numpy as np
import pytest

from helpers import runs_of

DEVICE_TAGS = ("device.kind", "device.name", "device.count", "tensorflow.version",
               "keras.version", "python.version")
ARTIFACTS = ["config.yaml", "device.json", "model_summary.txt", "output_over_time.png",
             "predictions.npz", "shapes.json"]


@pytest.mark.fresh_store
@pytest.mark.slow
def test_one_bilstm_run_is_recorded_whole(run_cli, client, tmp_path, make_cfg):
    from runner.identity import config_sha256
    from runner.validate import validate

    result = run_cli("model=bilstm", "return_sequences=true")
    assert result.returncode == 0, result.stderr
    [run] = runs_of(client)
    run_id, experiment_id = run.info.run_id, run.info.experiment_id
    # a quiet console: the result, where it was recorded, the address that opens it
    assert result.stderr == ""
    assert result.stdout.splitlines() == [
        "bilstm return_sequences=true -> output (4, 30, 6)",
        f"recorded: run {run_id} in outputs/mlflow.db, experiment rnn-shapes",
        f"  http://127.0.0.1:5000/#/experiments/{experiment_id}/runs?workflowType=machine_learning"
        f"&searchFilter=attributes.run_id%20%3D%20%27{run_id}%27   (make ui serves it)"]

    tags, params, metrics = run.data.tags, run.data.params, run.data.metrics
    assert run.info.status == "FINISHED"
    assert run.info.run_name == "model=bilstm,return_sequences=true"
    assert tags["shape.input"] == "(4, 30, 1)"
    assert tags["shape.output"] == "(4, 30, 6)"
    assert tags["shapes"] == "output (4, 30, 6)"
    assert "knobs.unused" not in tags
    assert tags["shape.match"] == "true"
    assert len(tags["predictions.sha256"]) == 64
    assert tags["device.kind"] in ("CPU", "GPU")
    assert all(tags[t] for t in DEVICE_TAGS)
    assert tags["tensorflow.version"] == importlib.metadata.version("tensorflow")
    assert "mlflow.parentRunId" not in tags
    # its config's digest, as any process computes it (a resumed sweep compares them)
    config = validate(make_cfg("model=bilstm", "return_sequences=true")).config
    assert tags["config.sha256"] == config_sha256(config)

    # every leaf of the resolved config, flattened, plus the config-group choices
    assert params["model"] == "bilstm" and params["data"] == "default"
    assert params["model.layers.0._target_"] == "keras.layers.Bidirectional"
    assert params["model.layers.0.layer.units"] == "3"
    assert params["model.layers.0.layer.return_sequences"] == "true"  # as typed, as in tags
    assert params["return_sequences"] == "true" and params["model.name"] == "bilstm"
    assert params["data.batch_size"] == "4" and params["data.timesteps"] == "30"
    assert params["merge_mode"] == "concat"

    assert metrics["param_count"] == 120
    assert 0 < metrics["job.seconds"] < 60
    assert metrics["predict.min_seconds"] <= metrics["predict.median_seconds"]
    assert metrics["memory.peak_rss_mb"] > 100 and metrics["model.weights_bytes"] == 120 * 4
    assert metrics["output.abs_max"] >= metrics["output.std"] > 0
    assert metrics["oracle.max_abs_err"] < 1e-5

    names = sorted(a.path for a in client.list_artifacts(run.info.run_id))
    assert names == ARTIFACTS
    local = client.download_artifacts(run.info.run_id, "", str(tmp_path / "down"))
    shapes = json.loads(open(f"{local}/shapes.json").read())
    assert shapes["inputs"] == {"inputs": [4, 30, 1]} and shapes["batches"] == 1
    assert shapes["outputs"] == {"output": [4, 30, 6]} and shapes["masked_outputs"] == []
    assert shapes["layers"][0]["output_shapes"] == {"output": [None, 30, 6]}
    assert shapes["layers"][0]["param_count"] == 120
    assert shapes["layers"][0]["cudnn_eligible"] is True  # Keras's defaults allow the kernel
    assert tags["cudnn.used"] == str(tags["device.kind"] == "GPU").lower()
    assert tags["cuda.visible_devices"]
    with np.load(f"{local}/predictions.npz") as npz:
        assert npz["input"].shape == (4, 30, 1) and npz["output"].shape == (4, 30, 6)
    assert json.loads(open(f"{local}/device.json").read())["device.kind"] == tags["device.kind"]
    assert "Bidirectional" in open(f"{local}/model_summary.txt").read()
    assert "return_sequences: true" in open(f"{local}/config.yaml").read()


@pytest.mark.slow
def test_same_config_in_three_processes_gives_the_same_predictions(run_cli, client):
    for _ in range(3):  # the same config again never trips MLflow's write-once params either
        assert run_cli("model=gru", "seed=7").returncode == 0
    digests = {run.data.tags["predictions.sha256"] for run in runs_of(client)}
    assert len(digests) == 1
    assert {run.info.status for run in runs_of(client)} == {"FINISHED"}
    assert run_cli("model=gru", "seed=8").returncode == 0
    assert runs_of(client)[3].data.tags["predictions.sha256"] not in digests


def test_unknown_model_lists_the_choices(run_cli):
    result = run_cli("model=transformer")
    assert result.returncode == 1
    assert result.stderr == ("model: no stack named 'transformer'; available: bilstm, gru, "
                             "guide_bidirectional, guide_cells, guide_embedding_lstm, "
                             "guide_encoder_decoder, guide_gru_simple_rnn, guide_stateful, "
                             "lambda_lstm, lstm, simple_rnn\n")


@pytest.mark.slow
def test_merge_mode_none_names_both_directions_in_the_shapes_tag(make_cfg, tmp_path):
    """Bidirectional without a merge returns the two directions apart: `shapes` says both."""
    from runner.experiment import run_experiment
    from runner.validate import validate

    spec = validate(make_cfg("model=bilstm", "merge_mode=none", "return_sequences=true"))
    result = run_experiment(spec, tmp_path / "artifacts")
    assert result.error is None, result.error.line
    assert result.label == "bilstm return_sequences=true merge_mode=none"
    assert result.tags["shapes"] == "forward_output (4, 30, 3), backward_output (4, 30, 3)"
    assert result.outputs == {"forward_output": (4, 30, 3), "backward_output": (4, 30, 3)}


def test_hydras_whole_story_when_the_user_asks_for_it(run_cli):
    quiet = run_cli("merge_mode=concatenate")
    full = run_cli("merge_mode=concatenate", env={"HYDRA_FULL_ERROR": "1"})
    assert quiet.stderr == ("merge_mode: 'concatenate' is not one of concat, sum, mul, ave, none "
                            "(did you mean concat?)\n")
    assert full.returncode == 1
    assert "Traceback (most recent call last)" in full.stderr
    assert "Error merging override merge_mode=concatenate" in full.stderr


def test_a_key_not_in_the_model_file_gets_the_plus_hint_from_the_command_line(run_cli):
    result = run_cli("model.layers.0.unroll=true")
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr == ("model.layers.0.unroll: not set in the model file; add it with "
                             "+model.layers.0.unroll=true\n")
