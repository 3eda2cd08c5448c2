"""What a person reads: the notebook-style line per job, the sweep table, explain tables."""

from runner.shapes import StackPlan, describe, format_shape


def _table(header: list, rows: list) -> str:
    cells = [[str(c) for c in header]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def summary_table(rows: list) -> str:
    """The multirun's table: one line per job, as stored on the parent run."""
    header = ["job", "overrides", "output", "expected", "match", "params", "max_abs_err",
              "status", "seconds"]
    body = []
    for row in rows:
        err = row["oracle.max_abs_err"]
        body.append([
            row["job"], row["overrides"],
            ", ".join(f"{k} {v}" for k, v in row["outputs"].items()) or "-",
            "same" if row["expected"] == row["outputs"] and row["expected"]
            else ", ".join(f"{k} {v}" for k, v in row["expected"].items()) or "-",
            row["shape.match"] or "-", row["param_count"] if row["param_count"] != "" else "-",
            f"{err:.1e}" if err != "" else "-",
            row["status"] + (f" ({row['error']})" if row["error"] else ""), row["seconds"],
        ])
    return _table(header, body)


def explain_table(label: str, plan: StackPlan) -> str:
    """Per layer: output shapes and parameter counts; then the model's named outputs."""
    rows = []
    for row in describe(plan):
        shapes = ", ".join(f"{k} {format_shape(v)}" for k, v in row["outputs"].items())
        rows.append([row["index"], row["layer"], shapes, row["param_count"]])
    outputs = ", ".join(f"{k} {format_shape(v)}" for k, v in plan.outputs.items())
    return "\n".join([
        label,
        _table(["#", "layer", "output shape", "params"], rows),
        f"total params: {plan.param_count}",
        f"outputs: {outputs}",
    ])


def progress_line(done: int, total: int, elapsed: float, terminal: bool) -> str:
    """`[3/8] elapsed 4.2 s, ETA 7.0 s`: a bar on a terminal, plain words in a log."""
    eta = elapsed / done * (total - done) if done else 0.0
    words = f"[{done}/{total}] elapsed {elapsed:.1f} s, ETA {eta:.1f} s"
    if not terminal:
        return words
    filled = round(20 * done / total) if total else 20
    return f"\033[2m{'#' * filled}{'.' * (20 - filled)} {words}\033[0m"
