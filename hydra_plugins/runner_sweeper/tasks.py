"""The task function as a sweep's launcher runs it, wherever that is, and what every job hands
back to the sweeper: a JobReport (runner/recording/requests.py), read through `JobReturn`'s
public `return_value`."""

import contextlib
import fcntl
import io
import os
import time
from pathlib import Path
from typing import Any, Dict

from hydra.core.hydra_config import HydraConfig
from hydra.core.utils import JobReturn, JobStatus

from runner.identity import job_name
from runner.recording.requests import JobReport
from runner.signals import Interrupted


class SweepTask:
    """The task function as the sweeper runs it, wherever its launcher runs it: every job
    returns a JobReport, whether it succeeded, failed or raised, and prints its line, numbered
    as jobs complete. A job in the sweeper's own process goes on while its run is recorded:
    its outcome stays here (`here`), and its recording is settled when the sweep ends; a job
    in a worker settles its run before it goes back."""

    def __init__(self, task_function) -> None:
        self.task_function = task_function
        self.sweeper_pid = os.getpid()
        self.total = 0
        self.started = time.time()
        self.counter = None  # a file in the sweep's directory: jobs done, by any process
        self.here: Dict[int, Any] = {}  # job number -> JobOutcome of a job run in this process

    def __call__(self, cfg) -> JobReport:
        hydra_job = HydraConfig.get().job
        cell = job_name(hydra_job)  # the cell by its overrides: unique in the grid
        try:
            outcome = self.task_function(cfg)
        except Interrupted:
            raise  # the sweep ends KILLED
        except (Exception, SystemExit) as error:  # a job that raised is one failed cell
            first = (str(error).splitlines() or [""])[0]
            report = JobReport(int(hydra_job.num), cell, False,
                               f"{cell} -> FAILED: {type(error).__name__}: {first}")
        else:
            if os.getpid() == self.sweeper_pid:
                self.here[outcome.identity.job_num] = outcome
                report = outcome.report_so_far(cell)
            else:
                report = outcome.report(name=cell)
        print(self._progress(report.line), flush=True)
        return report

    def _progress(self, line: str) -> str:
        from runner.report import progress_line

        return progress_line(_count_one_more(self.counter), self.total,
                             time.time() - self.started, line)


def _count_one_more(counter: Path) -> int:
    """Jobs completed so far, this one included, counted in a file every worker can reach."""
    with open(counter, "a+") as file:
        fcntl.flock(file, fcntl.LOCK_EX)
        file.seek(0)
        done = len(file.read()) + 1
        file.write(".")
    return done


def job_report(job: JobReturn) -> JobReport:
    """What a job returned: the JobReport of `_Task`, or, where Hydra could not run the task
    at all (its working directory, say), a failed report from the exception."""
    hydra_job = job.hydra_cfg.hydra.job
    if job.status == JobStatus.COMPLETED and isinstance(job.return_value, JobReport):
        return job.return_value
    try:
        with contextlib.redirect_stderr(io.StringIO()):  # Hydra's "Error executing job" line
            value = job.return_value
        why = f"returned {type(value).__name__}, not a JobReport"
    except Exception as error:
        why = f"{type(error).__name__}: {(str(error).splitlines() or [''])[0]}"
    cell = job_name(hydra_job)
    return JobReport(int(hydra_job.num), cell, False, f"{cell} -> FAILED: {why}")
