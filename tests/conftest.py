"""Compose configs like the CLI does, and run the CLI in a subprocess against a tmp store."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from runner.schema import register_schema

CONF = Path(__file__).resolve().parents[1] / "conf"
register_schema()


@pytest.fixture
def make_cfg(tmp_path):
    """compose(overrides) -> the job config, its store in tmp_path."""

    def _make(*overrides):
        with initialize_config_dir(version_base="1.3", config_dir=str(CONF)):
            return compose("config", overrides=[f"tracking.uri=sqlite:///{tmp_path}/mlflow.db",
                                                *overrides])

    return _make


@pytest.fixture
def store_uri(tmp_path):
    return f"sqlite:///{tmp_path}/mlflow.db"


@pytest.fixture
def run_cli(tmp_path, store_uri):
    """Run `python -m runner ARGS` in tmp_path with its own store and output dirs."""

    def _run(*args, env=None, timeout=300):
        command = [sys.executable, "-m", "runner", *args,
                   f"hydra.run.dir={tmp_path}/outputs/run",
                   f"hydra.sweep.dir={tmp_path}/outputs/multirun"]
        full_env = {**os.environ, "MLFLOW_TRACKING_URI": store_uri, "TF_CPP_MIN_LOG_LEVEL": "2",
                    **(env or {})}
        return subprocess.run(command, cwd=tmp_path, env=full_env, capture_output=True,
                               text=True, timeout=timeout)

    return _run


@pytest.fixture
def client(store_uri):
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=store_uri)


def runs_of(client, experiment="rnn-shapes"):
    """Every run of the experiment, oldest first."""
    experiment_id = client.get_experiment_by_name(experiment).experiment_id
    return sorted(client.search_runs([experiment_id], max_results=1000),
                  key=lambda run: run.info.start_time)
