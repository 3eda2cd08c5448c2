"""Every MLflow call of the runner: the store, a sweep's parent run, each job's run.

The calls that touch the store run in the job's recorder process (`runner.recorder`)."""

import fcntl
import functools
import hashlib
import os
import re
import socket
import traceback
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

from runner.report import summary_table
from runner.signals import Interrupted

PARENT_RUN_ENV = "RUNNER_PARENT_RUN_ID"
URI_ENV = "MLFLOW_TRACKING_URI"
ERROR_TAG_LIMIT = 5000  # MLflow keeps tag values up to 8000 characters; the artifact has it all
PARAM_VALUE_LIMIT = 6000  # MLflow's limit; longer values go whole to params/<key>.txt
PARAM_KEY_LIMIT = 250
# The UI opens the runs table ("Model training"), not the GenAI overview, on these experiments
EXPERIMENT_TAGS = {"mlflow.experimentKind": "custom_model_development"}


def param_key(key: str) -> str:
    """A key MLflow accepts, the same for the same input: other characters become `_`, and an
    over-long key keeps its start plus a digest of the whole."""
    safe = re.sub(r"[^A-Za-z0-9_\-. /]", "_", key)
    if len(safe) > PARAM_KEY_LIMIT:
        digest = hashlib.sha256(key.encode()).hexdigest()[:8]
        safe = f"{safe[:PARAM_KEY_LIMIT - 9]}-{digest}"
    return safe


def _params_for_mlflow(params: dict) -> tuple:
    """(params MLflow keeps whole, {key: full value} of the values too long to be params)."""
    kept, long_values = {}, {}
    for key, value in params.items():
        key = param_key(key)
        if len(value) > PARAM_VALUE_LIMIT:
            long_values[key] = value
            note = f" ... [{len(value)} characters: see artifact params/{key}.txt]"
            value = value[:PARAM_VALUE_LIMIT - len(note)] + note
        kept[key] = value
    return kept, long_values


def tracking_uri(tracking_cfg) -> str:
    """MLFLOW_TRACKING_URI when set, else the config's store."""
    return os.environ.get(URI_ENV) or tracking_cfg.uri


def _artifact_location(uri: str, tracking_cfg) -> Optional[str]:
    if tracking_cfg.artifact_root:
        return str(Path(tracking_cfg.artifact_root).absolute())
    if uri.startswith("sqlite:///"):
        return str(Path(uri[len("sqlite:///"):]).parent / "mlartifacts")
    return None  # a tracking server decides (and proxies) where artifacts go


# Against a tracking server that is down, MLflow's defaults retry for about four minutes; a
# job should fail within 30 s instead (set these variables to choose otherwise).
SERVER_DEFAULTS = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1",
                   "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
                   "MLFLOW_HTTP_REQUEST_TIMEOUT": "10"}


@dataclass(frozen=True)
class Failure:
    """How a job failed, as its run records it; made where the exception is, sent anywhere."""
    line: str
    traceback: str
    status: str

    @classmethod
    def of(cls, error: BaseException) -> "Failure":
        return cls(line=f"{type(error).__name__}: {error}",
                   traceback="".join(traceback.format_exception(
                       type(error), error, error.__traceback__)),
                   status="KILLED" if isinstance(error, Interrupted) else "FAILED")


class StoreUnreachable(RuntimeError):
    """The tracking server did not answer; the message names its URI."""


def _is_server(uri: str) -> bool:
    return uri.startswith(("http://", "https://"))


def _connection_failed(error: BaseException) -> bool:
    """A refused, reset or timed-out connection anywhere in the error's chain."""
    from requests.exceptions import ConnectionError as RequestsConnectionError, Timeout

    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, (RequestsConnectionError, Timeout, ConnectionError, TimeoutError)):
            return True
        if "Max retries exceeded" in str(error):  # MLflow's wrapping of a failed connection
            return True
        error = error.__cause__ or error.__context__
    return False


