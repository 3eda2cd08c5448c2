"""python -m runner: one job per config; `-m` sweeps a grid, one MLflow parent per sweep."""

import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from runner.schema import register_schema

register_schema()


def _run_name(hydra_cfg) -> str:
    return hydra_cfg.job.override_dirname or "defaults"


def explain(cfg: DictConfig) -> dict:
    """Print the oracle's table for this config; no TensorFlow, no store."""
    from runner.report import explain_table
    from runner.shapes import ConfigError, StackError
    from runner.spec import job_spec
    from runner.validate import validate

    name = _run_name(HydraConfig.get())
    try:
        validate(cfg)
        spec = job_spec(cfg)
    except (ConfigError, StackError) as error:
        line = f"{name} -> invalid: {error}"
        print(line)
        return {"ok": False, "line": line}
    print(explain_table(f"{spec.label}  [{name}]", spec.expected))
    return {"ok": True, "line": f"{name} -> {spec.label}"}


def run(cfg: DictConfig) -> dict:
    """Make inputs, build, predict, check, record; print the notebook's line."""
    from runner.shapes import ConfigError
    from runner.validate import validate

    try:
        validate(cfg)  # before any run is created or TensorFlow imported
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(1)
    from runner.job import run_job

    hydra_cfg = HydraConfig.get()
    choices = {k: str(v) for k, v in hydra_cfg.runtime.choices.items() if not k.startswith("hydra/")}
    tags = {"job.num": str(hydra_cfg.job.num) if hydra_cfg.mode == RunMode.MULTIRUN else "0"}
    outcome = run_job(cfg, _run_name(hydra_cfg), tags, choices,
                      Path(hydra_cfg.runtime.output_dir), cfg.tolerance)
    print(outcome.line, flush=True)
    return {"ok": outcome.error is None, "line": outcome.line}


@hydra.main(version_base="1.3", config_path="../conf", config_name="config")
def main(cfg: DictConfig) -> dict:
    """One job; its result ({ok, line}) goes back to the sweeper from wherever it ran."""
    result = explain(cfg) if cfg.mode == "explain" else run(cfg)
    if not result["ok"] and HydraConfig.get().mode != RunMode.MULTIRUN:
        sys.exit(1)
    return result  # a sweep's exit code is decided once every job has run (runner_sweeper)


if __name__ == "__main__":
    main()
