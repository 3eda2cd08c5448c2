"""Pictures for the MLflow UI: one run's output over timesteps, one sweep's grid of shapes.

Matplotlib's object API on the Agg canvas: no display, no pyplot state shared between jobs.
"""

import math
import re
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


def sweep_figures(rows: list, speed: bool = False) -> dict:
    """The parent's figures of a sweep, by file name, each drawn from the summary's rows: the
    grid of shapes; with `speed`, the throughput of the timed cells too."""
    figures = {"grid.png": grid_figure} if rows else {}
    if speed and any(row.get("throughput", "") != "" for row in rows):
        figures["throughput.png"] = throughput_figure
    return figures


_PAIR = re.compile(r",(?=[+~]?[\w.\-/@]+=)")  # a comma that starts the next `key=value`


def override_pairs(overrides: str) -> dict:
    """`model=lstm,data.shape=[4,30]` -> {"model": "lstm", "data.shape": "[4,30]"}: a comma
    inside a value does not split it."""
    pairs = {}
    for part in _PAIR.split(overrides):
        if "=" in part:
            key, value = part.split("=", 1)
            pairs[key] = value
    return pairs


def varying_keys(rows: list) -> list:
    """The override keys whose values differ between the rows, in the order they were typed."""
    pairs = [override_pairs(row["overrides"]) for row in rows]
    keys = list(dict.fromkeys(key for cell in pairs for key in cell))
    return [key for key in keys if len({cell.get(key) for cell in pairs}) > 1]


def _split_keys(rows: list, keys: list) -> tuple:
    """The keys down the grid's side and those across its top: the split whose number of rows
    and of columns are closest, the first key always down the side."""
    def count(chosen):
        return len({tuple(override_pairs(r["overrides"]).get(k) for k in chosen) for r in rows})

    if len(keys) < 2:
        return keys, []
    best = min(range(1, len(keys)),
               key=lambda s: (abs(math.log(count(keys[:s]) / count(keys[s:]))), s))
    return keys[:best], keys[best:]


def _label(pairs: dict, keys: list) -> str:
    return "\n".join(f"{key}={pairs.get(key, '(unset)')}" for key in keys)


def _shape_lines(row: dict) -> list:
    """A cell's shapes: its output's, or every named output's; its status when not FINISHED."""
    outputs = row.get("outputs") or {}
    lines = ([f"{name} {shape}" for name, shape in outputs.items()] if len(outputs) > 1
             else [row["shape.output"]] if row.get("shape.output") else [])
    if row["status"] != "FINISHED" or not lines:
        lines.append(row["status"])
    return lines


FONT_SIZE = 9
PAD = 8  # pixels between a text and the edge of its cell


# Past this many cells, grid.png puts a square for each pair of values of two knobs, each
# square summing up the cells that share them (`grid_figure`); a knob with more values than
# AXIS_VALUES is not put on an axis
LEGIBLE_CELLS = 64
AXIS_VALUES = 24


def _axes_of_big(rows: list, keys: list) -> tuple:
    """The two knobs a big sweep's grid is drawn over: the first two typed with at most
    AXIS_VALUES values (the first one only, or the first of all, where there are fewer)."""
    def count(key):
        return len({override_pairs(row["overrides"]).get(key) for row in rows})

    fitting = [key for key in keys if count(key) <= AXIS_VALUES] or keys[:1]
    return fitting[:1], fitting[1:2]


def _square_lines(members: list) -> list:
    """What a square of a big sweep's grid says of its cells: their output shapes (the most
    common first, two at most), how many finished, how many cells."""
    shapes = {}
    for row in members:
        shape = row.get("shape.output") or "-"
        shapes[shape] = shapes.get(shape, 0) + 1
    ranked = sorted(shapes, key=lambda shape: -shapes[shape])
    lines = ranked[:2] + ([f"+{len(ranked) - 2} more shapes"] if len(ranked) > 2 else [])
    finished = sum(row["status"] == "FINISHED" for row in members)
    lines.append(f"{len(members)} cells" if finished == len(members)
                 else f"{finished} of {len(members)} FINISHED")
    return lines


