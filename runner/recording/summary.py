"""A sweep's summary rows, one per cell, from its children's runs (or the launcher's report)."""

import re
import statistics

from runner.recording.requests import JobReport
from runner.vocabulary import BACKENDS_DIFF

SUMMARY_COLUMNS = ("job", "overrides", "status", "seconds", "shape.output", "expected.output",
                   "outputs", "expected", "shape.match", "param_count", "mult_adds", "memory_mb",
                   "oracle.max_abs_err", "backends.max_abs_diff",
                   "throughput", "median_seconds", "iqr_seconds", "error")


def child_row(child) -> dict:
    """The row of one child run, read back from the store."""
    info, data = child.info, child.data
    seconds = data.metrics.get("job.seconds",  # the job's own work, else the run's span
                               ((info.end_time or info.start_time) - info.start_time) / 1000.0)
    return {
        "run_id": info.run_id,
        "job": int(data.tags.get("job.num", 0)),
        "overrides": info.run_name,
        "status": info.status,
        "seconds": round(seconds, 2),
        "shape.output": data.tags.get("shape.output", ""),
        "expected.output": data.tags.get("expected.output", ""),
        "shape.match": data.tags.get("shape.match", ""),
        "param_count": int(data.metrics["param_count"]) if "param_count" in data.metrics else "",
        "mult_adds": data.metrics.get("model.mult_adds", ""),
        "memory_mb": data.metrics.get("memory.estimate_mb", ""),
        "oracle.max_abs_err": data.metrics.get("oracle.max_abs_err", ""),
        BACKENDS_DIFF: data.metrics.get(BACKENDS_DIFF, ""),
        "throughput": data.metrics.get("throughput.sequences_per_second", ""),
        "median_seconds": data.metrics.get("predict.median_seconds", ""),
        "iqr_seconds": data.metrics.get("predict.iqr_seconds", ""),
        "batch": int(data.params.get("data.batch_size", 0) or 0),
        "error": data.tags.get("error", "").splitlines()[0] if data.tags.get("error") else "",
        "model": data.params.get("model", ""),
        "return_sequences": data.params.get("return_sequences", ""),
        "metrics": dict(data.metrics),
        "outputs": {k[len("shape."):]: v for k, v in data.tags.items()
                    if k.startswith("shape.") and k not in ("shape.match", "shape.input")},
        "expected": {k[len("expected."):]: v for k, v in data.tags.items()
                     if k.startswith("expected.")},
    }


def unrecorded_row(job: JobReport) -> dict:
    """The row of a job known only from its launcher's report: it has no run."""
    row = dict.fromkeys(SUMMARY_COLUMNS, "")
    row.update(run_id="", job=job.job, overrides=job.overrides, outputs={}, expected={}, metrics={},
               batch=0,
               model="", return_sequences="",
               status="FINISHED" if job.ok else "FAILED",
               error="" if job.ok else f"no run recorded: {job.line.split(' -> ', 1)[-1]}")
    return row


def ordered(rows: list, sort_by: str) -> list:
    """By job number, or fastest first (cells without a figure last, by job)."""
    if sort_by == "throughput":
        return sorted(rows, key=lambda row: (row["throughput"] == "",
                                             -(row["throughput"] or 0), row["job"]))
    return sorted(rows, key=lambda row: row["job"])


def table_columns(rows: list) -> dict:
    """The rows as MLflow's `log_table` takes them: column -> values; named shapes as text."""
    return {column: [_cell(row[column]) for row in rows] for column in SUMMARY_COLUMNS}


def _cell(value):
    """Named shapes as one readable string, e.g. `output (4, 6), forward_h (4, 3)`."""
    if isinstance(value, dict):
        return ", ".join(f"{k} {v}" for k, v in value.items())
    return value


def job_number(run) -> int:
    return int(run.data.tags.get("job.num", 0))


def backend_differences(children: list, predictions) -> dict:
    """run id -> BACKENDS_DIFF, for each FINISHED run of a cell (its `cell.sha256`: its config
    but its backend) that FINISHED on more than one backend: the largest absolute difference
    between the outputs any two of them predicted. `predictions(run_id)`: a run's outputs."""
    import itertools

    import numpy as np

    cells: dict = {}
    for child in children:
        if child.info.status == "FINISHED" and child.data.tags.get("cell.sha256"):
            cells.setdefault(child.data.tags["cell.sha256"], []).append(child)
    found = {}
    for runs in cells.values():
        if len({run.data.params.get("backend") for run in runs}) < 2:
            continue
        outputs = {run.info.run_id: predictions(run.info.run_id) for run in runs}
        worst = max(float(np.max(np.abs(np.asarray(a[name], np.float64) - b[name])))
                    for a, b in itertools.combinations(outputs.values(), 2) for name in a)
        found.update(dict.fromkeys(outputs, worst))
    return found


def latest_attempts(children: list, launched=(), earlier=()) -> tuple:
    """(each job's latest run, [(an earlier attempt's run id, the run id superseding it)] not yet
    tagged so). A job launched again (its number in `launched`) counts only a run made since
    (not in `earlier`): if it made none, its launcher's report speaks for it."""
    by_job = {}
    for run in sorted(children, key=lambda run: run.info.start_time or 0):
        by_job.setdefault(job_number(run), []).append(run)
    latest, superseded = [], []
    for job, runs in sorted(by_job.items()):
        made = [run for run in runs if job not in launched or run.info.run_id not in earlier]
        if not made:
            continue
        current = made[-1]
        latest.append(current)
        superseded += [(run.info.run_id, current.info.run_id) for run in runs if run is not current
                       and run.data.tags.get("superseded_by") != current.info.run_id]
    return latest, superseded


SEED_METRICS = ("output.mean", "output.std", "output.abs_max", "oracle.max_abs_err",
                "job.seconds")
# A timed run's figures (timing.repeats > 0): read back beside the others where runs have them
SPEED_METRICS = ("predict.median_seconds", "throughput.sequences_per_second")
_SEED = re.compile(r"(?:^|,)seed=([^,]*)")


def seed_metrics(rows: list) -> tuple:
    """The metrics compared over seeds: SEED_METRICS, then the speed metrics some run has."""
    return (*SEED_METRICS, *(metric for metric in SPEED_METRICS
                             if any(metric in row["metrics"] for row in rows)))


def over_seeds(rows: list) -> list:
    """When the rows' seeds vary: per cell without its seed, in job order, the number of its
    FINISHED runs and each metric's (mean, standard deviation) over them; else []."""
    if len({match.group(1) for row in rows for match in _SEED.finditer(row["overrides"])}) < 2:
        return []
    cells = {}
    for row in rows:
        cell = _SEED.sub("", row["overrides"]).strip(",") or "defaults"
        cells.setdefault(cell, []).append(row)
    stats = []
    for cell, members in cells.items():
        finished = [row["metrics"] for row in members if row["status"] == "FINISHED"]
        entry = {"cell": cell, "seeds": len(finished)}
        for metric in seed_metrics(rows):
            values = [metrics[metric] for metrics in finished if metric in metrics]
            entry[metric] = (statistics.fmean(values) if values else None,
                             statistics.stdev(values) if len(values) > 1 else None)
        stats.append(entry)
    return stats
