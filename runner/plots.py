"""Pictures for the MLflow UI: one run's output over timesteps, one sweep's grid of shapes.

Matplotlib's object API on the Agg canvas: no display, no pyplot state shared between jobs.
"""

from pathlib import Path

import numpy as np

STATUS_COLOURS = {"FINISHED": "#d9f2d9", "FAILED": "#f8d0d0", "KILLED": "#f0e0b0"}


def output_over_time(output: np.ndarray, title: str, path: Path, items: int = 2,
                     units: int = 8) -> None:
    """(batch, timesteps, units): for the first batch items, every timestep (left) beside the
    last only (right), which is what return_sequences=false returns. Two items by default: each
    panel's axes are most of the drawing, which the recording process does while jobs run."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    shown = output[:items, :, :units]
    rows = shown.shape[0]
    # A fixed layout: the constraint solver would double the drawing time of a small job
    figure = Figure(figsize=(10, 1.9 * rows + 0.6), dpi=72)
    figure.suptitle(title)
    grid = figure.add_gridspec(rows, 2, width_ratios=[5, 1], left=0.08, right=0.98, bottom=0.08,
                               top=0.9, wspace=0.05, hspace=0.3)
    steps = np.arange(shown.shape[1])
    first = None
    for item in range(rows):
        every = figure.add_subplot(grid[item, 0], sharex=first)
        every.yaxis.set_major_locator(MaxNLocator(4))  # each tick is several artists to draw
        first = first or every
        for unit in range(shown.shape[2]):
            every.plot(steps, shown[item, :, unit], linewidth=1, label=f"unit {unit}")
        every.set_ylabel(f"batch item {item}")
        every.axvline(steps[-1], color="grey", linewidth=0.8, linestyle=":")
        last = figure.add_subplot(grid[item, 1], sharey=every)  # same value scale
        colours = [f"C{unit}" for unit in range(shown.shape[2])]
        last.bar(np.arange(shown.shape[2]), shown[item, -1], color=colours)
        last.set_xticks(np.arange(shown.shape[2]))
        last.tick_params(labelleft=False, labelsize=7)
        if item == 0:
            every.set_title("every timestep (return_sequences=True)", fontsize=9)
            last.set_title("last timestep only (False)", fontsize=9)
            every.legend(fontsize=7, ncol=min(4, shown.shape[2]), loc="upper left")
        if item == rows - 1:
            every.set_xlabel("timestep")
            last.set_xlabel("unit")
        else:
            every.tick_params(labelbottom=False)
            last.tick_params(labelbottom=False)
    figure.savefig(path, pil_kwargs={"compress_level": 1})


def grid_figure(rows: list):
    """Cells by model x return_sequences, each annotated with its output shape and status."""
    from matplotlib.figure import Figure

    models = list(dict.fromkeys(row["model"] for row in rows))
    sequences = sorted({row["return_sequences"] for row in rows})
    width, height = 2.8 * len(sequences) + 1.6, 0.9 * len(models) + 1.0
    # A fixed layout, its margins in inches: the constraint solver takes longer than the drawing
    figure = Figure(figsize=(width, height), dpi=80)
    figure.subplots_adjust(left=1.4 / width, right=1 - 0.1 / width, bottom=0.45 / height,
                           top=1 - 0.4 / height)
    axes = figure.add_subplot()
    axes.set_xlim(0, len(sequences))
    axes.set_ylim(len(models), 0)
    axes.set_xticks(np.arange(len(sequences)) + 0.5, [f"return_sequences={s}" for s in sequences])
    axes.set_yticks(np.arange(len(models)) + 0.5, models)
    axes.tick_params(length=0)
    for y, model in enumerate(models):
        for x, sequence in enumerate(sequences):
            cell = [r for r in rows if r["model"] == model and r["return_sequences"] == sequence]
            if not cell:
                continue
            statuses = {r["status"] for r in cell}
            colour = STATUS_COLOURS.get(statuses.pop() if len(statuses) == 1 else "FAILED")
            axes.add_patch(_rectangle(x, y, colour))
            text = "\n".join(_cell_text(r, len(cell) > 1) for r in cell[:4])
            axes.text(x + 0.5, y + 0.5, text, ha="center", va="center", fontsize=8)
    axes.set_title("output shape of every cell")
    return figure


def _rectangle(x: int, y: int, colour: str):
    from matplotlib.patches import Rectangle

    return Rectangle((x + 0.03, y + 0.05), 0.94, 0.9, color=colour)


def _cell_text(row: dict, several: bool) -> str:
    shape = row["shape.output"] or row["status"]
    if not several:
        return shape
    others = ",".join(part for part in row["overrides"].split(",")
                      if not part.startswith(("model=", "return_sequences=")))
    return f"{others}: {shape}"


def throughput_figure(rows: list):
    """Every timed cell side by side, fastest first: sequences per second at the median call,
    the bar spanning the quartiles of the timed calls, on a log axis."""
    from matplotlib.figure import Figure

    timed = sorted((r for r in rows if r.get("throughput", "") != ""),
                   key=lambda r: -r["throughput"])
    figure = Figure(figsize=(9, 0.42 * len(timed) + 1.4), dpi=80, layout="constrained")
    axes = figure.add_subplot()
    y = np.arange(len(timed))
    median = np.array([r["throughput"] for r in timed])
    batch = median * np.array([r["median_seconds"] for r in timed])  # sequences a call
    half = np.array([r["iqr_seconds"] for r in timed]) / 2
    seconds = np.array([r["median_seconds"] for r in timed])
    slow = batch / (seconds + half)
    fast = batch / np.maximum(seconds - half, seconds * 0.05)
    axes.errorbar(median, y, xerr=[median - slow, fast - median], fmt="o", capsize=3)
    axes.set_xscale("log")
    axes.set_yticks(y, [r["overrides"] for r in timed], fontsize=8)
    axes.invert_yaxis()
    axes.set_xlabel("sequences per second (median call; bar: the calls' quartiles)")
    axes.grid(axis="x", which="both", alpha=0.3)
    axes.set_title("throughput of every cell, fastest first")
    return figure
