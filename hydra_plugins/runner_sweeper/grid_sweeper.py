"""The runner's sweeper: Hydra's basic grid, validated whole, recorded under one MLflow parent."""

import sys
import time
from typing import Any, List, Sequence

from hydra._internal.core_plugins.basic_launcher import BasicLauncher
from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.utils import JobReturn, JobStatus
from hydra.errors import ConfigCompositionException
from omegaconf import OmegaConf, open_dict

from runner.signals import Interrupted, interruptible, signal_received, signals_raise
from runner.validate import validate


class _WithProgress:
    """The task function, followed by a progress line (n/N, elapsed, ETA) after each job."""

    def __init__(self, task_function) -> None:
        self.task_function = task_function
        self.total = 0
        self.started = time.time()

    def __call__(self, cfg):
        try:
            return self.task_function(cfg)
        finally:
            if self.total:
                from hydra.core.hydra_config import HydraConfig

                from runner.report import progress_line

                done = HydraConfig.get().job.num + 1
                print(progress_line(done, self.total, time.time() - self.started,
                                    sys.stdout.isatty()), flush=True)


class _Collecting:
    """The configured launcher, keeping every job's report as its batch comes back."""

    def __init__(self, launcher) -> None:
        self.launcher = launcher
        self.returns: List[JobReturn] = []

    def launch(self, job_overrides, initial_job_idx: int) -> Sequence[JobReturn]:
        results = self.launcher.launch(job_overrides, initial_job_idx=initial_job_idx)
        self.returns.extend(results)
        return results

    def __getattr__(self, name: str) -> Any:
        return getattr(self.launcher, name)


class _ComposedOnce:
    """The config loader, answering the launcher with the configs the sweeper composed and
    checked up front (each cell once: composing one costs about 75 ms), given the sweep's
    environment. Pickled to a worker process, it is the plain loader again."""

    def __init__(self, loader, composed: dict, env: dict) -> None:
        self.loader, self.composed, self.env = loader, composed, env

    def load_sweep_config(self, master_config, sweep_overrides):
        config = self.composed.pop(tuple(sweep_overrides), None)
        if config is None:
            return self.loader.load_sweep_config(master_config, sweep_overrides)
        OmegaConf.set_readonly(config.hydra, None)  # as composed: HydraConfig had locked it
        with open_dict(config.hydra):
            config.hydra.overrides.hydra = list(master_config.hydra.overrides.hydra)
            config.hydra.job.env_set.update(self.env)
        OmegaConf.copy_cache(from_config=master_config, to_config=config)  # ${now:} as the sweep's
        return config

    def __getattr__(self, name: str) -> Any:
        return getattr(self.loader, name)

    def __reduce__(self):
        return _plain_loader, (self.loader,)


def _plain_loader(loader):
    return loader


def _job_report(job: JobReturn) -> dict:
    """{job, overrides, ok, line} from a job's return, whichever process or machine ran it."""
    hydra_job = job.hydra_cfg.hydra.job
    if job.status == JobStatus.COMPLETED and isinstance(job._return_value, dict):
        ok, line = job._return_value["ok"], job._return_value["line"]
    else:
        error = job._return_value
        ok, line = False, f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"
    return {"job": int(hydra_job.num), "overrides": hydra_job.override_dirname or "defaults",
            "ok": ok, "line": line}


