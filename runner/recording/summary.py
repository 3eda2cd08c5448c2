"""A sweep's summary rows, one per cell, from its children's runs (or the launcher's report)."""

from runner.recording.requests import JobReport

SUMMARY_COLUMNS = ("job", "overrides", "status", "seconds", "shape.output", "expected.output",
                   "outputs", "expected", "shape.match", "param_count", "oracle.max_abs_err",
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
        "oracle.max_abs_err": data.metrics.get("oracle.max_abs_err", ""),
        "throughput": data.metrics.get("throughput.sequences_per_second", ""),
        "median_seconds": data.metrics.get("predict.median_seconds", ""),
        "iqr_seconds": data.metrics.get("predict.iqr_seconds", ""),
        "batch": int(data.params.get("data.batch_size", 0) or 0),
        "error": data.tags.get("error", "").splitlines()[0] if data.tags.get("error") else "",
        "model": data.params.get("model", ""),
        "return_sequences": data.params.get("return_sequences", ""),
        "outputs": {k[len("shape."):]: v for k, v in data.tags.items()
                    if k.startswith("shape.") and k not in ("shape.match", "shape.input")},
        "expected": {k[len("expected."):]: v for k, v in data.tags.items()
                     if k.startswith("expected.")},
    }


def unrecorded_row(job: JobReport) -> dict:
    """The row of a job known only from its launcher's report: it has no run."""
    row = dict.fromkeys(SUMMARY_COLUMNS, "")
    row.update(run_id="", job=job.job, overrides=job.overrides, outputs={}, expected={}, batch=0,
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
