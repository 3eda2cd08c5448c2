"""`python -m runner.results [last|RUN_ID] [--format table|csv|json|markdown] [--pivot ROW COL]`:
a sweep read back, one row per cell: the knobs that vary across its cells, its output shapes,
status and main metrics. From Python, `sweep_frame()`: the same as a pandas DataFrame, typed.

A command, not a job: it reads the store through MLflow's client, in its own process."""

import argparse
import dataclasses
import os
import re
import sys
import typing
from pathlib import Path
from typing import Optional

from runner.vocabulary import spell

METRICS = ("param_count", "oracle.max_abs_err", "output.mean", "output.std", "job.seconds")
COST_METRICS = ("model.mult_adds", "memory.estimate_mb")  # the oracle's estimates, where recorded
ACROSS_METRICS = ("backends.max_abs_diff",)  # vocabulary.BACKENDS_DIFF: cells on several backends
FORMATS = ("table", "csv", "json", "markdown")
# `key=value` items of a run's name (Hydra's override_dirname): a value runs to the next `,key=`
_OVERRIDE = re.compile(r"(?:^|,)([+~]*[\w./-]+)=(.*?)(?=,[+~]*[\w./-]+=|$)")


class NoSweep(LookupError):
    """No sweep where the command looked: the message says where."""


CELLS_FILE = "cells.json"  # a closed sweep's cell_records, on its parent: read back at once


def sweep_frame(sweep: str = "last", uri: Optional[str] = None,
                experiment: Optional[str] = None):
    """One row per cell of the sweep (`last`, or a run id of its parent or of one of its jobs),
    each cell's latest run: `job`, the knobs that vary across the cells, typed as the schema
    types them (ints, floats, booleans), `shape.<output>`, `status`, the main metrics (with
    `predict.median_seconds` and `throughput.sequences_per_second` where cells were timed;
    `model.mult_adds` and `memory.estimate_mb` where the runs recorded the oracle's estimates),
    `run_id`.
    `uri`: MLFLOW_TRACKING_URI, else the project's default store under ./outputs;
    `experiment`: the project's default experiment unless named.

    A sweep that ended FINISHED or FAILED is read from the records its parent keeps
    (CELLS_FILE, written as it closed: one file, where its children's runs are a thousand);
    any other, or one closed before parents kept them, from its children's runs."""
    import pandas as pd
    from mlflow import MlflowClient

    from runner.schema import TrackingSchema

    experiment = experiment or TrackingSchema.experiment
    uri = uri or default_uri()
    if uri.startswith("sqlite:///") and not Path(uri[len("sqlite:///"):]).is_file():
        raise NoSweep(f"results: no store at {_store(uri)}; run a sweep first")
    client = MlflowClient(tracking_uri=uri)
    found = client.get_experiment_by_name(experiment)
    if found is None:
        raise NoSweep(f"results: no experiment {experiment} in {_store(uri)}")
    parent = _parent(client, found.experiment_id, sweep)
    if parent is None:
        what = "no sweep" if sweep == "last" else f"no sweep with run {sweep}"
        raise NoSweep(f"results: {what} in experiment {experiment} of {_store(uri)}")
    records = _kept_records(client, parent)
    if records is None:
        from runner.recording.summary import latest_attempts

        children = client.search_runs(
            [found.experiment_id], max_results=10000,
            filter_string=f"tags.mlflow.parentRunId = '{parent.info.run_id}'")
        records = cell_records(latest_attempts(children)[0])
    frame = _frame(pd, records)
    frame.attrs.update(sweep=parent.info.run_id, name=parent.info.run_name,
                       status=parent.info.status, knobs=knobs_of(records))
    return frame


def cell_records(runs: list) -> list:
    """Each run (a cell's latest) as plain data, as its sweep's summary reads it (its
    `child_row`), with its `config.sha256` (a resume's) and its params of the knobs that vary
    across the cells (the results table's, typed by the schema)."""
    from runner.recording.summary import child_row

    knobs = [key.lstrip("+~") for key in _varying(
        [dict(_OVERRIDE.findall(run.info.run_name or "")) for run in runs])]
    return [{**child_row(run), "config.sha256": run.data.tags.get("config.sha256", ""),
             "params": {key: run.data.params[key] for key in knobs if key in run.data.params}}
            for run in runs]


def summary_row(record: dict) -> dict:
    """A record as its sweep's summary reads it: its `child_row`."""
    return {key: value for key, value in record.items() if key not in ("config.sha256", "params")}


def knobs_of(records: list) -> list:
    """The knobs that vary across the cells, as their columns are named."""
    return [key.lstrip("+~") for key in _varying(
        [dict(_OVERRIDE.findall(record["overrides"] or "")) for record in records])]


