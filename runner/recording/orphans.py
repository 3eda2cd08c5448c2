"""Runs left RUNNING by processes of this host that are gone (kill -9, the OOM killer, a machine
that went down), ended KILLED: MLflow itself never ends them. MLflow calls only.

Reaping is best effort: at most once per process and store, a conflict with another reaper is
expected and ignored, any other failure is said on one line, and the job that reaps goes on."""

import os
import socket
import sys

HOST, JOB_PID, JOB_STARTED = "runner.host", "runner.pid", "runner.pid_started"
RECORDER_PID, RECORDER_STARTED = "runner.recorder_pid", "runner.recorder_started"
REAPED_BY = "runner.reaped_by"  # "PID STARTED" of the process ending the run, written first
ERROR = "error"
# What a store says when two writers insert the same key at once (PostgreSQL, MySQL, sqlite)
CONFLICTS = ("UniqueViolation", "duplicate key value", "UNIQUE constraint failed",
             "Duplicate entry", "IntegrityError")

_reaped = set()  # (store URI, experiment id) this process has reaped


def process_started(pid: int) -> str:
    """The process's start time in clock ticks since boot (Linux), so a reused pid is told apart."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return ""


def owner_tags(job: int, recorder: int) -> dict:
    """The tags that say who can still end a run: the job's process, and the recording process
    that writes its end (it may outlive a job killed -9 while finishing its requests)."""
    return {HOST: socket.gethostname(), JOB_PID: str(job), JOB_STARTED: process_started(job),
            RECORDER_PID: str(recorder), RECORDER_STARTED: process_started(recorder)}


def alive(pid: str, started: str) -> bool:
    """The process `pid` that started at `started` (clock ticks) still exists. No pid: none
    was recorded. A pid without a start time (no /proc to read it from) cannot be told gone,
    so it counts as alive: a run is never ended on a guess."""
    if not pid.isdigit() or int(pid) <= 0:
        return False
    return not started or process_started(int(pid)) == started


def is_conflict(error: BaseException) -> bool:
    """Another writer inserted the same row first: a unique key violated, as any store says it."""
    return any(text in str(error) for text in CONFLICTS)


def reap_once(client, uri: str, experiment_id: str) -> list:
    """The runs this process ended KILLED, the first time it reaps this store's experiment; a
    failure other than a conflict is said on one line on stderr, never raised."""
    if (uri, experiment_id) in _reaped:
        return []
    _reaped.add((uri, experiment_id))
    try:
        return Reaper(client, experiment_id).reap()
    except Exception as error:
        line = " ".join((str(error).splitlines() or [""])[0].split())[:300]
        print(f"runner: orphaned runs in {uri} were not reaped ({type(error).__name__}: {line}); "
              f"going on", file=sys.stderr, flush=True)
        return []


class Reaper:
    """One pass over an experiment's RUNNING runs of this host, in steps a test can interleave:
    `candidates()`, then `end(run)` for each."""

    def __init__(self, client, experiment_id: str) -> None:
        self.client, self.experiment_id = client, experiment_id
        self.host = socket.gethostname()
        self.me = f"{os.getpid()} {process_started(os.getpid())}"

    def reap(self) -> list:
        return [run.info.run_id for run in self.candidates() if self.end(run)]

    def candidates(self) -> list:
        """This host's RUNNING runs, as read now: by the time one is looked at, it may be ended."""
        return self.client.search_runs(
            [self.experiment_id],
            filter_string=f"attributes.status = 'RUNNING' and tags.`{HOST}` = '{self.host}'",
            max_results=1000)

    def orphaned(self, run) -> bool:
        """Neither its job's process nor its recording process exists any more."""
        tags = run.data.tags
        return not (alive(tags.get(JOB_PID, ""), tags.get(JOB_STARTED, ""))
                    or alive(tags.get(RECORDER_PID, ""), tags.get(RECORDER_STARTED, "")))

    def end(self, run) -> bool:
        """End `run` KILLED if it is an orphan; True when this reaper ended it.

        The order closes the race with a run's owner. A recording process ends its runs before
        it exits, so once its processes are seen gone, nothing of theirs writes the run again,
        and a status read after that is the run's last word from them: still RUNNING means
        orphaned. Read the other way round (status first, as `candidates()` did, then the
        processes), an owner that ends its run FINISHED and exits in between looks like an
        orphan, and FINISHED would be overwritten KILLED."""
        if not self.orphaned(run):
            return False
        run_id = run.info.run_id
        fresh = self.client.get_run(run_id)  # read again, after the owners were seen gone
        if fresh.info.status != "RUNNING":
            return False
        reaper = fresh.data.tags.get(REAPED_BY, "").split()
        if len(reaper) == 2 and alive(*reaper):
            return False  # another reaper, still alive, has just claimed it: it ends it
        tags = fresh.data.tags
        try:
            self.client.set_tag(run_id, REAPED_BY, self.me)
            self.client.set_tag(run_id, ERROR, f"process {tags.get(JOB_PID, '?')} on {self.host} "
                                               "ended without closing this run")
        except Exception as error:
            if is_conflict(error):
                return False  # another reaper wrote its tag at the same moment: it ends the run
            raise
        self.client.set_terminated(run_id, "KILLED")
        return True
