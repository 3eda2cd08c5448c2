"""Team tracking: `mlflow server` with MLflow's logins (basic-auth) on a real PostgreSQL,
artifacts proxied, runner pointed at it with MLFLOW_TRACKING_URI and a user's credentials in
MLflow's own variables. The server is stopped in the middle of a sweep, which is then resumed;
refused logins start nothing; writers record all at once, and reapers collide."""

import os
import re
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

import servers
from helpers import ARTIFACTS, ROOT, check_children, runner_env, runs_of, start_cli

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(servers.POSTGRES_BIN is None,
                       reason="Debian's postgresql is not installed (.ci/run installs it with apt-get)"),
]


@pytest.fixture(scope="module")
def _server(tmp_path_factory):
    """One PostgreSQL and one team server for the module (about 15 s to start); each test
    records into an experiment of its own, as a team's members name theirs."""
    directory = tmp_path_factory.mktemp("team")
    with servers.postgres() as database, servers.team_server(database, directory) as server:
        yield server


@pytest.fixture(scope="module")
def _alice_login(_server) -> dict:
    return _server.create_user("alice")


@pytest.fixture
def team_server(_server):
    if _server.process is None or _server.process.poll() is not None:  # a test stopped it
        _server.start()
    return _server


@pytest.fixture
def alice(team_server, _alice_login, monkeypatch):
    """A user of the team server: the environment of her shell (this test's own client too)."""
    for name, value in _alice_login.items():
        monkeypatch.setenv(name, value)
    return {"MLFLOW_TRACKING_URI": team_server.url, **_alice_login}


def test_sixteen_jobs_on_four_workers_reach_the_team_server(team_server, alice, run_cli, tmp_path):
    from mlflow import MlflowClient

    result = run_cli("-m", "hydra/launcher=joblib", "hydra.launcher.n_jobs=4",
                     "model=simple_rnn,lstm,gru,bilstm", "return_sequences=false,true", "seed=0,1",
                     "tracking.experiment=four-workers", env=alice)
    assert result.returncode == 0, result.stderr[-3000:]
    client = MlflowClient(team_server.url)
    parent, children = check_children(client, 16, experiment="four-workers")
    assert {c.data.params["seed"] for c in children} == {"0", "1"}
    for child in children:  # proxied: the run points at the server, the files are in its store
        assert child.info.artifact_uri.startswith("mlflow-artifacts:/")
        stored = team_server.artifacts / child.info.experiment_id / child.info.run_id / "artifacts"
        assert ARTIFACTS <= {path.name for path in stored.iterdir()}
    assert (team_server.artifacts / parent.info.experiment_id / parent.info.run_id / "artifacts"
            / "summary.json").is_file()


# Without a journal (tracking.journal=null) records never wait for a server that went away:
# the story of a sweep that fails fast and is resumed (test_outage.py: the journal's story)
GRID = ["hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "model=simple_rnn,lstm,gru,bilstm",
        "return_sequences=false,true", "tracking.journal=null"]
STOPPED = "tracking.experiment=stopped"


