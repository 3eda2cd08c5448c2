"""Reaping runs left RUNNING by processes that are gone, step by step: a reaper's steps are called
in the order a race would interleave them, against a real sqlite store. And a write that meets a
locked sqlite store is tried again, not lost."""

import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from runner.recording.orphans import ERROR, REAPED_BY, Reaper, owner_tags, process_started
from runner.recording.requests import Tracking
from runner.result import JobResult


@pytest.fixture(scope="module")
def migrated(tmp_path_factory) -> Path:
    """A sqlite store made once (its migrations take a second or two): each test gets a copy."""
    from mlflow import MlflowClient

    database = tmp_path_factory.mktemp("migrated") / "mlflow.db"
    MlflowClient(f"sqlite:///{database}").search_experiments(max_results=1)
    return database


@pytest.fixture
def tracking(migrated, store_uri, tmp_path):
    database = Path(store_uri[len("sqlite:///"):])
    database.parent.mkdir(parents=True)
    shutil.copyfile(migrated, database)
    return Tracking(store_uri, "rnn-shapes", str(tmp_path / "outputs" / "mlartifacts"))


@pytest.fixture
def store(tracking):
    from runner.recording.store import Store

    return Store(tracking, os.getpid())


def _process() -> subprocess.Popen:
    """A live process that ends when its stdin is closed."""
    return subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"],
                            stdin=subprocess.PIPE)


def _end(process: subprocess.Popen) -> None:
    process.stdin.close()
    process.wait(timeout=30)


def _run_of(process: subprocess.Popen, store, client, name: str) -> str:
    """A RUNNING run as `process`'s recording would have started it (job and recorder alike)."""
    tags = owner_tags(process.pid, process.pid)
    return client.create_run(store.experiment_id, tags=tags, run_name=name).info.run_id


def _orphan(store, client, name: str = "orphan") -> tuple:
    """A RUNNING run whose process has ended: (run id, that process's pid)."""
    owner = _process()
    run_id = _run_of(owner, store, client, name)
    _end(owner)
    return run_id, owner.pid


def _now() -> int:
    return int(time.time() * 1000)


def test_a_run_finished_after_the_reaper_read_it_running_stays_finished(store, client):
    owner = _process()
    run_id = _run_of(owner, store, client, "owned")
    reaper = Reaper(store.client, store.experiment_id)
    [seen] = reaper.candidates()
    assert (seen.info.run_id, seen.info.status) == (run_id, "RUNNING")
    client.set_terminated(run_id, "FINISHED")  # its owner ends it, then exits
    _end(owner)
    assert reaper.orphaned(seen)  # as read before: RUNNING, and its processes gone
    assert reaper.end(seen) is False
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED"
    assert ERROR not in run.data.tags and REAPED_BY not in run.data.tags


def test_an_orphan_is_ended_killed_naming_its_process_and_a_second_reaper_leaves_it(
        store, client):
    run_id, pid = _orphan(store, client)
    first, second = Reaper(store.client, store.experiment_id), Reaper(store.client,
                                                                       store.experiment_id)
    [seen_first], [seen_second] = first.candidates(), second.candidates()
    assert first.end(seen_first) is True
    assert second.end(seen_second) is False  # read RUNNING, but read again: KILLED
    run = client.get_run(run_id)
    assert run.info.status == "KILLED"
    assert run.data.tags[ERROR] == f"process {pid} on {first.host} ended without closing this run"
    assert run.data.tags[REAPED_BY] == f"{os.getpid()} {process_started(os.getpid())}"


def test_a_run_whose_recording_process_lives_on_is_not_an_orphan(store, client):
    job, recorder = _process(), _process()
    tags = owner_tags(job.pid, recorder.pid)
    run_id = client.create_run(store.experiment_id, tags=tags, run_name="finishing").info.run_id
    _end(job)  # killed -9, say, while its recording process still finishes its requests
    reaper = Reaper(store.client, store.experiment_id)
    [seen] = reaper.candidates()
    assert reaper.end(seen) is False
    assert client.get_run(run_id).info.status == "RUNNING"
    _end(recorder)
    assert reaper.end(seen) is True
    assert client.get_run(run_id).info.status == "KILLED"


def test_an_orphan_claimed_by_a_live_reaper_is_left_to_it_until_that_reaper_is_gone(
        store, client):
    run_id, _ = _orphan(store, client)
    other = _process()  # another reaper, between its claim and its end
    client.set_tag(run_id, REAPED_BY, f"{other.pid} {process_started(other.pid)}")
    reaper = Reaper(store.client, store.experiment_id)
    [seen] = reaper.candidates()
    assert reaper.end(seen) is False
    assert client.get_run(run_id).info.status == "RUNNING"
    _end(other)  # it died before ending the run: the next reaper ends it
    assert reaper.end(seen) is True
    assert client.get_run(run_id).info.status == "KILLED"


