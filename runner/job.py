"""One job: its run created, the experiment run where a signal can stop it, its result recorded.

A signal (SIGTERM, Ctrl-C) during the experiment ends the run KILLED with what was known, and
the console says so in one line; the process then exits 128 + signal. The experiment runs in a
thread of its own while the main thread waits for it, so a signal is acted on at once, even in
the middle of a long TensorFlow call. Creating and ending the run are never cut short."""

import dataclasses
import sys
import time
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from runner.backends import runs_here, start_keras, worker
from runner.console import computation_abandoned, tensorflow_logs_read
from runner.errors import DeviceError
from runner.experiment import run_experiment
from runner.identity import config_sha256
from runner.recording.client import recording_process
from runner.recording.requests import FinishRun, JobReport, StartRun, Tracking
from runner.recording.server import RecordsWaiting
from runner.result import Failure, JobResult
from runner.signals import (Interrupted, call_while_waiting, interruptible, signal_received,
                             signals_raise)
from runner.validate import JobSpec


@dataclass(frozen=True)
class RunIdentity:
    """Who the job is, as Hydra tells it: the run's name, tags and place."""
    name: str  # the overrides, e.g. `model=bilstm,return_sequences=true`
    job_num: int
    choices: dict  # config groups chosen: `model` -> `bilstm`
    output_dir: Path
    parent_id: Optional[str]  # the sweep's parent run, when there is one


@dataclass(frozen=True)
class JobOutcome:
    """The job's result, and the futures of its run: created (a RunRef), then recorded (done
    once the run is ended)."""
    identity: RunIdentity
    tracking: Tracking
    result: JobResult
    run: Future
    recorded: Future

    def report(self, timeout: Optional[float] = None, name: Optional[str] = None) -> JobReport:
        """The job as its sweep reports it, once its run is recorded (or could not be); its
        line names it by `name` where given (a sweep's cell by its overrides)."""
        ok, line = self.result.error is None, self.result.line_as(name or self.result.label)
        unrecorded = ""
        try:
            self.recorded.result(timeout)
        except RecordsWaiting:
            ok = False  # not in the store yet: the sweep or the job says where it waits
            line += "; its run waits in the journal"
        except Exception as error:
            ok, unrecorded = False, f"{type(error).__name__}: {error}"
            if str(error) not in line:  # else the job failed for the same reason (its store)
                line += f"; its run could not be recorded: {unrecorded}"
        return JobReport(self.identity.job_num, self.identity.name, ok, line, unrecorded)

    def as_kept(self) -> "JobOutcome":
        """The outcome as a sweep keeps it until its run is recorded: its line and its futures,
        without the params, tags, metrics and pictures already sent to be recorded."""
        return dataclasses.replace(self, result=dataclasses.replace(
            self.result, params={}, tags={}, metrics={}, pictures=()))

    def report_so_far(self, name: str) -> JobReport:
        """The job as known before its run is recorded: its line, and whether it succeeded."""
        return JobReport(self.identity.job_num, self.identity.name, self.result.error is None,
                         self.result.line_as(name))


def _now_ms() -> int:
    """Now, as MLflow times runs: the job's own clock, not the recorder's."""
    return int(time.time() * 1000)


def run_job(spec: JobSpec, identity: RunIdentity) -> JobOutcome:
    """Create the run, run the experiment, ask for the run to be ended with its result.

    A job alone waits for its run to exist before the experiment (a store that does not answer
    fails it at once); a job of a sweep does not: its parent proved the store."""
    tracking = Tracking.from_config(spec.config["tracking"])
    artifact_dir = identity.output_dir / "artifacts"
    with interruptible():  # from here a signal is kept, and ends the run KILLED
        process = recording_process()
        key = process.new_key()
        tags = {"job.num": str(identity.job_num), "config.sha256": config_sha256(spec.config),
                # the same cell on another backend has the same: runs compared across backends
                "cell.sha256": config_sha256({key: value for key, value in spec.config.items()
                                              if key != "backend"})}
        started = process.submit(StartRun(tracking, key, identity.name, tags,
                                            identity.parent_id, _now_ms()))
        result = None
        try:
            backend, verbose = spec.config["backend"], spec.config["verbose"]
            experiment = run_experiment
            if runs_here(backend):
                unused_gpu = start_keras(backend, verbose, spec.config["gpu_memory_growth"])
                if unused_gpu is not None:
                    raise DeviceError(unused_gpu)
            else:  # another backend's Keras is this process's: its worker runs the job
                experiment = worker(backend, verbose).run_experiment
            if identity.parent_id is None:
                started.result()
            with signals_raise(), tensorflow_logs_read(verbose):
                try:
                    result = call_while_waiting(experiment, spec, artifact_dir)
                except Interrupted:  # the experiment goes on in its thread until the exit
                    computation_abandoned()
                    raise
        except BaseException as error:  # the store refused, or a signal before the experiment
            result = _failed(spec, artifact_dir, error)
        interrupted = signal_received()  # raised above, or swallowed by a finaliser
        if interrupted is not None and (result.error is None or result.error.status != "KILLED"):
            result = dataclasses.replace(result, error=Failure.of(interrupted))
        params = {**identity.choices, **result.params}
        recorded = process.submit(FinishRun(tracking, key, params, result, _now_ms()))
    if interrupted is not None:
        interrupted.run = started
        name = result.label if identity.parent_id is None else identity.name
        print(result.line_as(name), file=sys.stderr, flush=True)  # `... -> KILLED: Interrupted: ...`
        raise interrupted  # the process exits 128 + signal; its run is ended KILLED
    return JobOutcome(identity, tracking, result, started, recorded)


def _failed(spec: JobSpec, artifact_dir: Path, error: BaseException) -> JobResult:
    from runner.experiment import planned_result

    return dataclasses.replace(planned_result(spec, artifact_dir), error=Failure.of(error))