def test_a_server_stopped_mid_sweep_fails_the_rest_fast_and_the_sweep_resumes(
        team_server, alice, tmp_path):
    from mlflow import MlflowClient

    client = MlflowClient(team_server.url)
    env = runner_env(**alice)
    sweep = start_cli(tmp_path, "-m", *GRID, STOPPED, env=env)
    try:
        finished = []
        while len(finished) < 2:  # then the server goes away, with six jobs still to run
            assert sweep.poll() is None, sweep.communicate()
            experiment = client.get_experiment_by_name("stopped")
            if experiment is not None:
                finished = client.search_runs([experiment.experiment_id],
                                              filter_string="attributes.status = 'FINISHED'")
            time.sleep(0.2)
        stopping = time.monotonic()
        team_server.stop()
        out, err = sweep.communicate(timeout=300)
        print(f"the sweep ended {time.monotonic() - stopping:.1f} s after the server was told to stop")
    finally:
        sweep.kill()
    assert sweep.returncode == 1
    url = team_server.url
    assert (f"error: tracking server {url} did not answer ([Errno 111] Connection refused"
            in err)
    assert "the sweep's parent run" in err and "could not be closed" in err
    lost = [line for line in out.splitlines() if "its run could not be recorded" in line]
    assert len(lost) >= 1
    assert all(f"StoreUnreachable: tracking server {url} did not answer" in line for line in lost)
    summary = [line for line in out.splitlines() if line[:1].isdigit()]
    assert len(summary) == 8  # every cell is in the table, recorded or not

    team_server.start()  # the same database: what reached it is there once, nothing twice
    runs = runs_of(client, "stopped")
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    names = [c.info.run_name for c in children]
    assert len(names) == len(set(names)) <= 8
    done = [c for c in children if c.info.status == "FINISHED"]
    assert len(done) >= 2
    for child in done:
        assert {a.path for a in client.list_artifacts(child.info.run_id)} >= ARTIFACTS

    # the next job on this host ends what the outage left RUNNING (the parent, a job mid-record)
    again = start_cli(tmp_path, STOPPED, env=env)
    out, err = again.communicate(timeout=300)
    assert again.returncode == 0, err[-2000:]
    runs = runs_of(client, "stopped")
    assert [r for r in runs if r.info.status == "RUNNING"] == []
    for run in runs:
        if run.info.status == "KILLED":
            assert "ended without closing this run" in run.data.tags["error"]
    assert sum(r.info.status == "KILLED" for r in runs) >= 1  # the sweep's parent at least

    # resumed: what did not finish runs again under the same parent, on joblib's workers
    [parent] = [r for r in runs if "sweep.dir" in r.data.tags]
    kept = {c.data.tags["job.num"]: c.info.run_id for c in done}
    resumed = start_cli(tmp_path, "-m", *GRID, STOPPED, "resume=last", env=env)
    out, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, err[-3000:]
    assert out.splitlines()[0].startswith(
        f"resume: sweep {parent.info.run_id}: {8 - len(kept)} of 8 cells to run (jobs ")
    parent = client.get_run(parent.info.run_id)
    assert parent.info.status == "FINISHED"
    assert (parent.data.tags["jobs.total"], parent.data.tags["jobs.skipped"]) == ("8", str(len(kept)))
    children = [r for r in runs_of(client, "stopped") if r.data.tags.get("mlflow.parentRunId")
                == parent.info.run_id]
    current = {c.data.tags["job.num"]: c for c in children if "superseded_by" not in c.data.tags}
    assert sorted(current) == [str(job) for job in range(8)]
    assert {c.info.status for c in current.values()} == {"FINISHED"}
    assert all(current[job].info.run_id == run_id for job, run_id in kept.items())
    for child in children:
        if child.info.run_id not in {c.info.run_id for c in current.values()}:
            job = child.data.tags["job.num"]
            assert child.data.tags["superseded_by"] == current[job].info.run_id
    # again: nothing left to run; another grid: refused
    total = len(runs_of(client, "stopped"))
    again = start_cli(tmp_path, "-m", *GRID, STOPPED, "resume=last", env=env)
    out, err = again.communicate(timeout=300)
    assert again.returncode == 0, err[-3000:]
    assert out.splitlines()[0] == (f"resume: every cell of sweep {parent.info.run_id} FINISHED "
                                   f"with the same config; nothing to run")
    other = start_cli(tmp_path, "-m", *GRID[:-2], GRID[-1], STOPPED, "return_sequences=true",
                      f"resume={parent.info.run_id}", env=env)
    out, err = other.communicate(timeout=300)
    assert other.returncode == 1
    assert err.startswith(f"resume: this grid is not the grid of sweep {parent.info.run_id}: "
                          f"missing 'model=bilstm return_sequences=false tracking.experiment=stopped "
                          f"tracking.journal=null', ")
    assert err.count("\n") == 1
    assert len(runs_of(client, "stopped")) == total  # neither made a run


