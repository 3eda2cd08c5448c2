"""Sweeps past one process: the same grid under Hydra's joblib launcher, one parent for all."""

from conftest import runs_of

ARTIFACTS = {"config.yaml", "device.json", "model_summary.txt", "predictions.npz", "shapes.json"}


def test_joblib_runs_eight_jobs_on_four_workers_under_one_parent(run_cli, store_uri, tmp_path):
    from mlflow import MlflowClient

    assert not (tmp_path / "mlflow.db").exists()  # a fresh store, initialised before launch
    result = run_cli("-m", "hydra/launcher=joblib", "hydra.launcher.n_jobs=4",
                     "model=simple_rnn,lstm,gru,bilstm", "return_sequences=false,true")
    assert result.returncode == 0, result.stderr[-3000:]
    client = MlflowClient(store_uri)
    runs = runs_of(client)
    [parent] = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if r is not parent]
    assert len(children) == 8
    assert {c.data.tags["mlflow.parentRunId"] for c in children} == {parent.info.run_id}
    assert {c.info.status for c in children} == {"FINISHED"} and parent.info.status == "FINISHED"
    workers = {c.data.tags["runner.pid"] for c in children}
    assert parent.data.tags["runner.pid"] not in workers and len(workers) >= 2
    assert sorted(int(c.data.tags["job.num"]) for c in children) == list(range(8))
    for child in children:
        sequences = child.data.params["return_sequences"] == "True"
        assert child.data.params["model"] in ("simple_rnn", "lstm", "gru", "bilstm")
        assert child.data.tags["shape.match"] == "true"
        assert child.data.tags["shape.output"].startswith("(4, 30," if sequences else "(4, ")
        assert len(child.data.tags["predictions.sha256"]) == 64
        assert child.data.metrics["oracle.max_abs_err"] < 1e-5
        names = {a.path for a in client.list_artifacts(child.info.run_id)}
        assert names == ARTIFACTS | ({"output_over_time.png"} if sequences else set())
    assert parent.data.tags["jobs.total"] == "8"
