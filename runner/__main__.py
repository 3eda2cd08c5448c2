"""python -m runner: one job per config; `-m` sweeps a grid, one MLflow parent per sweep."""

import os
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from runner.identity import job_name
from runner.schema import register_schema

register_schema()


def _leave_no_files(hydra_cfg) -> None:
    from runner.artifacts import remove_directory

    remove_directory(Path(hydra_cfg.runtime.output_dir), Path(hydra_cfg.runtime.cwd))


def _refuse(hydra_cfg, line) -> None:
    """One line on stderr, exit code 1, and nothing left behind."""
    _leave_no_files(hydra_cfg)
    print(line, file=sys.stderr)
    sys.exit(1)


def explain(cfg: DictConfig, hydra_cfg, multirun: bool):
    """Print the oracle's table for this config; no TensorFlow, no store, no files."""
    from runner.errors import ConfigError
    from runner.explain import explain_config

    _leave_no_files(hydra_cfg)
    try:
        explained = explain_config(cfg, job_name(hydra_cfg.job), hydra_cfg.overrides.task)
    except ConfigError as error:
        _refuse(hydra_cfg, error)
    print(explained.text, flush=True)
    if not explained.ok and not multirun:
        sys.exit(1)
    return explained


def run(cfg: DictConfig, hydra_cfg, multirun: bool):
    """Make inputs, build, predict, check, record; print the notebook's line."""
    from runner.errors import ConfigError
    from runner.validate import checked, validate

    spec = checked(hydra_cfg.overrides.task) if multirun else None  # as its sweep checked it
    try:
        spec = spec or validate(cfg, hydra_cfg.overrides.task)  # before any run or TensorFlow
    except ConfigError as error:
        _refuse(hydra_cfg, error)  # one line, starting with the key
    if cfg.resume is not None and not multirun:  # a sweep's jobs never see it (runner_sweeper)
        _refuse(hydra_cfg, f"resume: only a sweep resumes; add -m: python -m runner -m ... "
                           f"resume={cfg.resume}")
    if not multirun:  # a sweep looked before its first job; a job of it waits out a fault
        from runner.recording.local_faults import start_refusal
        from runner.recording.requests import Tracking

        refused = start_refusal(Tracking.from_config(spec.config["tracking"]))
        if refused is not None:  # a store or journal that cannot be written
            _refuse(hydra_cfg, f"error: {refused}; no run was recorded")
    from runner.cost import long_job_line

    if spec.cost is not None and (line := long_job_line(spec.cost, spec.config["data"])):
        print(line, file=sys.stderr, flush=True)  # before anything starts
    from runner.job import RunIdentity, run_job
    from runner.signals import Interrupted
    from runner.recording.requests import PARENT_RUN_ENV
    identity = RunIdentity(
        name=job_name(hydra_cfg.job),
        job_num=int(hydra_cfg.job.num) if multirun else 0,
        choices={k: str(v) for k, v in hydra_cfg.runtime.choices.items()
                 if not k.startswith("hydra/")},
        output_dir=Path(hydra_cfg.runtime.output_dir),
        parent_id=os.environ.get(PARENT_RUN_ENV) if multirun else None)
    try:
        outcome = run_job(spec, identity)
    except Interrupted as stopped:
        if not multirun:  # a sweep says what it recorded of all its cells (runner_sweeper)
            print(_stopped_line(stopped, spec), flush=True)
        raise
    if multirun:
        return outcome  # the sweep prints it and settles its recording (runner_sweeper)
    if outcome.run.exception() is not None:  # the store refused the run before it began
        from runner.recording.client import recording_process

        recording_process().close(wait=True)  # its journal, empty, goes: no folder is left
        _refuse(hydra_cfg, f"error: {outcome.run.exception()}; no run was recorded")
    report = outcome.report()
    print(report.line, flush=True)
    from runner.recording.server import RecordsWaiting

    if isinstance(outcome.recorded.exception(), RecordsWaiting):  # how many, where, the command
        print(f"error: {outcome.recorded.exception()}", file=sys.stderr, flush=True)
        from runner.recording.client import recording_process

        recording_process().close(wait=True)  # its journal let go: the sync may take it
    if outcome.recorded.exception() is None:  # else it is not recorded (yet): not said to be
        from runner.report import recorded_lines

        print("\n".join(recorded_lines(outcome.tracking.uri, outcome.tracking.experiment,
                                       outcome.run.result())), flush=True)
    if not report.ok:
        sys.exit(1)
    return report


def _stopped_line(stopped, spec) -> str:
    """`stopped (SIGINT received ...): run ID KILLED in outputs/mlflow.db`, or why no run."""
    from runner.recording.requests import Tracking
    from runner.report import store_name

    tracking = Tracking.from_config(spec.config["tracking"])
    try:
        run_id = stopped.run.result(timeout=30).run_id
    except Exception as error:
        return f"stopped ({stopped}): no run recorded ({type(error).__name__}: {error})"
    return f"stopped ({stopped}): run {run_id} KILLED in {store_name(tracking.uri)}"


# conf/ at the top of the repository ships inside the package as `runner.conf` (pyproject.toml)
@hydra.main(version_base="1.3", config_path="pkg://runner.conf", config_name="config")
def main(cfg: DictConfig):
    """One job; in a sweep its outcome goes back to the sweeper from wherever it ran."""
    from runner.console import quiet_libraries

    quiet_libraries(cfg.verbose)
    hydra_cfg = HydraConfig.get()
    multirun = hydra_cfg.mode == RunMode.MULTIRUN
    if not multirun:  # a sweep checks its own and each cell's choices (runner_sweeper)
        from hydra.core.global_hydra import GlobalHydra

        from runner.refusals import unknown_option

        refusal = unknown_option(hydra_cfg.runtime.choices, GlobalHydra.instance().config_loader())
        if refusal is not None:
            _refuse(hydra_cfg, refusal)
    if cfg.mode == "explain":  # a sweep explains its cells itself (runner_sweeper)
        return explain(cfg, hydra_cfg, multirun)
    return run(cfg, hydra_cfg, multirun)


if __name__ == "__main__":
    from runner.cli import launch

    launch(main)
