"""The MLflow store: open it, create and end runs, log a job's result, reap orphans.

Made in the recording process only (MLflow is imported there, never in the job's)."""

import fcntl
import socket
from contextlib import contextmanager
from pathlib import Path
from typing import Optional, Sequence

from runner.recording.limits import ERROR_TAG_LIMIT, params_for_mlflow
from runner.recording.requests import JobReport, RunRef, Tracking
from runner.recording.server import (bound_retries, connection_failed, is_server,
                                     login_refused, names_the_server, refused, unreachable)
from runner.result import Failure, JobResult

# The UI opens the runs table ("Model training"), not the GenAI overview, on these experiments
EXPERIMENT_TAGS = {"mlflow.experimentKind": "custom_model_development"}
UNCLOSED = ("its job ended, but its run was never closed (its recording process or its "
            "worker died)")


def process_started(pid: int) -> str:
    """The process's start time in clock ticks since boot (Linux), so a reused pid is told apart."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return ""


class Store:
    """One experiment of one store, for the runs of one job process (`owner`): the process
    whose death leaves them orphaned."""

    def __init__(self, tracking: Tracking, owner: int) -> None:
        self.uri, self.experiment = tracking.uri, tracking.experiment
        self.owner_tags = {"runner.host": socket.gethostname(), "runner.pid": str(owner),
                           "runner.pid_started": process_started(owner)}
        bound_retries(self.uri)
        try:
            self.client, self.experiment_id = _open(tracking)
        except Exception as error:
            if not is_server(self.uri):
                raise
            raise (login_refused(self.uri, error, self.experiment)
                   or (unreachable(self.uri, error) if connection_failed(error)
                       else refused(self.uri, error))) from error

    @names_the_server
    def create_parent(self, name: str, tags: dict) -> RunRef:
        """A sweep's parent run (orphans of this host reaped first)."""
        self.reap_orphans()
        run = self.client.create_run(self.experiment_id, run_name=name,
                                     tags={**tags, **self.owner_tags})
        return RunRef(run.info.run_id, self.experiment_id)

    @names_the_server
    def start_run(self, name: str, tags: dict, parent_id: Optional[str], start_ms: int) -> RunRef:
        tags = {**tags, **self.owner_tags}
        if parent_id:
            tags["mlflow.parentRunId"] = parent_id
        else:
            self.reap_orphans()  # a sweep did this once, before its jobs
        run = self.client.create_run(self.experiment_id, run_name=name, tags=tags,
                                     start_time=start_ms)
        return RunRef(run.info.run_id, self.experiment_id)

    @names_the_server
    def finish_run(self, run_id: str, params: dict, result: JobResult, end_ms: int) -> None:
        """Draw the result's pictures, log everything in one batch, then end the run FINISHED,
        or as its error says; a picture that cannot be drawn fails the run."""
        from mlflow.entities import Metric, Param, RunTag

        from runner.plots import output_over_time

        directory, error, tags = result.artifact_dir, result.error, dict(result.tags)
        directory.mkdir(parents=True, exist_ok=True)
        for picture in result.pictures:
            try:
                output_over_time(picture.output, picture.title, directory / picture.file_name)
            except Exception as drawing:
                error = error or Failure.of(drawing)
        if error is not None:
            (directory / "error.txt").write_text(error.traceback)
            tags["error"] = error.line[:ERROR_TAG_LIMIT]
        params, long_values = params_for_mlflow(params)
        for key, value in long_values.items():
            (directory / "params").mkdir(exist_ok=True)
            (directory / "params" / f"{key}.txt").write_text(value)
        self.client.log_batch(
            run_id,
            metrics=[Metric(k, float(v), 0, 0) for k, v in result.metrics.items()],
            params=[Param(k, v) for k, v in params.items()],
            tags=[RunTag(k, str(v)) for k, v in tags.items()],
        )
        if any(directory.iterdir()):
            self.client.log_artifacts(run_id, str(directory))
        self.client.set_terminated(run_id, error.status if error else "FINISHED", end_time=end_ms)

    @names_the_server
    def close_sweep(self, parent_id: str, status: Optional[str],
                    jobs: Sequence[JobReport], earlier: Sequence[str] = ()) -> list:
        """The parent's summary (table, figure, note) of each job's latest run, then its end;
        returns the rows. `earlier`: a resumed sweep's runs from before it was resumed."""
        from runner.plots import grid_figure
        from runner.recording.summary import (child_row, latest_attempts, table_columns,
                                              unrecorded_row)
        from runner.report import summary_text

        children = self.client.search_runs(
            [self.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{parent_id}'",
            max_results=10000)
        if status is None:  # every job has returned: a child still RUNNING lost its end
            children = [self._end_unclosed(child) if child.info.status == "RUNNING" else child
                        for child in children]
        children, superseded = latest_attempts(children, {job.job for job in jobs}, set(earlier))
        for run_id, by in superseded:  # a resumed sweep's earlier attempts stay, pointing on
            self.client.set_tag(run_id, "superseded_by", by)
        rows = [child_row(child) for child in children]
        recorded = {row["job"] for row in rows}
        rows += [unrecorded_row(job) for job in jobs if job.job not in recorded]
        rows.sort(key=lambda row: row["job"])
        failed = [row["overrides"] for row in rows if row["status"] != "FINISHED"]
        self.client.log_table(parent_id, data=table_columns(rows), artifact_file="summary.json")
        text = summary_text(rows)
        self.client.log_text(parent_id, text, "summary.txt")
        self.client.set_tag(parent_id, "mlflow.note.content", f"```\n{text}\n```"[:ERROR_TAG_LIMIT])
        if rows:
            self.client.log_figure(parent_id, grid_figure(rows), "grid.png")
        self.client.set_tag(parent_id, "jobs.total", str(len(rows)))
        self.client.set_tag(parent_id, "jobs.failed", str(len(failed)))
        if failed:
            self.client.set_tag(parent_id, "jobs.failed_cells", "; ".join(failed)[:ERROR_TAG_LIMIT])
        self.client.set_terminated(parent_id, status or ("FAILED" if failed else "FINISHED"))
        return rows

    def _end_unclosed(self, child):
        """End FAILED a child whose job ended without closing it (its recorder or worker died)."""
        self.client.set_tag(child.info.run_id, "error", UNCLOSED)
        self.client.set_terminated(child.info.run_id, "FAILED")
        return self.client.get_run(child.info.run_id)

    def reap_orphans(self) -> list:
        """End KILLED the runs left RUNNING by a process of this host that is gone (kill -9,
        OOM): MLflow itself never ends them."""
        host = self.owner_tags["runner.host"]
        running = self.client.search_runs(
            [self.experiment_id],
            filter_string=f"attributes.status = 'RUNNING' and tags.`runner.host` = '{host}'",
            max_results=1000)
        reaped = []
        for run in running:
            pid = int(run.data.tags.get("runner.pid", "0"))
            if pid > 0 and process_started(pid) == run.data.tags.get("runner.pid_started"):
                continue  # still running
            self.client.set_tag(run.info.run_id, "error",
                                f"process {pid} on {host} ended without closing this run")
            self.client.set_terminated(run.info.run_id, "KILLED")
            reaped.append(run.info.run_id)
        return reaped


def _open(tracking: Tracking) -> tuple:
    """The client and experiment id; the store and the experiment are created on first use."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    with _store_lock(tracking.uri):  # a fresh sqlite store migrated by two processes breaks
        client = MlflowClient(tracking_uri=tracking.uri)
        client.search_experiments(max_results=1)  # the store made (migrated) here, if new
        experiment = client.get_experiment_by_name(tracking.experiment)
        if experiment is None:
            try:
                client.create_experiment(tracking.experiment,
                                         artifact_location=tracking.artifact_location,
                                         tags=EXPERIMENT_TAGS)
            except MlflowException:  # created meanwhile by another process
                pass
            experiment = client.get_experiment_by_name(tracking.experiment)
        for key, value in EXPERIMENT_TAGS.items():
            if key not in experiment.tags:
                client.set_experiment_tag(experiment.experiment_id, key, value)
        return client, experiment.experiment_id


@contextmanager
def _store_lock(uri: str):
    """An exclusive lock beside a sqlite store (`<db>.lock`); other stores need none."""
    if not uri.startswith("sqlite:///"):
        yield
        return
    database = Path(uri[len("sqlite:///"):])
    database.parent.mkdir(parents=True, exist_ok=True)
    with open(f"{database}.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)

