"""The private names the runner uses (runner/private_names.py), and the public Hydra API its
sweeper builds on: each fails here, loudly, if a release changes it."""

import atexit
import inspect
import subprocess
import sys
import threading
from pathlib import Path

from helpers import CONF, ROOT


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


def test_a_composed_config_is_served_once_with_the_sweeps_environment():
    import pickle

    from hydra import initialize_config_dir
    from hydra.core.config_loader import ConfigLoader
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    from hydra_plugins.runner_sweeper.composing import PrecomposedConfigLoader

    with initialize_config_dir(version_base="1.3", config_dir=str(CONF)):
        loader = GlobalHydra.instance().config_loader()
        master = loader.load_configuration("config", ["hydra.mode=MULTIRUN"], RunMode.MULTIRUN)
        HydraConfig.instance().set_config(master)
        cell = ("model=gru",)
        composed = loader.load_sweep_config(master, list(cell))
        HydraConfig.instance().set_config(composed)  # locks its hydra node, as the check does
        served = PrecomposedConfigLoader(loader)
        assert isinstance(served, ConfigLoader)
        assert served.get_group_options("model") == loader.get_group_options("model")
        served.serve({cell: composed}, {"RUNNER_X": "1"})
        config = served.load_sweep_config(master, list(cell))
        assert config is composed and config.model.name == "gru"
        assert config.hydra.job.env_set.RUNNER_X == "1"
        again = served.load_sweep_config(master, list(cell))  # composed afresh the second time
        assert again is not composed and again.model.name == "gru"
        assert type(pickle.loads(pickle.dumps(served))) is type(loader)  # to a worker: Hydra's


def test_the_package_ships_its_configs_as_runner_conf():
    from importlib.resources import files

    conf = files("runner.conf")
    assert (conf / "config.yaml").is_file() and (conf / "model" / "bilstm.yaml").is_file()
    assert Path(str(conf / "config.yaml")).read_text() == (CONF / "config.yaml").read_text()
    assert sys.modules["runner.conf"].__name__ == "runner.conf"