def _varying(cells: list) -> list:
    """The override keys whose values differ between the cells, in the order they come."""
    return [key for key in dict.fromkeys(key for cell in cells for key in cell)
            if len({cell.get(key) for cell in cells}) > 1]


def _kept_records(client, parent) -> Optional[list]:
    """The parent's CELLS_FILE, if it closed FINISHED or FAILED with one; else None."""
    import json
    import tempfile

    if parent.info.status not in ("FINISHED", "FAILED"):
        return None
    try:
        with tempfile.TemporaryDirectory() as directory:
            path = client.download_artifacts(parent.info.run_id, CELLS_FILE, directory)
            return json.loads(Path(path).read_text())
    except Exception:  # noqa: BLE001 - none kept (an older parent): the children say it
        return None


def _frame(pd, records: list):
    """The typed frame of the records, one row each."""
    from runner.recording.summary import SPEED_METRICS

    cells = [dict(_OVERRIDE.findall(record["overrides"] or "")) for record in records]
    knobs = _varying(cells)
    shapes = list(dict.fromkeys(["shape.output"] + [
        f"shape.{name}" for record in records for name in record["outputs"]]))
    shapes = [key for key in shapes
              if any(key[len("shape."):] in record["outputs"] for record in records)]
    columns = {"job": [record["job"] for record in records]}
    for key in knobs:
        name = key.lstrip("+~")
        columns[name] = [_typed(name, record["params"].get(name, cell.get(key)))
                         for record, cell in zip(records, cells)]
    for key in shapes:
        columns[key] = [record["outputs"].get(key[len("shape."):]) for record in records]
    columns["status"] = [record["status"] for record in records]
    timed = [metric for metric in SPEED_METRICS
             if any(metric in record["metrics"] for record in records)]
    costed = [metric for metric in COST_METRICS
              if any(metric in record["metrics"] for record in records)]
    across = [metric for metric in ACROSS_METRICS
              if any(metric in record["metrics"] for record in records)]
    for metric in (METRICS[0], *costed, *METRICS[1:2], *across, *METRICS[2:], *timed):  # speed where the runs were timed
        columns[metric] = [record["metrics"].get(metric) for record in records]
    columns["param_count"] = [None if value is None else int(value)
                              for value in columns["param_count"]]
    columns["run_id"] = [record["run_id"] for record in records]
    return pd.DataFrame({name: _series(pd, values) for name, values in columns.items()})


def default_uri() -> str:
    """MLFLOW_TRACKING_URI, else the store the runner's defaults use from here."""
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{Path.cwd()}/outputs/mlflow.db"


def _store(uri: str) -> str:
    from runner.report import store_name

    return store_name(uri)


def _parent(client, experiment_id: str, sweep: str):
    """The sweep's parent run: the latest, or the one a run id names (a job's: its parent)."""
    from mlflow.exceptions import MlflowException

    if sweep == "last":
        found = client.search_runs([experiment_id], filter_string="tags.`sweep.dir` LIKE '%'",
                                   order_by=["attributes.start_time DESC"], max_results=1)
        return found[0] if found else None
    try:
        run = client.get_run(sweep)
        if "mlflow.parentRunId" in run.data.tags:
            run = client.get_run(run.data.tags["mlflow.parentRunId"])
    except MlflowException:
        return None
    if run.info.experiment_id != experiment_id or "sweep.dir" not in run.data.tags:
        return None
    return run


def schema_type(key: str):
    """The schema's type of a dotted key (`str` for a config group's choice such as `model`),
    or None where the config is free-form (a layer's arguments)."""
    from runner.schema import RunnerSchema

    schema = RunnerSchema
    parts = key.split(".")
    for index, part in enumerate(parts):
        fields = {field.name: field for field in dataclasses.fields(schema)}
        if part not in fields:
            return None
        kind = fields[part].type
        if index == len(parts) - 1:
            return str if dataclasses.is_dataclass(kind) else kind
        if not dataclasses.is_dataclass(kind):
            return None
        schema = kind
    return None


def _typed(key: str, text: Optional[str]):
    """A param's text as the schema types its key; free-form values as they read."""
    if text is None or text == "null":
        return None
    kind = schema_type(key)
    if typing.get_origin(kind) is typing.Union:  # Optional[...]
        kind = next(arg for arg in typing.get_args(kind) if arg is not type(None))
    if kind is bool or (kind in (None, typing.Any) and text in ("true", "false")):
        return text == "true"
    for number in ((int,) if kind is int else (float,) if kind is float
                   else (int, float) if kind in (None, typing.Any) else ()):
        try:
            return number(text)
        except ValueError:
            pass
    return text


