"""The runner's sweeper: a grid of every combination, checked whole, recorded under one MLflow
parent. Built on Hydra's public plugin API: `hydra.plugins.sweeper.Sweeper`, its override
parser, its launcher plugins and `JobReturn`."""

import re
import shlex
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Dict, List, Optional

from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.plugins import Plugins
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext
from omegaconf import OmegaConf, open_dict, read_write

from hydra_plugins.runner_sweeper.composing import (ComposedAside, checked_cell, composed_alone,
                                                     config_digest, explained_cell,
                                                     split_arguments)
from hydra_plugins.runner_sweeper.tasks import SweepTask, job_report, live
from runner.composition import GridComposer, PrecomposedConfigLoader
from runner.errors import ConfigError
from runner.resume import Plan, ResumeRefused, plan_resume, split_resume
from runner.identity import cell_key, grid_sha256, is_resume, unescaped
from runner.refusals import unknown_option
from runner.signals import Interrupted, interruptible, signal_received, signals_raise
from runner.validate import keep_checked
from runner.vocabulary import spell_overrides


HERE_BATCH = 100  # jobs of this process launched at once, unless max_batch_size says


class GridSweeper(Sweeper):
    """Every cell is composed and checked before any run exists (one error lists every bad
    cell); then the parent run is created, the jobs are launched by whichever launcher is
    configured, and the parent is closed with the summary of all jobs, even when some failed.
    Resumed (`resume=`), it asks the store before TensorFlow is imported, reopens the parent,
    and launches only the cells not FINISHED with the same config, under their job numbers.
    With `mode=explain` the same check prints each cell's table, and nothing is launched."""

    def __init__(self, max_batch_size: Optional[int] = None,
                 params: Optional[Dict[str, str]] = None) -> None:
        self.max_batch_size = max_batch_size
        self.params = params or {}  # `hydra.sweeper.params`: swept like the command line's
        self.hydra_context: Optional[HydraContext] = None
        self.config = self.launcher = self.task = self.loader = None

    def setup(self, *, hydra_context: HydraContext, task_function, config) -> None:
        # `${hydra:runtime.cwd}` in the sweep's config (its directory, a launcher's folder)
        # resolves in this process from here on, as it does in a job
        HydraConfig.instance().set_config(config)
        self.hydra_context, self.config = hydra_context, config
        self.task = SweepTask(task_function)
        # The launcher composes each job's config through this loader: the cells checked
        # before the sweep are served to it as they were composed
        self.loader = PrecomposedConfigLoader(hydra_context.config_loader)
        self.launcher = Plugins.instance().instantiate_launcher(
            hydra_context=HydraContext(config_loader=self.loader,
                                       callbacks=hydra_context.callbacks),
            task_function=self.task, config=config)

    def sweep(self, arguments: List[str]) -> Any:
        refusal = unknown_option(self.config.hydra.runtime.choices,
                                 self.hydra_context.config_loader)
        if refusal is not None:  # `-m sweep=sed`: Hydra would run the grid without it
            _refuse(refusal)
        if self.config.get("mode") == "explain":
            return self._explain(arguments)
        from runner.console import quiet_libraries

        quiet_libraries(self.config.verbose)
        try:
            resume, cells = split_resume(self._cells(arguments))
        except (ResumeRefused, ConfigError) as refusal:
            _refuse(str(refusal))
        from runner.recording.local_faults import start_refusal
        from runner.recording.requests import FindSweep, Tracking

        tracking = Tracking.from_config(
            OmegaConf.to_container(self.config.tracking, resolve=True))
        refused = start_refusal(tracking)  # a store or journal that cannot be written
        if refused is not None:
            _refuse(f"error: {refused}; no job was started")
        composer = GridComposer(self.hydra_context.config_loader, self.config)
        keep = self._jobs_run_here() and len(cells) <= HERE_BATCH  # each job's spec, for itself
        checking = ComposedAside(composer, cells, checked_cell if keep else config_digest)
        from runner.recording.client import recording_process

        process = recording_process()  # MLflow's import, over there, while the cells are composed
        grid = tuple(cell_key(cell) for cell in cells)
        starting = finding = None
        if resume is not None:  # the store first: TensorFlow only once a cell is known to run
            finding = process.submit(FindSweep(tracking, resume, grid_sha256(grid)))
        elif self._jobs_run_here():
            starting = self._start_keras_aside(cells)  # and Keras's, here
        outcomes = checking.result()
        self._say_composed_alone(outcomes)
        _refuse_invalid_cells(outcomes)
        if keep:  # (digest, (task, spec)) for a valid cell
            for _, checked, _, _ in outcomes:
                keep_checked(*checked[1])
            outcomes = [(cell, checked[0], None, alone) for cell, checked, _, alone in outcomes]
        with _refused_before_any_job():
            if finding is None:
                parent, plan, earlier = self._create_parent(tracking, grid), Plan.whole(cells), ()
            else:
                digests = {cell_key(cell): digest for cell, digest, _, _ in outcomes}
                found = finding.result()
                plan = plan_resume(found, cells, digests, tracking.experiment, resume)
                if plan.run and found.runs is None:  # read from its parent's records: now
                    found = process.submit(FindSweep(tracking, resume, grid_sha256(grid),
                                                     listed=True)).result()  # every run
                    plan = plan_resume(found, cells, digests, tracking.experiment, resume)
                if not plan.run and found.status == "FINISHED":
                    print(f"resume: every cell of sweep {found.parent.run_id} FINISHED with the "
                          f"same config; nothing to run", flush=True)
                    self._print_rows(tracking, found.parent, found.rows)
                    return []
                parent, earlier = found.parent, found.runs
                starting = self._reopen(tracking, found, plan)
        parent_id = parent.run_id
        env = _hand_to_jobs(self.config, parent_id, tracking.uri)
        self.loader.serve(composer, env)
        del outcomes  # a cell's config is composed again for its job, from its base: no memory kept
        if starting is not None:
            starting.join()  # its start-up lines are read before the first job writes any
        sweep_dir = Path(self.config.hydra.sweep.dir)
        sweep_dir.mkdir(parents=True, exist_ok=True)
        self.task.total, self.task.started = len(plan.run), time.time()
        self.task.counter = sweep_dir / ".jobs_done"
        interrupted, returns = None, []
        with interruptible():  # a signal cuts the jobs short, never the closing of the parent
            try:
                with signals_raise():
                    self._launch(plan.groups(self._batch_size()), returns)
            except Interrupted as error:
                interrupted = error
            finally:
                interrupted = interrupted or signal_received()
                if live(self.task.total):
                    print(flush=True)  # the live progress line stays, as it ended
                rows = self._close_parent(tracking, parent_id, interrupted, earlier, returns)
        if interrupted is not None:
            from runner.report import stopped_lines

            print("\n".join(stopped_lines(interrupted, tracking.uri, parent_id, rows,
                                          len(plan.run) + plan.skipped,
                                          _resume_command(parent_id))), flush=True)
            raise interrupted
        self._print_rows(tracking, parent, rows)
        (sweep_dir / ".jobs_done").unlink(missing_ok=True)
        failed = [row["overrides"] for row in rows if row["status"] != "FINISHED"]
        if failed:
            print(f"{len(failed)} of {len(rows)} jobs failed: {'; '.join(failed)}", file=sys.stderr)
            sys.exit(1)
        return returns

    def _create_parent(self, tracking, grid: tuple):
        """A new sweep's parent, with its grid for a later resume."""
        from runner.recording.client import recording_process
        from runner.recording.requests import CreateParent

        typed = [re.sub(r"=choice\(([^,()]*)\)$", r"=\1", override)  # one value: that value
                 for override in self.config.hydra.overrides.task]
        name = " ".join(spell_overrides(override) for override in typed) or "multirun"
        return recording_process().submit(CreateParent(tracking, name, {
            "sweep.dir": self.config.hydra.sweep.dir, "sweep.overrides": name}, grid)).result()

    def _reopen(self, tracking, found, plan: Plan):
        """The found sweep's parent RUNNING again; TensorFlow's import started if a job runs
        here (returned, to be joined)."""
        from runner.recording.client import recording_process
        from runner.recording.requests import ReopenSweep

        print(f"resume: sweep {found.parent.run_id}: {len(plan.run)} of {len(found.grid)} cells "
              f"to run (jobs {plan.jobs()}), {plan.skipped} FINISHED kept", flush=True)
        starting = None
        if plan.run and self._jobs_run_here():
            starting = self._start_keras_aside([cell for _, cell in plan.run])
        recording_process().submit(ReopenSweep(tracking, found.parent.run_id, plan.skipped, len(plan.run),
                                      found.resumes + 1)).result()
        return starting

    def _batch_size(self) -> Optional[int]:
        """Jobs launched at once: `hydra.sweeper.max_batch_size`; unset, every job for a
        launcher elsewhere, and batches of HERE_BATCH for jobs run here (Hydra's basic launcher
        keeps each job's whole config until its batch ends)."""
        if self.max_batch_size or not self._jobs_run_here():
            return self.max_batch_size
        return HERE_BATCH

    def _launch(self, groups: list, returns: list) -> None:
        """Each group of consecutive jobs launched under its own numbers, as Hydra's basic
        sweeper launches a batch; each batch's reports kept in `returns` as it comes back (the
        JobReturns, each with its job's config, are let go)."""
        sweep_dir = Path(self.config.hydra.sweep.dir)
        OmegaConf.save(self.config, sweep_dir / "multirun.yaml")
        for first, batch in groups:
            returns.extend(job_report(job)
                           for job in self.launcher.launch(batch, initial_job_idx=first))

    def _print_rows(self, tracking, parent, rows: list) -> None:
        from runner.plots import sweep_figures
        from runner.report import recorded_lines, sweep_summary

        speed = self.config.sort_by.value == "throughput"
        print(sweep_summary(rows, speed=speed), flush=True)
        children = [row["run_id"] for row in rows if row["run_id"]]
        print("\n".join(recorded_lines(tracking.uri, tracking.experiment, parent, children,
                                       list(sweep_figures(rows, speed)))), flush=True)

    def _explain(self, arguments: List[str]) -> list:
        """Every cell composed and checked as for a sweep that runs, then each one's table,
        printed here: no job, no store, no files."""
        try:
            cells = self._cells(arguments)
        except ConfigError as refusal:
            _refuse(str(refusal))
        composer = GridComposer(self.hydra_context.config_loader, self.config)
        outcomes = ComposedAside(composer, cells, explained_cell).result()
        self._say_composed_alone(outcomes)
        _refuse_invalid_cells(outcomes)
        for _, explained, _, _ in outcomes:
            print(explained.text, flush=True)
        unbuilt = sum(not explained.ok for _, explained, _, _ in outcomes)
        if unbuilt:
            print(f"{unbuilt} of {len(cells)} cells cannot be built", file=sys.stderr)
            sys.exit(1)
        return []

    def _close_parent(self, tracking, parent_id: str, interrupted, earlier: tuple,
                      returns: list) -> list:
        """The parent's summary from every job's report (and, resumed, its cells' earlier
        runs); its status is the children's, unless the sweep itself was interrupted (KILLED).
        A job of this process is reported once its run is recorded; one that could not be is
        said here, after its own line was printed."""
        from runner.recording.client import RecordingProcessGone, recording_process
        from runner.recording.local_faults import WaitingForRepair
        from runner.recording.requests import CloseSweep
        from runner.recording.server import RecordsWaiting, StoreUnreachable
        from runner.recording.summary import unrecorded_row
        from runner.report import summary_table

        jobs = {report.job: report for report in returns}
        for number, outcome in sorted(self.task.here.items()):  # an interrupted launch's too
            report = outcome.report(name=jobs[number].overrides if number in jobs else None)
            jobs[number] = report
            if report.unrecorded:
                print(f"error: job {report.job}: {report.line}", file=sys.stderr)
        jobs = tuple(jobs[number] for number in sorted(jobs))
        status = "KILLED" if interrupted is not None else None
        try:
            return recording_process().submit(CloseSweep(
                tracking, parent_id, status, jobs, earlier,
                str(self.config.sort_by.value))).result()
        except RecordsWaiting as error:  # every job's record is kept: sent later, with the close
            closed = ("the sweep is closed with them" if isinstance(error, WaitingForRepair)
                      else f"the sweep's parent run {parent_id} is closed with them")
            print(f"error: {error}; {closed}", file=sys.stderr)
            recording_process().close(wait=True)  # its journal let go: the sync may take it
            sys.exit(1)
        except (StoreUnreachable, RecordingProcessGone) as error:
            print(summary_table([unrecorded_row(job) for job in jobs]), flush=True)
            print(f"error: {error}; the sweep's parent run {parent_id} could not be closed",
                  file=sys.stderr)
            sys.exit(1)

    def _say_composed_alone(self, outcomes: list) -> None:
        """With verbose=true, the cells Hydra composed alone, and why (a line a reason)."""
        if self.config.verbose:
            for line in composed_alone(outcomes):
                print(line, file=sys.stderr, flush=True)

    def _start_keras_aside(self, cells: list) -> threading.Thread:
        """Keras's import on the first job's backend, while this thread waits for the grid."""
        from runner.backends import first_backend, start_keras_aside

        return start_keras_aside(first_backend(cells, self.config.backend.value),
                                 self.config.verbose, self.config.gpu_memory_growth)

    def _jobs_run_here(self) -> bool:
        """Whether the configured launcher runs the jobs in this very process: Hydra's basic
        launcher, chosen as `hydra/launcher=basic` (the default)."""
        return self.config.hydra.runtime.choices.get("hydra/launcher") == "basic"

    def _cells(self, arguments: List[str]) -> List[tuple]:
        """The grid's cells, each a tuple of overrides, in job order: `hydra.sweeper.params`
        first, then the command line's, as Hydra's basic sweeper orders them."""
        parser = OverridesParser.create(config_loader=self.hydra_context.config_loader)
        params = [f"{key}={value}" for key, value in self.params.items()]
        overrides = parser.parse_overrides([*params, *arguments])
        return [cell for batch in split_arguments(overrides, None) for cell in batch]