def _unreachable(uri: str, error: BaseException) -> StoreUnreachable:
    text = " ".join(str(error).split())
    reason = re.search(r"\[Errno -?\d+\] [^'\")]+|[Rr]ead timed out|timed out", text)
    retries = os.environ.get("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "")
    return StoreUnreachable(f"tracking server {uri} did not answer "
                            f"({reason.group(0) if reason else text[:200]}; "
                            f"MLFLOW_HTTP_REQUEST_MAX_RETRIES={retries})")


@contextmanager
def _server_calls(uri: str):
    """A failed connection to a tracking server becomes one StoreUnreachable naming it."""
    try:
        yield
    except StoreUnreachable:
        raise
    except Exception as error:
        if _is_server(uri) and _connection_failed(error):
            raise _unreachable(uri, error) from error
        raise


def _names_the_server(function):
    """Store calls on `tracking_cfg` (the first argument) that fail to connect say which server."""
    @functools.wraps(function)
    def calls(tracking_cfg, *args, **kwargs):
        with _server_calls(tracking_uri(tracking_cfg)):
            return function(tracking_cfg, *args, **kwargs)

    return calls


def open_store(tracking_cfg):
    """The client and experiment id; creates the store and the experiment on first use."""
    uri = tracking_uri(tracking_cfg)
    if _is_server(uri):
        for name, value in SERVER_DEFAULTS.items():
            os.environ.setdefault(name, value)
    try:
        return _open_store(uri, tracking_cfg.experiment, _artifact_location(uri, tracking_cfg))
    except Exception as error:
        if not _is_server(uri):
            raise
        if _connection_failed(error):
            raise _unreachable(uri, error) from error
        reason = (str(error).splitlines() or [type(error).__name__])[0][:300]
        raise StoreUnreachable(f"tracking server {uri} refused the store: {reason}") from error


@functools.lru_cache(maxsize=None)
def _open_store(uri: str, experiment_name: str, artifact_location: Optional[str]):
    """One client and one experiment lookup per process and store."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    client = MlflowClient(tracking_uri=uri)
    with _store_lock(uri):  # a fresh sqlite store migrated by two processes at once breaks
        experiment = client.get_experiment_by_name(experiment_name)
        if experiment is None:
            try:
                client.create_experiment(experiment_name, artifact_location=artifact_location,
                                         tags=EXPERIMENT_TAGS)
            except MlflowException:  # created meanwhile by another process
                pass
            experiment = client.get_experiment_by_name(experiment_name)
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


def _process_started(pid: int) -> str:
    """The process's start time in clock ticks since boot (Linux), so a reused pid is told apart."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return ""


_owner = None  # the job process this one records for (runner.recorder), else this one


def record_for(pid: int) -> None:
    """Tag runs with `pid` as their process: the one whose death leaves them orphaned."""
    global _owner
    _owner = pid


def _process_tags() -> dict:
    pid = _owner or os.getpid()
    return {"runner.host": socket.gethostname(), "runner.pid": str(pid),
            "runner.pid_started": _process_started(pid)}


def reap_orphans(client, experiment_id: str) -> list:
    """End KILLED the runs left RUNNING by a process of this host that is gone (kill -9, OOM)."""
    host = socket.gethostname()
    running = client.search_runs(
        [experiment_id],
        filter_string=f"attributes.status = 'RUNNING' and tags.`runner.host` = '{host}'",
        max_results=1000,
    )
    reaped = []
    for run in running:
        pid = int(run.data.tags.get("runner.pid", "0"))
        if pid > 0 and _process_started(pid) == run.data.tags.get("runner.pid_started"):
            continue  # still running
        client.set_tag(run.info.run_id, "error",
                       f"process {pid} on {host} ended without closing this run")
        client.set_terminated(run.info.run_id, "KILLED")
        reaped.append(run.info.run_id)
    return reaped


def parent_request(config) -> tuple:
    """The tracking config, name and tags of a multirun's parent run (in the sweep's process)."""
    from hydra.core.hydra_config import HydraConfig

    HydraConfig.instance().set_config(config)  # so `${hydra:runtime.cwd}` resolves here too
    name = " ".join(config.hydra.overrides.task) or "multirun"
    tags = {"sweep.dir": config.hydra.sweep.dir, "sweep.overrides": name, **_process_tags()}
    return config.tracking, name, tags


@_names_the_server
def create_parent(tracking_cfg, name: str, tags: dict) -> str:
    """Create a multirun's parent run before any job starts (orphans of this host reaped)."""
    client, experiment_id = open_store(tracking_cfg)
    reap_orphans(client, experiment_id)
    return client.create_run(experiment_id, run_name=name, tags=tags).info.run_id


def hand_to_jobs(config, parent_id: str) -> None:
    """The parent's id and the store travel in each job's config (`hydra.job.env_set`), so a
    job finds them in this process or in a worker elsewhere, never through an active-run lookup.
    """
    from omegaconf import open_dict, read_write

    uri = tracking_uri(config.tracking)
    with read_write(config.hydra.overrides), open_dict(config.hydra.overrides):
        for name, value in sweep_env(parent_id, uri).items():
            config.hydra.overrides.hydra.append(f"++hydra.job.env_set.{name}='{value}'")


def sweep_env(parent_id: str, uri: str) -> dict:
    """What every job of a sweep finds in its environment: its parent run and the store."""
    return {PARENT_RUN_ENV: parent_id, URI_ENV: uri}


@_names_the_server
def start_job(tracking_cfg, name: str, tags: dict, start_ms: Optional[int] = None) -> str:
    """Create one job's run, nested under the sweep's parent when there is one; `start_ms`:
    when the job started, wherever and whenever this is called."""
    client, experiment_id = open_store(tracking_cfg)
    tags = {**tags, **_process_tags()}
    parent = os.environ.get(PARENT_RUN_ENV)
    if parent:
        tags["mlflow.parentRunId"] = parent
    else:
        reap_orphans(client, experiment_id)  # a sweep did this once, before its jobs
    return client.create_run(experiment_id, run_name=name, tags=tags,
                             start_time=start_ms).info.run_id


@_names_the_server
def finish_job(tracking_cfg, run_id: str, params: dict, tags: dict, metrics: dict,
               artifact_dir: Path, error=None, pictures: Sequence[tuple] = (),
               end_ms: Optional[int] = None) -> None:
    """Draw the run's pictures ((file name, output, title): output over time), log everything
    the job produced in one batch, then end its run FINISHED, or FAILED or KILLED by `error`
    (an exception, or its `Failure`); a picture that cannot be drawn fails the run."""
    from mlflow.entities import Metric, Param, RunTag

    from runner.plots import output_over_time

    client, _ = open_store(tracking_cfg)
    for name, output, title in pictures:
        try:
            output_over_time(output, title, artifact_dir / name)
        except Exception as drawing:
            error = error or drawing
    status = "FINISHED"
    if error is not None:
        failure = error if isinstance(error, Failure) else Failure.of(error)
        (artifact_dir / "error.txt").write_text(failure.traceback)
        tags = {**tags, "error": failure.line[:ERROR_TAG_LIMIT]}
        status = failure.status
    params, long_values = _params_for_mlflow(params)
    for key, value in long_values.items():
        (artifact_dir / "params").mkdir(exist_ok=True)
        (artifact_dir / "params" / f"{key}.txt").write_text(value)
    client.log_batch(
        run_id,
        metrics=[Metric(k, float(v), 0, 0) for k, v in metrics.items()],
        params=[Param(k, v) for k, v in params.items()],
        tags=[RunTag(k, str(v)) for k, v in tags.items()],
    )
    if artifact_dir.is_dir() and any(artifact_dir.iterdir()):
        client.log_artifacts(run_id, str(artifact_dir))
    client.set_terminated(run_id, status, end_time=end_ms)


SUMMARY_COLUMNS = ("job", "overrides", "status", "seconds", "shape.output", "expected.output",
                   "outputs", "expected", "shape.match", "param_count", "oracle.max_abs_err",
                   "error")


def _cell(value):
    """Named shapes as one readable string, e.g. `output (4, 6), forward_h (4, 3)`."""
    if isinstance(value, dict):
        return ", ".join(f"{k} {v}" for k, v in value.items())
    return value


@_names_the_server
def finish_sweep(tracking_cfg, parent_id: str, status: Optional[str] = None,
                 jobs: Sequence[dict] = ()) -> list:
    """Summarise the parent's children into its `summary` table, end it, return the rows.

    `jobs` are the launcher's own reports ({job, overrides, ok, line}): a job whose run could
    not even be created (its store failed) still gets a FAILED row. The parent ends FAILED when
    a job did not finish, unless `status` (KILLED) is given."""
    client, experiment_id = open_store(tracking_cfg)
    children = client.search_runs(
        [experiment_id], filter_string=f"tags.mlflow.parentRunId = '{parent_id}'",
        max_results=10000,
    )
    if status is None:  # every job has returned: a child still RUNNING lost its end
        children = [_end_unclosed(client, child) if child.info.status == "RUNNING" else child
                    for child in children]
    rows = [_child_row(child) for child in children]
    recorded = {row["job"] for row in rows}
    rows += [unrecorded_row(job) for job in jobs if job["job"] not in recorded]
    rows.sort(key=lambda row: row["job"])
    failed = [row["overrides"] for row in rows if row["status"] != "FINISHED"]
    table = {c: [_cell(row[c]) for row in rows] for c in SUMMARY_COLUMNS}
    client.log_table(parent_id, data=table,
                     artifact_file="summary.json")
    table_text = summary_table(rows)
    client.log_text(parent_id, table_text, "summary.txt")
    client.set_tag(parent_id, "mlflow.note.content", f"```\n{table_text}\n```"[:ERROR_TAG_LIMIT])
    if rows:
        from runner.plots import grid_figure

        client.log_figure(parent_id, grid_figure(rows), "grid.png")
    client.set_tag(parent_id, "jobs.total", str(len(rows)))
    client.set_tag(parent_id, "jobs.failed", str(len(failed)))
    if failed:
        client.set_tag(parent_id, "jobs.failed_cells", "; ".join(failed)[:ERROR_TAG_LIMIT])
    client.set_terminated(parent_id, status or ("FAILED" if failed else "FINISHED"))
    return rows


def _end_unclosed(client, child):
    """End FAILED a child whose job ended without closing it (its recorder or worker died)."""
    client.set_tag(child.info.run_id, "error",
                   "its job ended, but its run was never closed (its recording process or its "
                   "worker died)")
    client.set_terminated(child.info.run_id, "FAILED")
    return client.get_run(child.info.run_id)


def _child_row(child) -> dict:
    info, data = child.info, child.data
    seconds = ((info.end_time or info.start_time) - info.start_time) / 1000.0
    return {
        "job": int(data.tags.get("job.num", 0)),
        "overrides": info.run_name,
        "status": info.status,
        "seconds": round(seconds, 2),
        "shape.output": data.tags.get("shape.output", ""),
        "expected.output": data.tags.get("expected.output", ""),
        "shape.match": data.tags.get("shape.match", ""),
        "param_count": int(data.metrics["param_count"]) if "param_count" in data.metrics else "",
        "oracle.max_abs_err": data.metrics.get("oracle.max_abs_err", ""),
        "error": data.tags.get("error", "").splitlines()[0] if data.tags.get("error") else "",
        "model": data.params.get("model", ""),
        "return_sequences": data.params.get("return_sequences", ""),
        "outputs": {k[len("shape."):]: v for k, v in data.tags.items()
                    if k.startswith("shape.") and k not in ("shape.match", "shape.input")},
        "expected": {k[len("expected."):]: v for k, v in data.tags.items()
                     if k.startswith("expected.")},
    }


def unrecorded_row(job: dict) -> dict:
    """The summary row of a job known only from its launcher's report: it has no run."""
    row = dict.fromkeys(SUMMARY_COLUMNS, "")
    row.update(job=job["job"], overrides=job["overrides"], outputs={}, expected={},
               model="", return_sequences="",
               status="FINISHED" if job["ok"] else "FAILED",
               error="" if job["ok"] else f"no run recorded: {job['line'].split(' -> ', 1)[-1]}")
    return row
