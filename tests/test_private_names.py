"""The private names the runner uses (runner/private_names.py), and the public Hydra API its
sweeper builds on: each fails here, loudly, if a release changes it."""

import atexit
import inspect
import json
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from helpers import CONF, ROOT, run_script


def test_the_interpreter_exit_sequence_the_cli_repeats_is_there():
    assert callable(threading._shutdown) and callable(atexit._run_exitfuncs)


def test_the_runner_names_no_private_name_of_hydra():
    found = subprocess.run(["grep", "-rnE", r"hydra\._internal|_return_value", "runner",
                            "hydra_plugins"], cwd=ROOT, capture_output=True, text=True)
    assert found.stdout == ""


def test_the_sweeper_is_a_public_hydra_sweeper_registered_by_name_whatever_the_install():
    from hydra.core.plugins import Plugins
    from hydra.plugins.sweeper import Sweeper

    from runner.cli import register_sweeper

    register_sweeper()
    name = "hydra_plugins.runner_sweeper.grid_sweeper.GridSweeper"
    sweeper = Plugins.instance().class_name_to_class[name]
    assert sweeper.__name__ == "GridSweeper" and issubclass(sweeper, Sweeper)
    assert list(inspect.signature(Sweeper.setup).parameters) == [
        "self", "hydra_context", "task_function", "config"]


def test_a_launcher_numbers_its_jobs_from_the_first_it_is_given():
    """A resumed sweep launches each run of consecutive cells with its own first job number."""
    from hydra.plugins.launcher import Launcher

    assert list(inspect.signature(Launcher.launch).parameters) == [
        "self", "job_overrides", "initial_job_idx"]


def test_the_grid_is_every_combination_in_hydras_order():
    from hydra.core.override_parser.overrides_parser import OverridesParser

    from hydra_plugins.runner_sweeper.composing import split_arguments

    overrides = OverridesParser.create().parse_overrides(
        ["model=lstm,gru", "seed=range(0,3)", "+data.padding=0.5"])
    cells = split_arguments(overrides, None)
    assert cells == [[("model=lstm", "seed=0", "+data.padding=0.5"),
                      ("model=lstm", "seed=1", "+data.padding=0.5"),
                      ("model=lstm", "seed=2", "+data.padding=0.5"),
                      ("model=gru", "seed=0", "+data.padding=0.5"),
                      ("model=gru", "seed=1", "+data.padding=0.5"),
                      ("model=gru", "seed=2", "+data.padding=0.5")]]
    assert [len(batch) for batch in split_arguments(overrides, 4)] == [4, 2]


def test_a_job_return_reaches_the_sweeper_as_a_job_report():
    """Every launcher hands back `JobReturn`s; the sweeper reads them with the public
    `return_value`, and a job Hydra could not run is a failed report, not an exception."""
    from hydra.core.utils import JobReturn, JobStatus
    from omegaconf import OmegaConf

    from hydra_plugins.runner_sweeper.tasks import job_report
    from runner.recording.requests import JobReport

    hydra_cfg = OmegaConf.create({"hydra": {"job": {"num": 7, "override_dirname": "seed=7"}}})
    done = JobReport(7, "seed=7", True, "seed=7 -> output (4, 3)")
    ok = JobReturn(status=JobStatus.COMPLETED, hydra_cfg=hydra_cfg)
    ok.return_value = done
    assert job_report(ok) is done
    failed = JobReturn(status=JobStatus.FAILED, hydra_cfg=hydra_cfg)
    failed.return_value = OSError("no space left on device")
    assert job_report(failed) == JobReport(7, "seed=7", False,
                                        "seed=7 -> FAILED: OSError: no space left on device")


