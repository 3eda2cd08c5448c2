"""The task function as a sweep's launcher runs it, wherever that is, and what every job hands
back to the sweeper: a JobReport (runner/recording/requests.py), read through `JobReturn`'s
public `return_value`."""

import contextlib
import fcntl
import io
import os
import shutil
import sys
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
                self.here[outcome.identity.job_num] = outcome.as_kept()
                report = outcome.report_so_far(cell)
            else:
                report = outcome.report(name=cell)
        self._progress(report)
        return report

    def _progress(self, report: JobReport) -> None:
        """The job's line, numbered as jobs complete; in a big sweep on a terminal, the one
        live line instead, rewritten (a failed job's own line kept above it, for the first
        few)."""
        from runner.report import CELLS_NAMED, live_progress, progress_line

        done, failed = _count_one_more(self.counter, report.ok)
        elapsed = time.time() - self.started
        if not live(self.total):
            print(progress_line(done, self.total, elapsed, report.line), flush=True)
            return
        width = shutil.get_terminal_size().columns
        kept = "" if report.ok or failed > CELLS_NAMED else f"\r\x1b[K{report.line}\n"
        sys.stdout.write(kept + "\r\x1b[K"
                         + live_progress(done, failed, self.total, elapsed, report.line, width))
        sys.stdout.flush()


def live(total: int) -> bool:
    """Whether a sweep of `total` cells shows one live progress line: a big one, written to a
    terminal (to a file or a CI log, a line per cell)."""
    from runner.report import BIG_SWEEP

    return total > BIG_SWEEP and sys.stdout.isatty()


def _count_one_more(counter: Path, ok: bool) -> tuple:
    """(jobs completed so far, this one included; those that failed), counted in a file every
    worker can reach: a character a job."""
    with open(counter, "a+") as file:
        fcntl.flock(file, fcntl.LOCK_EX)
        file.seek(0)
        marks = file.read() + ("." if ok else "x")
        file.write(marks[-1])
    return len(marks), marks.count("x")


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