def _series(pd, values: list):
    """A column typed by its values: integers as integers and booleans as booleans, nullable
    where a value is missing."""
    present = [value for value in values if value is not None]
    missing = len(present) < len(values)
    if present and all(isinstance(value, bool) for value in present):
        return pd.Series(values, dtype="boolean" if missing else bool)
    if present and all(isinstance(value, int) and not isinstance(value, bool)
                       for value in present):
        return pd.Series(values, dtype="Int64" if missing else "int64")
    if present and all(isinstance(value, (int, float)) for value in present):
        return pd.Series(values, dtype="float64")
    return pd.Series(values, dtype=object)


def pivot(frame, row: str, column: str):
    """The notebook's table: `row` down (in the sweep's order), `column` across, each cell's
    output shape (several, when other knobs vary, joined by ` | `)."""
    import pandas as pd

    for key in (row, column):
        if key not in frame.columns:
            raise NoSweep(f"--pivot: {key} is not a column of this sweep; its knobs: "
                          f"{', '.join(frame.attrs.get('knobs', [])) or 'none vary'}")
    shapes = [key for key in frame.columns if key.startswith("shape.")]
    shown = frame.apply(lambda cells: cells.get("shape.output") if pd.notna(
        cells.get("shape.output")) else ", ".join(
        f"{key[len('shape.'):]} {cells[key]}" for key in shapes if pd.notna(cells[key])), axis=1)
    table = {row: list(dict.fromkeys(frame[row]))}
    for value in sorted(dict.fromkeys(frame[column]), key=lambda value: (str(type(value)), value)):
        table[f"{column}={spell(getattr(value, 'item', lambda: value)())}"] = [
            " | ".join(dict.fromkeys(shown[(frame[row] == down) & (frame[column] == value)]))
            or None for down in table[row]]
    return pd.DataFrame(table)


def render(frame, form: str) -> str:
    """The frame as text: an aligned table, CSV, JSON records or a Markdown table."""
    from runner.report import text_table

    if form == "csv":  # booleans spelled as everywhere else: true, false
        spelled = frame.apply(lambda column: column.map(spell, na_action="ignore")
                              if column.dtype in (bool, "boolean") else column)
        return spelled.to_csv(index=False).rstrip("\n")
    if form == "json":
        return frame.to_json(orient="records", indent=2)
    rows = [[_cell(value) for value in row] for row in frame.itertuples(index=False)]
    if form == "markdown":
        header = [_markdown_cell(str(name)) for name in frame.columns]
        lines = [header, ["---"] * len(header),
                 *([_markdown_cell(cell) for cell in row] for row in rows)]
        return "\n".join("| " + " | ".join(line) + " |" for line in lines)
    return text_table(list(frame.columns), rows)


def _markdown_cell(text: str) -> str:
    """A cell that stays one cell of its row: `|` escaped, line breaks as `<br>`."""
    return "<br>".join(text.replace("|", "\\|").splitlines()) or text


def _cell(value) -> str:
    import pandas as pd

    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return "-"
    if isinstance(value, float):
        return f"{value:.3g}"
    return spell(value.item() if hasattr(value, "item") else value)


def main(argv=None) -> None:
    from runner.schema import TrackingSchema

    parser = argparse.ArgumentParser(prog="python -m runner.results",
                                     description=__doc__.split("\n\n")[0].split(": ", 1)[1])
    parser.add_argument("sweep", nargs="?", default="last",
                        help="last (the latest sweep), or a run id of a sweep or of one of its jobs")
    parser.add_argument("--format", choices=FORMATS, default="table")
    parser.add_argument("--pivot", nargs=2, metavar=("ROW", "COL"),
                        help="ROW down, COL across, output shapes in the cells")
    parser.add_argument("--uri", help="the store (default: MLFLOW_TRACKING_URI, else "
                                      "outputs/mlflow.db here)")
    parser.add_argument("--experiment", default=TrackingSchema.experiment)
    args = parser.parse_args(argv)
    try:
        frame = sweep_frame(args.sweep, args.uri, args.experiment)
        shown = pivot(frame, *args.pivot) if args.pivot else frame
    except NoSweep as error:
        print(error, file=sys.stderr)
        sys.exit(1)
    text = render(shown, args.format)
    if args.format == "table":
        text = (f"sweep {frame.attrs['sweep']} ({frame.attrs['name']}): {frame.attrs['status']}, "
                f"{len(frame)} cells\n{text}")
    try:
        print(text, flush=True)
    except BrokenPipeError:  # `| head`: the reader has what it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


if __name__ == "__main__":
    main()
