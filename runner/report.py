"""What a person reads: the notebook-style line per job, the sweep table, explain tables,
and where the runs were recorded."""

import json
from pathlib import Path
from typing import Optional
from urllib.parse import quote, unquote, urlencode, urlparse

from runner.shapes import StackPlan, describe, format_shape, symbolic_finding
from runner.vocabulary import BACKENDS_DIFF, without_login


def text_table(header: list, rows: list) -> str:
    """Columns padded to their widest cell, a rule under the header."""
    cells = [[str(c) for c in header]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def summary_table(rows: list, speed: bool = False) -> str:
    """The multirun's table: one line per job, as stored on the parent run; with `speed`, each
    timed cell's throughput and median call too."""
    timed = speed and any(row.get("throughput", "") != "" for row in rows)
    across = any(row.get(BACKENDS_DIFF, "") != "" for row in rows)  # cells on several backends
    from runner.cost import human_count

    header = ["job", "overrides", "output", "expected", "match", "params", "mult-adds",
              "est. MiB", "max_abs_err", *(["backends differ"] if across else []),
              *(["seq/s", "median s"] if timed else []), "status", "seconds"]
    body = []
    for row in rows:
        err, differ = row["oracle.max_abs_err"], row.get(BACKENDS_DIFF, "")
        across_backends = [f"{differ:.1e}" if differ != "" else "-"] if across else []
        speed = []
        if timed:
            speed = ([f"{row['throughput']:.0f}", f"{row['median_seconds']:.4f}"]
                     if row.get("throughput", "") != "" else ["-", "-"])
        body.append([
            row["job"], row["overrides"],
            ", ".join(f"{k} {v}" for k, v in row["outputs"].items()) or "-",
            "same" if row["expected"] == row["outputs"] and row["expected"]
            else ", ".join(f"{k} {v}" for k, v in row["expected"].items()) or "-",
            row["shape.match"] or "-", row["param_count"] if row["param_count"] != "" else "-",
            human_count(row["mult_adds"]) if row.get("mult_adds", "") != "" else "-",
            f"{row['memory_mb']:.1f}" if row.get("memory_mb", "") != "" else "-",
            f"{err:.1e}" if err != "" else "-", *across_backends, *speed,
            row["status"] + (f" ({row['error']})" if row["error"] else ""), row["seconds"],
        ])
    return text_table(header, body)


# Past this many cells a sweep reads as one live progress line on a terminal and a summary
# grouped by the knobs that vary (`grouped_summary`); its whole table is in the parent's
# summary.txt and `python -m runner.results`
BIG_SWEEP = 40
# MLflow's compare page puts every run in a column of its own: past this many it is a
# scroll, not a comparison (and its charts slow down past a hundred); the runs table
# filtered to the sweep is the view then
COMPARE_LIMIT = 20
VALUES_SHOWN = 6  # a knob's values in a big sweep's summary, each a row; the rest counted
CELLS_NAMED = 5  # the failed, slowest and fastest cells a big sweep's summary names


def sweep_summary(rows: list, speed: bool = False) -> str:
    """What a person reads of a sweep: its table (`summary_text`), or past BIG_SWEEP cells its
    summary grouped by knob (`grouped_summary`)."""
    return grouped_summary(rows, speed) if len(rows) > BIG_SWEEP else summary_text(rows, speed)


def summary_text(rows: list, speed: bool = False) -> str:
    """The sweep's table; when its seeds vary, then each cell's metrics over its seeds."""
    from runner.recording.summary import over_seeds, seed_metrics

    stats = over_seeds(rows)
    if not stats:
        return summary_table(rows, speed)
    metrics = seed_metrics(rows)
    body = [[entry["cell"], entry["seeds"],
             *(_mean_std(*entry[metric]) for metric in metrics)] for entry in stats]
    return "\n".join([summary_table(rows, speed), "",
                      "over seeds: mean ± standard deviation of each cell's FINISHED runs",
                      text_table(["cell", "seeds", *metrics], body)])


def grouped_summary(rows: list, speed: bool = False) -> str:
    """A big sweep in a screen: its cells by status and seconds; for each knob that varies,
    each of its values' cells by status and their median, fastest and slowest seconds (and
    throughput, with `speed`); then the failed cells by name, the slowest and the fastest."""
    import statistics

    from runner.plots import override_pairs, varying_keys

    statuses = [status for status in ("FINISHED", "FAILED", "KILLED")
                if any(row["status"] == status for row in rows)]
    statuses += sorted({row["status"] for row in rows} - set(statuses))
    timed = speed and any(row.get("throughput", "") != "" for row in rows)

    def figures(members: list) -> list:
        seconds = [row["seconds"] for row in members if row["seconds"] != ""]
        counts = [sum(row["status"] == status for row in members) for status in statuses]
        spans = ([f"{statistics.median(seconds):.2f}", f"{min(seconds):.2f}",
                  f"{max(seconds):.2f}"] if seconds else ["-", "-", "-"])
        rates = [row["throughput"] for row in members if row.get("throughput", "") != ""]
        return [len(members), *counts, *spans,
                *([f"{statistics.median(rates):.0f}" if rates else "-"] if timed else [])]

    header = ["knob", "cells", *statuses, "median s", "fastest s", "slowest s",
              *(["median seq/s"] if timed else [])]
    body = [["every cell", *figures(rows)]]
    pairs = [override_pairs(row["overrides"]) for row in rows]
    keys = varying_keys(rows)

    def name(index: int) -> str:  # a cell by the knobs that vary only
        return ",".join(f"{key}={pairs[index][key]}" for key in keys
                        if key in pairs[index]) or rows[index]["overrides"]

    for key in keys:
        values = list(dict.fromkeys(pair.get(key, "(unset)") for pair in pairs))
        for value in values[:VALUES_SHOWN]:
            body.append([f"{key}={value}", *figures(
                [row for row, pair in zip(rows, pairs) if pair.get(key, "(unset)") == value])])
        if len(values) > VALUES_SHOWN:
            more = len(values) - VALUES_SHOWN
            body.append([f"{key}: {more} more value{'s' if more > 1 else ''}",
                         *[""] * (len(header) - 1)])
    total = sum(row["seconds"] for row in rows if row["seconds"] != "")
    lines = [f"{len(rows)} cells, {total:.1f} s of jobs", text_table(header, body)]
    failed = [index for index, row in enumerate(rows) if row["status"] != "FINISHED"]
    for index in failed[:CELLS_NAMED]:
        row = rows[index]
        lines.append(f"{row['status']}: {name(index)}"
                     + (f": {row['error']}" if row.get("error") else ""))
    if len(failed) > CELLS_NAMED:
        lines.append(f"... and {len(failed) - CELLS_NAMED} more not FINISHED")
    ranked = sorted((index for index, row in enumerate(rows) if row["seconds"] != ""),
                    key=lambda index: rows[index]["seconds"])
    for word, chosen in (("slowest", ranked[::-1][:2]), ("fastest", ranked[:2])):
        lines += [f"{word if n == 0 else '':8} {rows[index]['seconds']:.2f} s  {name(index)}"
                  for n, index in enumerate(chosen)]
    return "\n".join(lines)


def _mean_std(mean, std) -> str:
    if mean is None:
        return "-"
    return f"{mean:.3g}" + (f" ± {std:.2g}" if std is not None else "")


def explain_table(label: str, plan: StackPlan, declared: Optional[StackPlan] = None,
                  cost=None) -> str:
    """Per layer: what it reads (for a graph), output shapes, which carry a mask, parameter
    counts, and with a JobCost its mult-adds and bytes; then the totals, the model's named
    outputs, and a line per layer whose symbolic shape in Keras (from `declared`, the plan with
    Keras's unknown sizes) is not its arrays'."""
    from runner.cost import human_bytes, human_count

    graph = len(plan.inputs) > 1 or any(
        layer.initial_state is not None or layer.source != (
            f"model.layers.{layer.index - 1}" if layer.index else next(iter(plan.inputs)))
        for layer in plan.layers)
    layer_costs = {layer.index: layer for layer in cost.layers} if cost is not None else {}
    rows = []
    for row in describe(plan):
        shapes = ", ".join(f"{k} {format_shape(v)}" + (" masked" if k in row["masked"] else "")
                           for k, v in row["outputs"].items())
        reads = [row["reads"]] if graph else []
        costs = []
        if cost is not None:
            layer = layer_costs.get(row["index"])
            costs = ([human_count(layer.mult_adds), human_bytes(layer.weight_bytes),
                      human_bytes(layer.output_bytes)] if layer is not None
                     else ["-", "-", human_bytes(cost.input_bytes / len(plan.inputs)
                                                 / cost.batches)])
        rows.append([row["index"], row["layer"], *reads, shapes, row["param_count"], *costs])
    header = ["#", "layer", *(["reads"] if graph else []), "output shape", "params",
              *(["mult-adds", "weights", "outputs"] if cost is not None else [])]
    outputs = ", ".join(f"{k} {format_shape(v)}" + (" masked" if k in plan.masked else "")
                        for k, v in plan.outputs.items())
    lines = [label, text_table(header, rows), f"total params: {plan.param_count}"]
    if cost is not None:
        lines += [
            f"total mult-adds: {human_count(cost.mult_adds)} a prediction, "
            f"{human_count(cost.total_mult_adds)} over the job's {cost.calls} predictions",
            f"memory: about {human_bytes(cost.memory_bytes)} (weights "
            f"{human_bytes(cost.weight_bytes)}, inputs {human_bytes(cost.input_bytes)}, drawing "
            f"them {human_bytes(cost.drawn_bytes)}, layer outputs "
            f"{human_bytes(cost.activation_bytes)}, recurrent loops' copies "
            f"{human_bytes(cost.recurrent_bytes)}, predictions kept "
            f"{human_bytes(cost.prediction_bytes)}, NumPy reference "
            f"{human_bytes(cost.reference_bytes)})"]
    return "\n".join([*lines, f"outputs: {outputs}", *symbolic_lines(plan, declared or plan)])


def symbolic_lines(plan: StackPlan, declared: StackPlan) -> list:
    """`model.layers.2: Keras's symbolic shape output (None, 10), its arrays output (4, 5): ...`
    for each layer where a run records a `shape.symbolic.model.layers.N` tag."""
    arrays = {layer.index: layer.outputs for layer in plan.layers}
    return [f"model.layers.{layer.index}: {symbolic_finding(layer.symbolic, arrays[layer.index])}"
            f" ({layer.symbolic_cause} halves the last axis, which Keras's symbolic shape ignores)"
            for layer in declared.layers if layer.symbolic]


def progress_line(done: int, total: int, elapsed: float, line: str) -> str:
    """`[3/8] lstm return_sequences=false -> output (4, 3)   1.2 s, about 2.0 s to go`."""
    eta = elapsed / done * (total - done) if done else 0.0
    return f"[{done}/{total}] {line}   {elapsed:.1f} s, about {eta:.1f} s to go"


def live_progress(done: int, failed: int, total: int, elapsed: float, line: str,
                  width: int) -> str:
    """A big sweep's one line on a terminal, rewritten as each job completes and cut to the
    terminal's `width`: `[37/1000] 1 failed   12.3 s, about 320.1 s to go | the last line`."""
    eta = elapsed / done * (total - done) if done else 0.0
    failures = f" {failed} failed " if failed else " "
    text = f"[{done}/{total}]{failures}  {elapsed:.1f} s, about {eta:.1f} s to go | {line}"
    return text if len(text) <= width else text[:max(width - 3, 0)] + "..."


UI_PORT = 5000  # `make ui`, and `python -m runner.ui`, serve the embedded store here
# MLflow's UI (3.17) opens a runs table on the view saved in the experiment tag of this prefix
# and the `viewStateShareKey` in its address: the filter, the order and the visible columns,
# which it otherwise keeps per browser. Its address takes only the filter and the order.
SHARED_VIEW_TAG = "mlflow.sharedViewState."
# The runs table nests children under their parent, collapsed, when ordered by start time (the
# default): ordered otherwise, a sweep's children are rows of their own
SWEEP_COLUMNS = ("tags.`shape.output`", "tags.`shapes`", "tags.`shape.match`")
SPEED_COLUMNS = ("metrics.`throughput.sequences_per_second`", "metrics.`predict.median_seconds`")


def sweep_view(parent_id: str, speed: bool = False) -> dict:
    """The runs table of a sweep's children as the UI takes it from SHARED_VIEW_TAG: one row a
    cell, by name (fastest first for a sweep about speed), its shapes among the columns."""
    order = ("metrics.`throughput.sequences_per_second`", False) if speed else (
        "tags.`mlflow.runName`", True)
    return {"searchFilter": f"tags.mlflow.parentRunId = '{parent_id}'",
            "orderByKey": order[0], "orderByAsc": order[1],
            "selectedColumns": ["attributes.`Duration`", *SWEEP_COLUMNS,
                                *(SPEED_COLUMNS if speed else ())],
            "runsHiddenMode": "SHOW_ALL"}


def _relative(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def store_name(uri: str) -> str:
    """The store as a person names it: a sqlite file relative to here, a server without
    credentials in its address."""
    if uri.startswith("sqlite:///"):
        return _relative(Path(uri[len("sqlite:///"):]))
    return without_login(uri)


def ui_base(uri: str) -> str:
    if uri.startswith(("http://", "https://")):
        return without_login(uri).rstrip("/")
    return f"http://127.0.0.1:{UI_PORT}"


def runs_table_url(uri: str, experiment_id: str, search: str = "", view: str = "") -> str:
    """The experiment's runs table ("Model training", not the GenAI overview), filtered by
    `search`, or opened on the view saved under the share key `view`."""
    query = {"workflowType": "machine_learning", **({"searchFilter": search} if search else {}),
             **({"viewStateShareKey": view} if view else {})}
    return f"{ui_base(uri)}/#/experiments/{experiment_id}/runs?{urlencode(query, quote_via=quote)}"


def compare_url(uri: str, experiment_id: str, run_ids: list) -> str:
    runs, experiments = quote(json.dumps(run_ids)), quote(json.dumps([experiment_id]))
    return f"{ui_base(uri)}/#/compare-runs?runs={runs}&experiments={experiments}"


def artifact_url(uri: str, run, path: str) -> str:
    """The UI's page of one artifact of a run."""
    return (f"{ui_base(uri)}/#/experiments/{run.experiment_id}/runs/{run.run_id}/artifacts/"
            f"{quote(path)}")


def artifact_file(run, path: str) -> str:
    """Where an artifact of the run lies on this machine, relative to here; "" when its store
    keeps it elsewhere (a tracking server's, an object store's)."""
    location = run.artifact_uri
    if location.startswith("file://"):
        location = unquote(urlparse(location).path)
    if not location.startswith("/"):
        return ""
    return _relative(Path(location) / path)


def recorded_lines(uri: str, experiment: str, run, children: list = (),
                   figures: list = ()) -> list:
    """Where a run (or a sweep's parent and its `children` run ids) was recorded, and the
    addresses that open it in the MLflow UI: a sweep's runs table, its comparison (up to
    COMPARE_LIMIT runs; the runs table is the view past that), and each of its `figures` (the
    parent's artifacts), with the file where the store is local; for a big sweep, the command
    that prints its whole table."""
    serve = "" if uri.startswith(("http://", "https://")) else "   (make ui serves it)"
    if not children:
        return [f"recorded: run {run.run_id} in {store_name(uri)}, experiment {experiment}",
                f"  {runs_table_url(uri, run.experiment_id, f'attributes.run_id = {run.run_id!r}')}"
                f"{serve}"]
    lines = [f"recorded: sweep {run.run_id} with {len(children)} runs in {store_name(uri)}, "
             f"experiment {experiment}",
             f"  runs:    {runs_table_url(uri, run.experiment_id, view=run.run_id)}{serve}"]
    if len(children) <= COMPARE_LIMIT:
        lines.append(f"  compare: {compare_url(uri, run.experiment_id, list(children))}")
    if len(children) > BIG_SWEEP:  # the summary above is grouped: the whole table, here
        lines.append(f"  table:   python -m runner.results {run.run_id}")
    for figure in figures:
        local = artifact_file(run, figure)
        lines.append(f"  figure:  {artifact_url(uri, run, figure)}"
                     + (f"   (file {local})" if local else ""))
    return lines


def stopped_lines(interrupted, uri: str, parent_id: str, rows: list, total: int,
                  command: str) -> list:
    """What a sweep stopped by a signal has recorded, and the command that goes on with it."""
    counts = {status: sum(row["status"] == status for row in rows)
              for status in ("FINISHED", "KILLED", "FAILED")}
    parts = [f"{counts['FINISHED']} of {total} cells finished", f"{counts['KILLED']} killed"]
    if counts["FAILED"]:
        parts.append(f"{counts['FAILED']} failed")
    if total > len(rows):
        parts.append(f"{total - len(rows)} not run")
    return [f"stopped ({interrupted}): sweep {parent_id} KILLED in {store_name(uri)}: "
            f"{', '.join(parts)}",
            f"  go on with: {command}"]
