"""What a job asks of its recording process: one small dataclass per request, each applied to
the store over there. The answers come back as futures (recording/client.py)."""

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from runner.result import JobResult

URI_ENV = "MLFLOW_TRACKING_URI"
PARENT_RUN_ENV = "RUNNER_PARENT_RUN_ID"  # set in every job of a sweep: its parent run


RUN_KEY = "runner.run_key"  # made by the runner for each run: a replay finds the run by it


@dataclass(frozen=True)
class Tracking:
    """Where runs go: the store, the experiment, where a sqlite store's artifacts live; where
    their records wait while a tracking server is away (no journal: they never wait), and for
    how many minutes a server that went away mid-sweep is tried again before they are left
    there for `python -m runner.sync`."""
    uri: str
    experiment: str
    artifact_location: Optional[str] = None
    journal: Optional[str] = None
    retry_minutes: float = 0.0

    @property
    def store_key(self) -> tuple:
        """What names the store and experiment, whatever the journal."""
        return self.uri, self.experiment, self.artifact_location

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
        journal = tracking.get("journal")
        return cls(uri, tracking["experiment"], location,
                   str(Path(journal).absolute()) if journal else None,
                   float(tracking.get("retry_minutes") or 0.0))


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

    def waits_for_store(self, stores) -> bool:
        return False  # nothing is computed yet: a store that is away refuses the sweep


@dataclass(frozen=True)
class StartRun:
    """One job's run, under `parent_id` when it has one. Answer: its RunRef. `key` names the
    run in later requests, so a job goes on before the answer has come; the run carries it
    (tag RUN_KEY), so a request tried again finds the run its lost answer had made."""
    tracking: Tracking
    key: str
    name: str
    tags: dict
    parent_id: Optional[str]
    start_ms: int  # when the job started, on the job's own clock

    def apply(self, stores) -> RunRef:
        tags = {**self.tags, RUN_KEY: str(self.key)}
        return stores.start(self.key, self.tracking, lambda: stores.store(self.tracking).start_run(
            self.name, tags, self.parent_id, self.start_ms), waits=self.waits_for_store(stores))

    def waits_for_store(self, stores) -> bool:
        """A job of a sweep goes on computing while its run waits; a job alone waits for its
        run before it computes anything, and fails at once without it."""
        return self.parent_id is not None


@dataclass(frozen=True)
class FinishRun:
    """Everything the job produced, logged; the run ended FINISHED, FAILED or KILLED.
    Answer: None. A run that could not be created fails this the same way."""
    tracking: Tracking
    key: str
    params: dict
    result: JobResult
    end_ms: int

    def apply(self, stores) -> None:
        run = stores.run_of(self.key, self.tracking)
        again = stores.tried_before(("finish", self.key))
        stores.store(self.tracking).finish_run(run.run_id, self.params, self.result, self.end_ms,
                                               again=again)

    def waits_for_store(self, stores) -> bool:
        return not stores.never_created(self.key)  # computed: it waits, if its run can be


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

    def waits_for_store(self, stores) -> bool:
        return True


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
    runs: Optional[tuple]  # the run id of every child, earlier attempts too; None: not listed
    rows: list  # the summary's rows, one per job: its latest attempt
    resumes: int  # times it was resumed before


@dataclass(frozen=True)
class FindSweep:
    """The sweep a resume continues: `which` is `last` (the latest parent of the grid whose
    digest is `grid_sha256`) or a parent's run id. Answer: a SweepFound, or None when there is
    none (a sqlite store that does not exist holds none, and is not made by asking).
    `listed`: its children's runs read and listed, even where its parent keeps its records."""
    tracking: Tracking
    which: str
    grid_sha256: str
    listed: bool = False

    def apply(self, stores) -> Optional[SweepFound]:
        if not stores.exists(self.tracking):
            return None
        return stores.store(self.tracking).find_sweep(self.which, self.grid_sha256,
                                                      self.listed)

    def waits_for_store(self, stores) -> bool:
        return False


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

    def waits_for_store(self, stores) -> bool:
        return False  # before any job of the resume: a store that is away refuses it
