"""Hydra callback: one MLflow parent run per multirun, created before any job starts."""

import sys
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, open_dict, read_write

from runner.tracking import PARENT_RUN_ENV, URI_ENV


class SweepRun(Callback):
    """Opens the store and the parent run; hands both to every job through `hydra.job.env_set`."""

    def __init__(self) -> None:
        self.parent_id = None
        self.explain = False
        self.invalid = []  # explain-mode cells that cannot be built

    def on_job_end(self, config: DictConfig, job_return: Any, **kwargs: Any) -> None:
        if self.explain and job_return.return_value is False:
            self.invalid.append(config.hydra.job.override_dirname)

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        self.explain = config.mode == "explain"
        if self.explain:
            return
        from runner import tracking

        HydraConfig.instance().set_config(config)  # so `${hydra:runtime.cwd}` resolves here too
        uri = tracking.tracking_uri(config.tracking)
        name = " ".join(config.hydra.overrides.task) or "multirun"
        self.parent_id = tracking.start_sweep(
            config.tracking, name, {"sweep.dir": config.hydra.sweep.dir, "sweep.overrides": name}
        )
        # Every job, in this process or a worker elsewhere, is composed from these overrides:
        # the parent's id and the store travel with the job's config, not through global state.
        with read_write(config.hydra.overrides), open_dict(config.hydra.overrides):
            config.hydra.overrides.hydra.append(f"++hydra.job.env_set.{PARENT_RUN_ENV}={self.parent_id}")
            config.hydra.overrides.hydra.append(f"++hydra.job.env_set.{URI_ENV}='{uri}'")

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        if self.explain and self.invalid:
            print(f"{len(self.invalid)} cells cannot be built: " + "; ".join(self.invalid),
                  file=sys.stderr)
            sys.exit(1)
        if self.explain or self.parent_id is None:
            return
        from runner import tracking
        from runner.report import summary_table

        rows = tracking.finish_sweep(config.tracking, self.parent_id)
        print(summary_table(rows), flush=True)
        failed = [row for row in rows if row["status"] != "FINISHED"]
        if failed:
            print(f"{len(failed)} of {len(rows)} jobs failed: "
                  + "; ".join(row["overrides"] for row in failed), file=sys.stderr)
            sys.exit(1)