def test_a_conflict_with_another_reaper_is_ignored_and_the_job_creates_its_run(
        store, client, monkeypatch, capsys):
    from mlflow.exceptions import MlflowException

    run_id, _ = _orphan(store, client)

    def another_reaper_first(*args):  # the error a PostgreSQL store sends for two inserts at once
        raise MlflowException('(psycopg.errors.UniqueViolation) duplicate key value violates '
                              'unique constraint "tag_pk"', error_code="BAD_REQUEST")

    monkeypatch.setattr(store.client, "set_tag", another_reaper_first)
    mine = store.start_run("mine", {}, None, _now())
    assert client.get_run(mine.run_id).info.status == "RUNNING"
    assert client.get_run(run_id).info.status == "RUNNING"  # the other reaper ends it
    assert capsys.readouterr().err == ""


def test_a_reap_that_fails_is_said_on_one_line_and_the_job_creates_its_run(
        store, client, monkeypatch, capsys):
    def store_on_fire(*args, **kwargs):
        raise RuntimeError("store on fire\nsecond line")

    monkeypatch.setattr(store.client, "search_runs", store_on_fire)
    mine = store.start_run("mine", {}, None, _now())
    assert client.get_run(mine.run_id).info.status == "RUNNING"
    assert capsys.readouterr().err == (f"runner: orphaned runs in {store.uri} were not reaped "
                                       "(RuntimeError: store on fire); going on\n")


def test_a_process_reaps_a_store_once(store, client, tmp_path):
    first, _ = _orphan(store, client, "first")
    assert store.reap_orphans() == [first]
    second, _ = _orphan(store, client, "second")
    store.start_run("mine", {}, None, _now())
    assert store.reap_orphans() == []
    assert client.get_run(second).info.status == "RUNNING"  # the next process to start reaps it


def _locked_error(tmp_path):
    """sqlite's own "database is locked", raised as MLflow 3.17 raises it from a session."""
    import sqlite3

    import sqlalchemy
    from mlflow.exceptions import MlflowException

    database = tmp_path / "locked.db"
    holder = sqlite3.connect(database, isolation_level=None)
    holder.execute("create table t (x)")
    holder.execute("begin exclusive")
    engine = sqlalchemy.create_engine(f"sqlite:///{database}", connect_args={"timeout": 0})
    try:
        with engine.connect() as connection:
            connection.execute(sqlalchemy.text("select * from t"))
    except sqlalchemy.exc.OperationalError as error:
        try:
            raise MlflowException(message=error, error_code="TEMPORARILY_UNAVAILABLE") from error
        except MlflowException as mlflow_error:
            return mlflow_error
    finally:
        holder.close()
        engine.dispose()
    pytest.fail("the database was not locked")


def test_a_call_that_meets_the_lock_is_tried_again_until_it_goes_through_or_its_deadline(
        tmp_path):
    from runner.recording.store import locked, when_unlocked

    error = _locked_error(tmp_path)
    assert locked(error)
    calls = []

    def write(fails: int):
        calls.append(fails)
        if len(calls) <= fails:
            raise error
        return "written"

    assert when_unlocked(write, 2) == "written" and len(calls) == 3
    calls.clear()
    with pytest.raises(type(error), match="database is locked"):
        when_unlocked(write, 5, deadline_s=0)
    assert len(calls) == 1
    calls.clear()

    def refused():
        calls.append(0)
        raise ValueError("Changing param values is not allowed")

    with pytest.raises(ValueError):
        when_unlocked(refused)
    assert len(calls) == 1  # only the lock is waited for


@pytest.mark.slow  # MLflow waits its busy timeout (20 s) before it says the store is locked
def test_a_write_that_meets_the_lock_past_the_busy_timeout_is_recorded_once(
        store, client, tmp_path):
    import logging
    import sqlite3

    run = store.start_run("locked out", {}, None, _now())
    met = threading.Event()

    class Watch(logging.Handler):
        def emit(self, record):
            if "database is locked" in record.getMessage():
                met.set()

    watch = Watch()
    logging.getLogger("mlflow.store.db.utils").addHandler(watch)
    holder = sqlite3.connect(store.uri[len("sqlite:///"):], isolation_level=None)
    holder.execute("begin exclusive")  # another writer, holding the lock past MLflow's timeout
    result = JobResult(label="locked out", params={}, artifact_dir=tmp_path / "artifacts",
                       metrics={"param_count": 60.0}, tags={"shape.match": "true"})
    finishing = threading.Thread(target=store.finish_run,
                                 args=(run.run_id, {"model": "lstm"}, result, _now()))
    try:
        finishing.start()
        assert met.wait(120)  # the first try failed: the lock is then let go
    finally:
        holder.execute("rollback")
        holder.close()
        logging.getLogger("mlflow.store.db.utils").removeHandler(watch)
    finishing.join(180)
    recorded = client.get_run(run.run_id)
    assert recorded.info.status == "FINISHED"
    assert recorded.data.params == {"model": "lstm"}
    assert recorded.data.tags["shape.match"] == "true"
    assert [m.value for m in client.get_metric_history(run.run_id, "param_count")] == [60.0]
