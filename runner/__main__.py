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


def explain(cfg: DictConfig, name: str) -> dict:
    """Print the oracle's table for this config; no TensorFlow, no store, no files."""
    from runner.errors import ConfigError
    from runner.report import explain_table
    from runner.validate import validate

    _leave_no_files(HydraConfig.get())
    try:
        spec = validate(cfg, HydraConfig.get().overrides.task)
    except ConfigError as error:
        error_line = f"{name} -> invalid: {error}"
        print(error_line)
        return {"ok": False, "line": error_line}
    if spec.refusal is not None:
        print(f"{name} -> invalid: {spec.refusal}")
        return {"ok": False, "line": f"{name} -> invalid: {spec.refusal}"}
    print(explain_table(f"{spec.label}  [{name}]", spec.expected))
    return {"ok": True, "line": f"{name} -> {spec.label}"}


def run(cfg: DictConfig, hydra_cfg, multirun: bool):
    """Make inputs, build, predict, check, record; print the notebook's line."""
    from runner.errors import ConfigError
    from runner.validate import validate

    try:
        spec = validate(cfg, hydra_cfg.overrides.task)  # before any run or TensorFlow
    except ConfigError as error:
        _leave_no_files(hydra_cfg)
        print(error, file=sys.stderr)  # one line, starting with the key
        sys.exit(1)
    if cfg.resume is not None and not multirun:  # a sweep's jobs never see it (runner_sweeper)
        _leave_no_files(hydra_cfg)
        print(f"resume: only a sweep resumes; add -m: python -m runner -m ... "
              f"resume={cfg.resume}", file=sys.stderr)
        sys.exit(1)
    from runner.job import RunIdentity, run_job
    from runner.recording.requests import PARENT_RUN_ENV
    identity = RunIdentity(
        name=job_name(hydra_cfg.job),
        job_num=int(hydra_cfg.job.num) if multirun else 0,
        choices={k: str(v) for k, v in hydra_cfg.runtime.choices.items()
                 if not k.startswith("hydra/")},
        output_dir=Path(hydra_cfg.runtime.output_dir),
        parent_id=os.environ.get(PARENT_RUN_ENV) if multirun else None)
    outcome = run_job(spec, identity)
    if multirun:
        return outcome  # the sweep prints it and settles its recording (runner_sweeper)
    report = outcome.report()
    print(report.line, flush=True)
    if outcome.run.exception() is None:
        from runner.report import recorded_lines

        print("\n".join(recorded_lines(outcome.tracking.uri, outcome.tracking.experiment,
                                       outcome.run.result())), flush=True)
    if not report.ok:
        sys.exit(1)
    return report


@hydra.main(version_base="1.3", config_path="../conf", config_name="config")
def main(cfg: DictConfig):
    """One job; in a sweep its outcome goes back to the sweeper from wherever it ran."""
    from runner.console import quiet_libraries

    quiet_libraries(cfg.verbose)
    hydra_cfg = HydraConfig.get()
    multirun = hydra_cfg.mode == RunMode.MULTIRUN
    if cfg.mode == "explain":
        result = explain(cfg, job_name(hydra_cfg.job))
        if not result["ok"] and not multirun:
            sys.exit(1)
        return result
    return run(cfg, hydra_cfg, multirun)


if __name__ == "__main__":
    from runner.cli import launch

    launch(main)