def test_a_cell_is_served_from_its_base_with_the_sweeps_environment_here_and_in_a_worker():
    """The launcher's loader composes a cell from the bases the grid was checked with; pickled
    to a worker (joblib, submitit) it takes them along, and composes nothing with Hydra."""
    import pickle

    from hydra import initialize_config_dir
    from hydra.core.config_loader import ConfigLoader
    from hydra.core.global_hydra import GlobalHydra
    from hydra.types import RunMode
    from omegaconf import OmegaConf

    from runner.composition import GridComposer, PrecomposedConfigLoader

    class NoComposing:  # Hydra's loader, in a worker that must not compose
        def __getattr__(self, name):
            raise AssertionError(f"Hydra's loader asked for {name}")

    with initialize_config_dir(version_base="1.3", config_dir=str(CONF)):
        loader = GlobalHydra.instance().config_loader()
        master = loader.load_configuration("config", ["hydra.mode=MULTIRUN"], RunMode.MULTIRUN)
        cell = ["model=gru", "seed=3"]
        hydras = loader.load_sweep_config(master, cell)
        composer = GridComposer(loader, master)
        composer.compose(["model=gru", "seed=1"])  # the grid's check composed the base
        served = PrecomposedConfigLoader(loader)
        assert isinstance(served, ConfigLoader)
        assert served.get_group_options("model") == loader.get_group_options("model")
        served.serve(composer, {"RUNNER_X": "1"})
        config = served.load_sweep_config(master, cell)
        assert config.model.name == "gru" and config.seed == 3
        assert config.hydra.job.env_set.RUNNER_X == "1"
        assert config.hydra.job.override_dirname == hydras.hydra.job.override_dirname
        worker = pickle.loads(pickle.dumps(served))
        worker.loader = worker.composer.loader = NoComposing()
        again = worker.load_sweep_config(master, cell)
        assert OmegaConf.to_yaml(again) == OmegaConf.to_yaml(config)


def test_the_package_ships_its_configs_as_runner_conf():
    from importlib.resources import files

    conf = files("runner.conf")
    assert (conf / "config.yaml").is_file() and (conf / "model" / "bilstm.yaml").is_file()
    assert Path(str(conf / "config.yaml")).read_text() == (CONF / "config.yaml").read_text()
    assert sys.modules["runner.conf"].__name__ == "runner.conf"


# A masked LSTM on JAX started from h = 0.5, its first step masked: Keras's own loop, then the
# runner's correction (runner.private_names.masked_steps_output_zeros_on_jax). Prints the first
# step's output of row 0 both ways, and the second (unmasked) step's difference.
JAX_LEADING_MASK = """
import json
import os
os.environ["KERAS_BACKEND"] = "jax"
import keras
import numpy as np
from keras.src import backend
from runner.private_names import masked_steps_output_zeros_on_jax

layer = keras.layers.LSTM(2, return_sequences=True, kernel_initializer="ones",
                          recurrent_initializer="ones")
x = keras.ops.ones((1, 3, 2))
kwargs = {"mask": keras.ops.convert_to_tensor(np.array([[False, True, True]])),
          "initial_state": [keras.ops.full((1, 2), 0.5), keras.ops.full((1, 2), 0.5)]}
before = keras.ops.convert_to_numpy(layer(x, **kwargs))
masked_steps_output_zeros_on_jax()
masked_steps_output_zeros_on_jax()  # once only
assert backend.rnn.__wrapped__.__module__ == "keras.src.backend.jax.rnn"
after = keras.ops.convert_to_numpy(layer(x, **kwargs))
print(json.dumps([before[0, 0].tolist(), after[0, 0].tolist(),
                  float(np.abs(after[0, 1:] - before[0, 1:]).max())]))
"""


@pytest.mark.slow
def test_keras_on_jax_still_outputs_the_starting_state_at_a_leading_masked_step(tmp_path):
    """When Keras's JAX loop starts its previous output at zeros as TensorFlow's does, this
    fails: the correction in runner/private_names.py is then to go."""
    process = run_script(tmp_path, JAX_LEADING_MASK)
    assert process.returncode == 0, process.stderr[-2000:]
    before, after, later = json.loads(process.stdout.splitlines()[-1])
    assert (before, after, later) == ([0.5, 0.5], [0.0, 0.0], 0.0)