def test_only_the_team_writes_and_a_refused_login_starts_nothing(team_server, alice, run_cli,
                                                                 tmp_path):
    """With credentials a sweep is recorded, and no credential is; without, with a wrong
    password, or as a user who may only read: one line, no job, no run."""
    from mlflow import MlflowClient

    sweep = ["-m", "model=simple_rnn,gru", "tracking.experiment=logins"]
    result = run_cli(*sweep, env=alice)
    assert result.returncode == 0, result.stderr[-3000:]
    client = MlflowClient(team_server.url)
    parent, children = check_children(client, 2, models=("simple_rnn", "gru"),
                                      experiment="logins")
    password = alice["MLFLOW_TRACKING_PASSWORD"]
    for run in (parent, *children):
        recorded = [*run.data.params.values(), *run.data.tags.values()]
        assert not any(password in value for value in recorded)
    local = client.download_artifacts(children[0].info.run_id, "config.yaml", str(tmp_path / "c"))
    assert password not in open(local).read()
    assert password not in result.stdout + result.stderr

    # the same login written into the address: used, and never shown or recorded either
    address = team_server.url.replace("://", f"://alice:{password}@")
    by_address = run_cli("-m", "model=lstm", "tracking.experiment=logins",
                         f"tracking.uri={address}")  # no MLFLOW_* set
    assert by_address.returncode == 0, by_address.stderr[-3000:]
    assert password not in by_address.stdout + by_address.stderr
    runs = [run for run in runs_of(client, "logins") if "lstm" in run.info.run_name]
    assert sorted(run.info.run_name for run in runs) == [
        f"model=lstm tracking.experiment=logins tracking.uri={team_server.url}",  # the parent
        f"model=lstm,tracking.experiment=logins,tracking.uri={team_server.url}"]
    for run in runs:
        recorded = [*run.data.params.values(), *run.data.tags.values()]
        assert not any(password in value for value in recorded)

    url, bob = team_server.url, team_server.create_user("bob")  # READ, by the server's default
    refusals = {
        "no credentials": ({"MLFLOW_TRACKING_URI": url},
                           f"error: tracking server {url} refused a login without credentials "
                           f"(HTTP 401): set MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD; "
                           f"no job was started\n"),
        "a wrong password": ({**alice, "MLFLOW_TRACKING_PASSWORD": "not-" + password},
                             f"error: tracking server {url} refused the login of user alice "
                             f"(HTTP 401): set MLFLOW_TRACKING_USERNAME and "
                             f"MLFLOW_TRACKING_PASSWORD; no job was started\n"),
        "a reader": ({"MLFLOW_TRACKING_URI": url, **bob},
                     f"error: tracking server {url}: user bob may not write to experiment "
                     f"logins (HTTP 403); its owner or an admin of the server can grant EDIT; "
                     f"no job was started\n"),
    }
    for case, (env, line) in refusals.items():
        started = time.monotonic()
        refused = run_cli(*sweep, env=env, timeout=60)
        print(f"{case}: refused in {time.monotonic() - started:.1f} s")
        assert (refused.returncode, refused.stderr, refused.stdout) == (1, line, ""), case
        assert env.get("MLFLOW_TRACKING_PASSWORD", "-") not in refused.stderr
    assert len(runs_of(client, "logins")) == 5  # the two sweeps', nothing from the refused
    assert len(list((tmp_path / "outputs").glob("multirun/*/*/[0-9]"))) == 3  # their jobs only

def test_a_reaper_that_collides_with_another_goes_on_and_its_job_creates_its_run(
        team_server, alice, capsys):
    """Another reaper's tag on the orphan, inserted but not yet committed when this reaper inserts
    its own: PostgreSQL holds this insert until the other commits, then refuses it."""
    import psycopg
    from mlflow import MlflowClient

    from runner.recording.orphans import REAPED_BY, owner_tags
    from runner.recording.requests import Tracking
    from runner.recording.store import Store

    client = MlflowClient(team_server.url)
    store = Store(Tracking(team_server.url, "reapers"), os.getpid())
    owner = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"],
                             stdin=subprocess.PIPE)
    orphan = client.create_run(store.experiment_id, tags=owner_tags(owner.pid, owner.pid),
                               run_name="orphan").info.run_id
    owner.stdin.close()
    owner.wait(timeout=30)
    with psycopg.connect(team_server.backend_uri) as other, \
            psycopg.connect(team_server.backend_uri, autocommit=True) as watcher, \
            ThreadPoolExecutor(1) as job:
        other.execute("insert into tags (key, value, run_uuid) values (%s, %s, %s)",
                      (REAPED_BY, "another reaper", orphan))
        started = job.submit(store.start_run, "mine", {}, None, int(time.time() * 1000))
        deadline = time.monotonic() + 120
        while not watcher.execute("select count(*) from pg_stat_activity where wait_event_type"
                                  " = 'Lock' and query ilike 'insert into tags%%'").fetchone()[0]:
            assert not started.done(), started.result()  # its insert must wait for the other's
            assert time.monotonic() < deadline, "the reaper never inserted its tag"
            time.sleep(0.1)
        other.commit()
        mine = started.result(timeout=120)
    assert client.get_run(mine.run_id).info.status == "RUNNING"
    run = client.get_run(orphan)
    assert run.info.status == "RUNNING"  # left to the reaper that claimed it first
    assert run.data.tags[REAPED_BY] == "another reaper"
    assert "not reaped" not in capsys.readouterr().err  # a collision is expected, not reported


def test_sixteen_writers_at_once_lose_and_rewrite_nothing(team_server, alice, tmp_path):
    """benchmarks/store_load.py against the server: 16 writer processes released together, each
    also meeting the same 4 orphans to reap."""
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "store_load.py"), "--writers", "16",
         "--orphans", "4", "--uri", team_server.url],
        cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    *_, orphans, writers = result.stdout.splitlines()
    assert orphans == "orphans 4: ended KILLED by a reaper 4"
    assert re.fullmatch(r"writers 16: finished 16, lost 0, rewritten 0, slowest write \d+\.\d s",
                        writers), result.stdout