class GridSweeper(BasicSweeper):
    """Every cell is composed before any job starts (one error lists every bad cell); then the
    parent run is opened, the jobs are launched by whichever launcher is configured, and the
    parent is closed with the summary of all jobs, even when some of them failed."""

    def setup(self, *, hydra_context, task_function, config) -> None:
        self.progress = _WithProgress(task_function)
        super().setup(hydra_context=hydra_context, task_function=self.progress, config=config)
        self.launcher = _Collecting(self.launcher)

    def sweep(self, arguments: List[str]) -> Any:
        if self.config.get("mode") == "explain":
            returns = super().sweep(arguments)  # no store; each job reports its own cell
            invalid = [r.overrides for batch in returns for r in batch
                       if not r.return_value["ok"]]
            if invalid:
                print(f"{len(invalid)} of {sum(map(len, returns))} cells cannot be built",
                      file=sys.stderr)
                sys.exit(1)
            return returns

        from runner import tracking
        from runner.recorder import RecorderGone, recorder
        from runner.report import summary_table

        recording = recorder()  # MLflow's import, over there, while the cells are composed
        self.progress.total = self._compose_every_cell(arguments)
        self.progress.started = time.time()
        try:
            created = recording.submit("create_parent", *tracking.parent_request(self.config))
            if isinstance(self.launcher.launcher, BasicLauncher):  # the jobs run here
                recording.deferring = True  # each job goes on while its run is recorded
                import keras  # noqa: F401  (TensorFlow's import, while the parent is created)
            parent_id = recording.result(created)
        except (tracking.StoreUnreachable, RecorderGone) as error:
            print(f"error: {error}; no job was started", file=sys.stderr)
            sys.exit(1)
        tracking.hand_to_jobs(self.config, parent_id)
        env = tracking.sweep_env(parent_id, tracking.tracking_uri(self.config.tracking))
        self.hydra_context.config_loader = _ComposedOnce(self.hydra_context.config_loader,
                                                         self._composed, env)
        interrupted = None
        with interruptible():  # a signal cuts the jobs short, never the closing of the parent
            try:
                with signals_raise():
                    returns = super().sweep(arguments)
            except Interrupted as error:
                interrupted = error
            finally:
                interrupted = interrupted or signal_received()
                rows = self._close_parent(parent_id, interrupted)
        if interrupted is not None:
            raise interrupted
        print(summary_table(rows), flush=True)
        failed = [row["overrides"] for row in rows if row["status"] != "FINISHED"]
        if failed:
            print(f"{len(failed)} of {len(rows)} jobs failed: {'; '.join(failed)}", file=sys.stderr)
            sys.exit(1)
        return returns

    def _close_parent(self, parent_id: str, interrupted) -> list:
        """The parent's summary from every job's return; its status is the children's, unless
        the sweep itself was interrupted (KILLED)."""
        from runner import tracking
        from runner.recorder import RecorderGone, recorder
        from runner.report import summary_table

        unclosed = recorder().settle()  # every job's run ended, or why not
        jobs = [_job_report(r) for r in self.launcher.returns]
        for job in jobs:
            if job["job"] in unclosed:
                job["ok"] = False
                job["line"] += f"; its run could not be closed: {unclosed[job['job']]}"
                print(f"error: job {job['job']} {job['overrides']}: its run could not be closed: "
                      f"{unclosed[job['job']]}", file=sys.stderr)
        status = "KILLED" if interrupted is not None else None
        try:
            return recorder().call("finish_sweep", self.config.tracking, parent_id, status, jobs)
        except (tracking.StoreUnreachable, RecorderGone) as error:
            print(summary_table([tracking.unrecorded_row(job) for job in jobs]), flush=True)
            print(f"error: {error}; the sweep's parent run {parent_id} could not be closed",
                  file=sys.stderr)
            sys.exit(1)

    def validate_batch_is_legal(self, batch: Sequence[Sequence[str]]) -> None:
        """Done once for the whole grid in `sweep`; explain jobs report their own cells."""

    def _compose_every_cell(self, arguments: List[str]) -> int:
        parser = OverridesParser.create(config_loader=self.hydra_context.config_loader)
        overrides = parser.parse_overrides([*self._parse_config(), *arguments])
        cells = [cell for batch in self.split_arguments(overrides, None) for cell in batch]
        failures = []
        self._composed = {}
        for cell in cells:
            try:
                config = self.hydra_context.config_loader.load_sweep_config(
                    master_config=self.config, sweep_overrides=list(cell))
                HydraConfig.instance().set_config(config)  # `${hydra:...}` resolves as in the job
                validate(OmegaConf.masked_copy(config, [k for k in config if k != "hydra"]))
                self._composed[tuple(cell)] = config
            except Exception as error:  # every composition or validation error, whatever its kind
                reasons = [str(error)] + ([str(error.__cause__)] if error.__cause__ else [])
                failures.append(f"  {' '.join(cell)}: {' '.join(' '.join(reasons).split())}")
        if failures:
            raise ConfigCompositionException(
                f"{len(failures)} of {len(cells)} cells are invalid; no job was started:\n"
                + "\n".join(failures))
        return len(cells)
