"""Hydra's private names that the runner uses (runner/hydra_internals.py),
and CPython's exit sequence (runner/cli.py): each fails here, loudly, if a release changes it."""

import atexit
import inspect
import threading

from hydra.core.utils import JobReturn, JobStatus

from runner import hydra_internals


def test_the_basic_sweeper_still_has_what_the_grid_sweeper_builds_on():
    sweeper = hydra_internals.BasicSweeper
    for name in ("setup", "sweep", "split_arguments", "_parse_config", "validate_batch_is_legal"):
        assert callable(getattr(sweeper, name)), name
    assert list(inspect.signature(sweeper.setup).parameters) == [
        "self", "hydra_context", "task_function", "config"]
    assert sweeper(max_batch_size=2).max_batch_size == 2  # the grid sweeper launches by itself


def test_a_launcher_numbers_its_jobs_from_the_first_it_is_given():
    """A resumed sweep launches each run of consecutive cells with its own first job number."""
    from hydra.plugins.launcher import Launcher

    assert list(inspect.signature(Launcher.launch).parameters) == [
        "self", "job_overrides", "initial_job_idx"]


def test_the_basic_launcher_is_known_as_the_one_that_runs_jobs_here():
    from hydra._internal.core_plugins.basic_launcher import BasicLauncher

    assert hydra_internals.jobs_run_here(BasicLauncher())
    assert not hydra_internals.jobs_run_here(object())


def test_a_failed_jobs_exception_is_read_without_raising_it():
    job = JobReturn(status=JobStatus.FAILED, _return_value=RuntimeError("cell 7"))
    assert str(hydra_internals.returned(job)) == "cell 7"
    ok = JobReturn(status=JobStatus.COMPLETED, _return_value={"ok": True})
    assert hydra_internals.returned(ok) == {"ok": True}


def test_a_composed_config_is_served_once_with_the_sweeps_environment(tmp_path):
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig

    from helpers import CONF

    with initialize_config_dir(version_base="1.3", config_dir=str(CONF)):
        loader = GlobalHydra.instance().config_loader()
        from hydra.types import RunMode

        master = loader.load_configuration("config", ["hydra.mode=MULTIRUN"], RunMode.MULTIRUN)
        HydraConfig.instance().set_config(master)
        cell = ("model=gru",)
        composed = loader.load_sweep_config(master, list(cell))
        HydraConfig.instance().set_config(composed)  # locks its hydra node, as the check does
        served = hydra_internals.ComposedOnce(loader, {cell: composed}, {"RUNNER_X": "1"})
        config = served.load_sweep_config(master, list(cell))
        assert config is composed and config.model.name == "gru"
        assert config.hydra.job.env_set.RUNNER_X == "1"
        again = served.load_sweep_config(master, list(cell))  # composed afresh the second time
        assert again is not composed and again.model.name == "gru"


def test_the_interpreter_exit_sequence_the_cli_repeats_is_there():
    assert callable(threading._shutdown) and callable(atexit._run_exitfuncs)


def test_the_sweeper_is_registered_by_name_whatever_the_install():
    from hydra.core.plugins import Plugins

    from runner.cli import register_sweeper

    register_sweeper()
    name = "hydra_plugins.runner_sweeper.grid_sweeper.GridSweeper"
    assert Plugins.instance().class_name_to_class[name].__name__ == "GridSweeper"
