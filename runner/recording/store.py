"""The MLflow store: open it, create and end runs, log a job's result, reap orphans.

Made in the recording process only (MLflow is imported there, never in the job's)."""

import fcntl
import functools
import json
import os
import random
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Optional, Sequence

from runner.recording.limits import ERROR_TAG_LIMIT, params_for_mlflow
from runner.recording.local_faults import database_of, fault_of, names_the_store, refusal
from runner.recording.orphans import ERROR, REAPED_BY, owner_tags, reap_once
from runner.recording.requests import RUN_KEY, JobReport, RunRef, Tracking
from runner.recording.server import (bound_retries, connection_failed, is_server,
                                     login_refused, refused, unreachable)
from runner.result import Failure, JobResult

# The UI opens the runs table ("Model training"), not the GenAI overview, on these experiments
EXPERIMENT_TAGS = {"mlflow.experimentKind": "custom_model_development"}
# sqlite answers "database is locked" to a write that waited past MLflow's busy timeout (20 s)
# for another writer: such a call is tried again until this long after its first try
LOCKED_DEADLINE_S = 120.0
UNCLOSED = ("its job ended, but its run was never closed (its recording process or its "
            "worker died)")


class Store:
    """One experiment of one store, for the runs of one job process (`owner`), written by this
    process: a run is orphaned once both are gone (orphans.py)."""

    def __init__(self, tracking: Tracking, owner: int) -> None:
        self.uri, self.experiment = tracking.uri, tracking.experiment
        self.owner_tags = owner_tags(owner, os.getpid())
        bound_retries(self.uri)
        database = database_of(self.uri)
        if database is not None and (refused_store := refusal(database)) is not None:
            raise refused_store  # before its directory, its lock or its file is made
        try:
            self.client, self.experiment_id = _open(tracking)
        except Exception as error:
            if not is_server(self.uri):
                fault = fault_of(self.uri, error)
                if fault is None:
                    raise
                raise fault from error
            raise (login_refused(self.uri, error, self.experiment)
                   or (unreachable(self.uri, error) if connection_failed(error)
                       else refused(self.uri, error))) from error

    @names_the_store
    def create_parent(self, name: str, tags: dict) -> RunRef:
        """A sweep's parent run (orphans of this host reaped first)."""
        self.reap_orphans()
        run = self.client.create_run(self.experiment_id, run_name=name,
                                     tags={**tags, **self.owner_tags})
        return RunRef(run.info.run_id, self.experiment_id, run.info.artifact_uri)

    @names_the_store
    def start_run(self, name: str, tags: dict, parent_id: Optional[str], start_ms: int) -> RunRef:
        tags = {**tags, **self.owner_tags}
        if parent_id:
            tags["mlflow.parentRunId"] = parent_id
        else:
            self.reap_orphans()  # a sweep did this once, before its jobs
        run = self.client.create_run(self.experiment_id, run_name=name, tags=tags,
                                     start_time=start_ms)
        return RunRef(run.info.run_id, self.experiment_id)

    @names_the_store
    def find_run(self, key: str) -> Optional[RunRef]:
        """The run made with this key (tag RUN_KEY), if the store has it."""
        found = self.client.search_runs([self.experiment_id],
                                        filter_string=f"tags.`{RUN_KEY}` = '{key}'",
                                        max_results=1)
        return RunRef(found[0].info.run_id, self.experiment_id) if found else None

    @names_the_store
    def finish_run(self, run_id: str, params: dict, result: JobResult, end_ms: int,
                   again: bool = False) -> None:
        """Draw the result's pictures, log everything in one batch, then end the run FINISHED,
        or as its error says; a picture that cannot be drawn fails the run. `again`: tried
        before (a server went away meanwhile), so the run may have been ended by a reaper or
        a sweep's close while its end waited: their words on it are taken back."""
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
        if again:
            self._take_back_end(run_id, keep_error=error is not None)
        if any(directory.iterdir()):
            self.client.log_artifacts(run_id, str(directory))
        self.client.set_terminated(run_id, error.status if error else "FINISHED", end_time=end_ms)

    def _take_back_end(self, run_id: str, keep_error: bool) -> None:
        """The tags of a reaper or of a sweep's close that ended this run while its own end
        waited in the journal: its job's end is the one that counts."""
        tags = self.client.get_run(run_id).data.tags
        if REAPED_BY in tags:
            self.client.delete_tag(run_id, REAPED_BY)
        ours = tags.get(ERROR, "") == UNCLOSED or tags.get(ERROR, "").endswith(
            "ended without closing this run")
        if ours and not keep_error:
            self.client.delete_tag(run_id, ERROR)

    @names_the_store
    def close_sweep(self, parent_id: str, status: Optional[str],
                    jobs: Sequence[JobReport], earlier: Sequence[str] = (),
                    sort_by: str = "job") -> list:
        """The parent's summary (table, figures, note) of each job's latest run, then its end;
        returns the rows. `earlier`: a resumed sweep's runs from before it was resumed;
        `sort_by`: the table's order, job or throughput (fastest first)."""
        from mlflow.entities import RunTag

        from runner.plots import sweep_figures
        from runner.recording.summary import (child_row, latest_attempts, ordered, table_columns,
                                              unrecorded_row)
        from runner.report import SHARED_VIEW_TAG, summary_text, sweep_summary, sweep_view
        from runner.results import CELLS_FILE, cell_records

        children = self.client.search_runs(
            [self.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{parent_id}'",
            max_results=10000)
        if status is None:  # every job has returned: a child still RUNNING lost its end
            children = [self._end_unclosed(child) if child.info.status == "RUNNING" else child
                        for child in children]
        children = self._backend_differences(children)
        # What `runner.results` reads of the sweep once it is closed: one file, not every run
        self.client.log_dict(parent_id, cell_records(latest_attempts(children)[0]), CELLS_FILE)
        children, superseded = latest_attempts(children, {job.job for job in jobs}, set(earlier))
        for run_id, by in superseded:  # a resumed sweep's earlier attempts stay, pointing on
            self.client.set_tag(run_id, "superseded_by", by)
        rows = [child_row(child) for child in children]
        recorded = {row["job"] for row in rows}
        rows += [unrecorded_row(job) for job in jobs if job.job not in recorded]
        rows = ordered(rows, sort_by)
        failed = [row["overrides"] for row in rows if row["status"] != "FINISHED"]
        self.client.log_table(parent_id, data=table_columns(rows), artifact_file="summary.json")
        speed = sort_by == "throughput"  # a sweep about speed: its figures in table and picture
        text = summary_text(rows, speed)
        self.client.log_text(parent_id, text, "summary.txt")
        for name, draw in sweep_figures(rows, speed).items():
            self.client.log_figure(parent_id, draw(rows), name)
        # The address the sweep prints opens the UI on this view of its children
        self.client.set_experiment_tag(self.experiment_id, SHARED_VIEW_TAG + parent_id,
                                       json.dumps(sweep_view(parent_id, speed)))
        note = sweep_summary(rows, speed)  # a big sweep's grouped by knob: it fits
        tags = {"mlflow.note.content": f"```\n{note}\n```"[:ERROR_TAG_LIMIT],
                "jobs.total": str(len(rows)), "jobs.failed": str(len(failed))}
        if failed:
            tags["jobs.failed_cells"] = "; ".join(failed)[:ERROR_TAG_LIMIT]
        self.client.log_batch(parent_id, tags=[RunTag(key, value) for key, value in tags.items()])
        self.client.set_terminated(parent_id, status or ("FAILED" if failed else "FINISHED"))
        return rows

    def _backend_differences(self, children: list) -> list:
        """The children, each cell run on several backends with BACKENDS_DIFF logged (at step
        0, time 0: logged again, it is the same metric)."""
        from mlflow.entities import Metric

        from runner.recording.summary import BACKENDS_DIFF, backend_differences, latest_attempts

        differences = backend_differences(latest_attempts(children)[0], self._predictions)
        for run_id, value in differences.items():
            self.client.log_batch(run_id, metrics=[Metric(BACKENDS_DIFF, value, 0, 0)])
        return [self.client.get_run(child.info.run_id) if child.info.run_id in differences
                else child for child in children]

    def _predictions(self, run_id: str) -> dict:
        """A run's predicted outputs, from its predictions.npz (its inputs left out)."""
        import tempfile

        import numpy as np

        with tempfile.TemporaryDirectory() as directory:
            path = self.client.download_artifacts(run_id, "predictions.npz", directory)
            with np.load(path) as arrays:
                return {name: arrays[name] for name in arrays.files
                        if not name.startswith("input")}

    def _end_unclosed(self, child):
        """End FAILED a child whose job ended without closing it (its recorder or worker died)."""
        self.client.set_tag(child.info.run_id, "error", UNCLOSED)
        self.client.set_terminated(child.info.run_id, "FAILED")
        return self.client.get_run(child.info.run_id)

    def reap_orphans(self) -> list:
        """End KILLED the runs of this host whose processes are gone (orphans.py): once per
        process and store, never failing the job."""
        return reap_once(self.client, self.uri, self.experiment_id)


def _open(tracking: Tracking) -> tuple:
    """The client and experiment id; the store and the experiment are created on first use."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    if tracking.uri.startswith("sqlite:"):  # a second of imports: before the lock, not under it
        import mlflow.store.tracking.sqlalchemy_store  # noqa: F401
    with _store_lock(tracking.uri):  # a fresh sqlite store migrated by two processes breaks
        client = LockRetryingClient(when_unlocked(MlflowClient, tracking_uri=tracking.uri))
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


def locked(error: BaseException) -> bool:
    """sqlite's "database is locked" anywhere in the error's chain. MLflow 3.17 raises it as an
    MlflowException (TEMPORARILY_UNAVAILABLE) from sqlalchemy's OperationalError, after rolling
    the transaction back (mlflow/store/db/utils.py, make_managed_session)."""
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if "database is locked" in str(error):
            return True
        error = error.__cause__ or error.__context__
    return False


def when_unlocked(call, *args, deadline_s: float = LOCKED_DEADLINE_S, **kwargs):
    """`call(*args, **kwargs)`, tried again while the store answers "database is locked", until
    `deadline_s` after the first try: load on a sqlite store costs time, not runs.

    A second try writes nothing twice. The transaction that met the lock was rolled back, so
    none of it is in the store (sqlite refuses a COMMIT it cannot make; it never reports a lock
    after committing), and `create_run` is one transaction: a run is created once. A call made
    of several transactions (`log_batch`: params, metrics, tags, each committed alone) may have
    committed the first ones; tried again they change nothing: a param with the same value is
    skipped, a metric with the same key, value, step and timestamp is found already there, a
    tag is set to the value it has."""
    deadline = time.monotonic() + deadline_s
    while True:
        try:
            return call(*args, **kwargs)
        except Exception as error:
            if not locked(error) or time.monotonic() >= deadline:
                raise
        time.sleep(random.uniform(0.05, 0.5))  # apart from the other writers that met the lock


class LockRetryingClient:
    """An MlflowClient whose every call goes through `when_unlocked`."""

    def __init__(self, client) -> None:
        self._client = client

    def __getattr__(self, name: str):
        attribute = getattr(self._client, name)
        if not callable(attribute):
            return attribute
        return functools.wraps(attribute)(functools.partial(when_unlocked, attribute))