def grid_figure(rows: list):
    """Every cell of a sweep at the crossing of its overrides, annotated with its output
    shapes and coloured by status: the keys that vary split between the side and the top, each
    column as wide as its widest text, so that no text overlaps another or leaves the canvas.
    Past LEGIBLE_CELLS cells, a square for each pair of values of two knobs instead, saying
    its cells' shapes and how many finished, coloured by whether all, some or none did."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.patches import Rectangle

    keys = varying_keys(rows)
    big = len(rows) > LEGIBLE_CELLS
    down, across = _axes_of_big(rows, keys) if big else _split_keys(rows, keys)
    cells = {}
    for row in rows:
        pairs = override_pairs(row["overrides"])
        side = _label(pairs, down) if down else row["overrides"]
        cells.setdefault(side, {}).setdefault(_label(pairs, across), []).append(row)
    sides = list(cells)
    tops = list(dict.fromkeys(top for side in sides for top in cells[side]))

    figure = Figure(dpi=100)
    renderer = FigureCanvasAgg(figure).get_renderer()

    def text(string, **kwargs):
        artist = figure.text(0, 0, string, **{"fontsize": FONT_SIZE, "ha": "center",
                                              "va": "center", **kwargs})
        box = artist.get_window_extent(renderer)
        return artist, box.width, box.height

    within = [key for key in keys if key not in down + across]
    title = text(f"output shapes of {len(rows)} cells over {' and '.join(down + across)}"
                 + (f" ({', '.join(within)} vary within each square)" if within else "")
                 if big else "output shape of every cell", fontsize=FONT_SIZE + 2)
    side_labels = {side: text(side, ha="right") for side in sides}
    top_labels = {top: text(top) for top in tops if top}
    shapes = {(side, top): text("\n".join(_square_lines(cells[side][top]) if big else [
        line for row in cells[side][top] for line in _shape_lines(row)]), gid="shape")
        for side in sides for top in cells[side]}
    # Column and row sizes in pixels, from the texts they hold
    side_width = max(width for _, width, _ in side_labels.values()) + 2 * PAD
    widths = [max([top_labels[top][1] if top else 0]
                  + [shapes[side, top][1] for side in sides if (side, top) in shapes]) + 2 * PAD
              for top in tops]
    top_height = max([height for _, _, height in top_labels.values()] or [0]) + 2 * PAD
    heights = [max([side_labels[side][2]] + [shapes[side, top][2] for top in cells[side]])
               + 2 * PAD for side in sides]
    margin, title_height = 12, title[2] + PAD
    width = max(2 * margin + side_width + sum(widths), 2 * margin + title[1])
    height = 2 * margin + title_height + top_height + sum(heights)
    figure.set_size_inches(width / figure.dpi, height / figure.dpi)

    def place(artist, x, y):  # from pixels, top left, to the figure's fractions
        artist.set_position((x / width, 1 - y / height))

    place(title[0], width / 2, margin + title[2] / 2)
    left = [margin + side_width + sum(widths[:i]) for i in range(len(tops))]
    top_y = margin + title_height
    for column, top in enumerate(tops):
        if top:
            place(top_labels[top][0], left[column] + widths[column] / 2, top_y + top_height / 2)
    y = top_y + top_height
    for side, row_height in zip(sides, heights):
        place(side_labels[side][0], margin + side_width - PAD, y + row_height / 2)
        for column, top in enumerate(tops):
            if top not in cells[side]:
                continue
            statuses = {row["status"] for row in cells[side][top]}
            if len(statuses) == 1:
                colour = STATUS_COLOURS.get(statuses.pop(), "#f8d0d0")
            elif big and "FINISHED" in statuses:  # a square where some cells finished
                colour = STATUS_COLOURS["KILLED"]
            else:
                colour = STATUS_COLOURS["FAILED"]
            figure.patches.append(Rectangle(
                ((left[column] + 2) / width, 1 - (y + row_height - 2) / height),
                (widths[column] - 4) / width, (row_height - 4) / height, color=colour,
                transform=figure.transFigure, figure=figure))
            place(shapes[side, top][0], left[column] + widths[column] / 2, y + row_height / 2)
        y += row_height
    return figure


def _tick_values(low: float, high: float) -> list:
    """1, 2 and 5 times the powers of ten between `low` and `high`; only the powers when
    those would be more than ten."""
    decades = range(math.floor(math.log10(low)), math.ceil(math.log10(high)) + 1)
    for steps in ((1, 2, 5), (1,)):
        ticks = [step * 10.0 ** decade for decade in decades for step in steps
                 if low <= step * 10.0 ** decade <= high]
        if len(ticks) <= 10:
            return ticks
    return ticks


def _number(value: float) -> str:
    return f"{value:,.0f}" if value >= 1 else f"{value:g}"


FASTEST_SHOWN, SLOWEST_SHOWN = 30, 10  # a big sweep's throughput.png: its ends, a row each


def throughput_figure(rows: list):
    """Every timed cell side by side, fastest first: sequences per second at the median call,
    the bar spanning the quartiles of the timed calls, on a log axis. Each cell is named by
    the overrides that vary; the left margin is as wide as the longest name. Past
    FASTEST_SHOWN + SLOWEST_SHOWN timed cells, the fastest and the slowest of them."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import NullFormatter

    timed = sorted((r for r in rows if r.get("throughput", "") != ""),
                   key=lambda r: -r["throughput"])
    every = len(timed)
    if every > LEGIBLE_CELLS:
        timed = timed[:FASTEST_SHOWN] + timed[-SLOWEST_SHOWN:]
    keys = varying_keys(timed)
    names = [",".join(f"{key}={override_pairs(r['overrides']).get(key, '(unset)')}"
                      for key in keys) or r["overrides"] for r in timed]
    figure = Figure(dpi=100)
    renderer = FigureCanvasAgg(figure).get_renderer()
    probes = [figure.text(0, 0, name, fontsize=8) for name in names]
    name_width = max(probe.get_window_extent(renderer).width for probe in probes)
    for probe in probes:
        probe.remove()
    plot_width, row_height, top, bottom = 600, 26, 40, 70  # pixels
    width = name_width + 20 + plot_width + 30
    height = top + row_height * max(len(timed), 2) + bottom
    figure.set_size_inches(width / figure.dpi, height / figure.dpi)
    figure.subplots_adjust(left=(name_width + 20) / width, right=1 - 30 / width,
                           top=1 - top / height, bottom=bottom / height)
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
    low, high = slow.min() / 1.3, fast.max() * 1.3
    axes.set_xlim(low, high)
    # Ticks of our own: the log axis's labels on its minor ticks can overlap
    ticks = _tick_values(low, high) or [float(np.median(median))]
    axes.set_xticks(ticks, [_number(tick) for tick in ticks], fontsize=8)
    axes.xaxis.set_minor_formatter(NullFormatter())
    axes.set_yticks(y, names, fontsize=8)
    axes.set_ylim(len(timed) - 0.5, -0.5)  # the fastest on top
    axes.set_xlabel("sequences per second: the dot at the median call,\n"
                    "the bar across the quartiles of the timed calls", fontsize=9)
    axes.grid(axis="x", which="both", alpha=0.3)
    axes.set_title("throughput of every cell, fastest first" if every == len(timed) else
                   f"throughput of the {FASTEST_SHOWN} fastest and the {SLOWEST_SHOWN} slowest "
                   f"of {every} cells", fontsize=10)
    return figure
