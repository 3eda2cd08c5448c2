"""The journal: requests on disk before the store, taken over once their writer is gone, sent
once however often they are replayed."""

import os
from pathlib import Path

from runner.recording.journal import JournalFile, files, waiting
from runner.recording.requests import CloseSweep, CreateParent, FinishRun, StartRun, Tracking
from runner.result import JobResult


def _tracking(store_uri: str, tmp_path: Path) -> Tracking:
    return Tracking(store_uri, "rnn-shapes", str(tmp_path / "mlartifacts"),
                    str(tmp_path / "journal"), 10.0)


def test_a_journal_file_is_held_by_its_writer_and_removed_once_nothing_waits(tmp_path):
    tracking = Tracking("sqlite:///x.db", "rnn-shapes", None, str(tmp_path), 10.0)
    journal = JournalFile.create(tmp_path)
    first = journal.append(StartRun(tracking, "k1", "a", {}, "parent", 0))
    second = journal.append(StartRun(tracking, "k2", "b", {}, "parent", 0))
    assert JournalFile.take_over(journal.path) is None  # its writer still holds it
    journal.mark(first, "done", run_id="r1")
    assert waiting(tmp_path) == 1 and [e.seq for e in journal.pending()] == [second.seq]
    journal._handle.close()  # its writer dies: the lock goes with it

    taken = JournalFile.take_over(journal.path)
    assert [e.request.key for e in taken.pending()] == ["k2"]
    assert [e.run_id for e in taken.entries()] == ["r1", None]
    taken.mark(taken.pending()[0], "done")
    taken.close()
    assert files(tmp_path) == [] and waiting(tmp_path) == 0


def test_a_replayed_journal_records_each_run_once_however_often_it_is_sent(tmp_path, store_uri):
    """A run whose creation reached the store but whose answer was lost, its end, and the
    sweep's close, left in the journal of a process that is gone: sent twice, recorded once."""
    from mlflow import MlflowClient

    from runner.recording.delivery import Delivery
    from runner.recording.process import OpenStores

    tracking = _tracking(store_uri, tmp_path)
    stores = OpenStores(os.getpid())
    parent = CreateParent(tracking, "sweep", {"sweep.dir": str(tmp_path)}).apply(stores)
    artifacts = tmp_path / "job0" / "artifacts"
    artifacts.mkdir(parents=True)
    (artifacts / "shapes.json").write_text("{}")
    start = StartRun(tracking, "key-0", "model=gru", {"job.num": "0"}, parent.run_id, 0)
    start.apply(stores)  # it reached the store; its answer never came back
    result = JobResult(label="gru", params={"model": "gru"}, artifact_dir=artifacts,
                       tags={"shape.output": "(4, 3)"}, metrics={"param_count": 48.0})
    journal = JournalFile.create(Path(tracking.journal))
    for request in (start, FinishRun(tracking, "key-0", {"model": "gru"}, result, 1000),
                    CloseSweep(tracking, parent.run_id, None, ())):
        journal.append(request)
    journal._handle.close()  # its writer is gone

    for _ in range(2):  # a second replay finds nothing left to send
        replayed = Delivery(OpenStores(os.getpid()), announce=False).take_over(
            Path(tracking.journal))
    assert replayed.sent == [] and files(Path(tracking.journal)) == []

    client = MlflowClient(store_uri)
    [child] = client.search_runs([parent.experiment_id],
                                 filter_string=f"tags.mlflow.parentRunId = '{parent.run_id}'")
    assert child.info.status == "FINISHED"
    assert child.data.params == {"model": "gru"}
    assert len(client.get_metric_history(child.info.run_id, "param_count")) == 1
    assert [a.path for a in client.list_artifacts(child.info.run_id)] == ["shapes.json"]
    closed = client.get_run(parent.run_id)
    assert closed.info.status == "FINISHED" and closed.data.tags["jobs.total"] == "1"