def _resume_command(parent_id: str) -> str:
    """The command line of this sweep, resuming it: as typed, with `resume=PARENT_ID`."""
    args = [re.sub(r"=choice\(([^,()]*)\)$", r"=\1", arg) for arg in sys.argv[1:]
            if not is_resume(arg)]
    return shlex.join(["python", "-m", "runner", *args, f"resume={parent_id}"])


def _refuse_invalid_cells(outcomes: list) -> None:
    """Every invalid cell, a line each, exit code 1; nothing when every cell is valid."""
    failures = [f"  {' '.join(spell_overrides(unescaped(o)) for o in cell)}: {reason}"
                for cell, _, reason, _ in outcomes if reason]
    if failures:
        _refuse(f"{len(failures)} of {len(outcomes)} cells are invalid; no job was started:\n"
                + "\n".join(failures))


def _refuse(line: str) -> None:
    print(line, file=sys.stderr)
    sys.exit(1)


@contextmanager
def _refused_before_any_job():
    """A store that cannot be reached or refuses the user, or a resume that cannot be: one
    line, exit code 1, no job started."""
    from runner.recording.client import RecordingProcessGone, recording_process
    from runner.recording.server import StoreUnreachable

    try:
        yield
    except (StoreUnreachable, RecordingProcessGone) as error:
        recording_process().close(wait=True)  # its journal, and the folders made for it, go
        _refuse(f"error: {error}; no job was started")
    except ResumeRefused as refusal:
        _refuse(str(refusal))


def _hand_to_jobs(config, parent_id: str, uri: str) -> dict:
    """The parent's id and the store travel in each job's config (`hydra.job.env_set`), so a
    job finds them in this process or in a worker elsewhere; returns that environment."""
    from runner.recording.requests import PARENT_RUN_ENV, URI_ENV

    env = {PARENT_RUN_ENV: parent_id, URI_ENV: uri}
    with read_write(config.hydra.overrides), open_dict(config.hydra.overrides):
        for name, value in env.items():
            config.hydra.overrides.hydra.append(f"++hydra.job.env_set.{name}='{value}'")
    return env
