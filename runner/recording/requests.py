"""What a job asks of its recording process: one small dataclass per request, each applied to
the store over there. The answers come back as futures (recording/client.py)."""

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from runner.result import JobResult

URI_ENV = "MLFLOW_TRACKING_URI"
PARENT_RUN_ENV = "RUNNER_PARENT_RUN_ID"  # set in every job of a sweep: its parent run


@dataclass(frozen=True)
class Tracking:
    """Where runs go: the store, the experiment, where a sqlite store's artifacts live."""
    uri: str
    experiment: str
    artifact_location: Optional[str] = None

    @classmethod
    def from_config(cls, tracking: dict) -> "Tracking":
        """From the resolved `tracking` config; MLFLOW_TRACKING_URI, when set, wins."""
        uri = os.environ.get(URI_ENV) or tracking["uri"]
        if tracking.get("artifact_root"):
            location = str(Path(tracking["artifact_root"]).absolute())
        elif uri.startswith("sqlite:///"):
            location = str(Path(uri[len("sqlite:///"):]).parent / "mlartifacts")
        else:
            location = None  # a tracking server decides (and proxies) where artifacts go
        return cls(uri, tracking["experiment"], location)


@dataclass(frozen=True)
class RunRef:
    """A run as the UI finds it, and where its store keeps its artifacts."""
    run_id: str
    experiment_id: str
    artifact_uri: str = ""


@dataclass(frozen=True)
class JobReport:
    """A job as its launcher reports it, whichever process or machine ran it."""
    job: int  # Hydra's job number
    overrides: str  # the cell, as its run is named
    ok: bool
    line: str  # the job's own line: `lstm return_sequences=False -> output (4, 3)`
    unrecorded: str = ""  # why its run could not be recorded; "" when it was (or is on its way)


@dataclass(frozen=True)
class CreateParent:
    """A sweep's parent run, created before any job starts, with its grid (`cell_key` of each
    cell, in job order) for a later resume to find. Answer: its RunRef."""
    tracking: Tracking
    name: str
    tags: dict
    grid: tuple = ()

    def apply(self, stores) -> RunRef:
        return stores.store(self.tracking).create_sweep(self.name, self.tags, self.grid)


@dataclass(frozen=True)
class StartRun:
    """One job's run, under `parent_id` when it has one. Answer: its RunRef. `key` names the
    run in later requests, so a job goes on before the answer has come."""
    tracking: Tracking
    key: int
    name: str
    tags: dict
    parent_id: Optional[str]
    start_ms: int  # when the job started, on the job's own clock

    def apply(self, stores) -> RunRef:
        return stores.start(self.key, lambda: stores.store(self.tracking).start_run(
            self.name, self.tags, self.parent_id, self.start_ms))


@dataclass(frozen=True)
class FinishRun:
    """Everything the job produced, logged; the run ended FINISHED, FAILED or KILLED.
    Answer: None. A run that could not be created fails this the same way."""
    tracking: Tracking
    key: int
    params: dict
    result: JobResult
    end_ms: int

    def apply(self, stores) -> None:
        run = stores.run_of(self.key)
        stores.store(self.tracking).finish_run(run.run_id, self.params, self.result, self.end_ms)


@dataclass(frozen=True)
class CloseSweep:
    """The parent's summary of every job (a job with no run gets a row from its report), and
    its end: FAILED when a job did not finish, unless `status` (KILLED) is given.
    Answer: the summary's rows."""
    tracking: Tracking
    parent_id: str
    status: Optional[str]
    jobs: tuple  # of JobReport
    earlier: tuple = ()  # a resumed sweep's runs from before: its jobs' earlier attempts
    sort_by: str = "job"  # the table's order: job, or throughput (fastest first)

    def apply(self, stores) -> list:
        return stores.store(self.tracking).close_sweep(self.parent_id, self.status, self.jobs,
                                                          self.earlier, self.sort_by)


@dataclass(frozen=True)
class Attempt:
    """A cell's latest run under its sweep's parent."""
    run_id: str
    status: str
    config_sha256: str  # "" for a run recorded without it


@dataclass(frozen=True)
class SweepFound:
    """A sweep's parent, as a resume finds it, and the latest attempt of each of its cells."""
    parent: RunRef
    status: str
    grid: Optional[tuple]  # its cells' keys in job order; None: recorded without its grid
    owner: str  # `process 123 on host-a` (its tags runner.pid, runner.host)
    owner_alive: Optional[bool]  # None: a process of another host, which this one cannot see
    attempts: dict  # job number -> Attempt
    runs: tuple  # the run id of every child, earlier attempts too
    rows: list  # the summary's rows, one per job: its latest attempt
    resumes: int  # times it was resumed before


@dataclass(frozen=True)
class FindSweep:
    """The sweep a resume continues: `which` is `last` (the latest parent of the grid whose
    digest is `grid_sha256`) or a parent's run id. Answer: a SweepFound, or None when there is
    none (a sqlite store that does not exist holds none, and is not made by asking)."""
    tracking: Tracking
    which: str
    grid_sha256: str

    def apply(self, stores) -> Optional[SweepFound]:
        if not stores.exists(self.tracking):
            return None
        return stores.store(self.tracking).find_sweep(self.which, self.grid_sha256)


@dataclass(frozen=True)
class ReopenSweep:
    """A found sweep's parent RUNNING again, owned by the process that resumes it, its tags
    saying how many cells the resume skips and runs. Answer: None."""
    tracking: Tracking
    parent_id: str
    skipped: int
    ran: int
    resumes: int  # this resume's number: 1 for the first

    def apply(self, stores) -> None:
        stores.store(self.tracking).reopen_sweep(self.parent_id, self.skipped, self.ran,
                                                    self.resumes)
