"""The sweep's figures read from the figure itself: at 8, 16 and 48 cells every text lies whole
inside the canvas, no two overlap, and every cell's shape is written in its place."""

import itertools

import pytest

SEED = {"model": ["simple_rnn", "lstm", "bilstm", "lambda_lstm"],
        "return_sequences": ["false", "true"]}
SPEED = {"model": ["lstm", "gru"], "+model.layers.0.use_cudnn": ["auto", "false"],
         "data.batch_size": ["256", "512"], "data.timesteps": ["100", "200"]}
SEEDS = {**SEED, "seed": [str(seed) for seed in range(6)]}


def sweep_rows(grid: dict) -> list:
    """Summary rows (as recording/summary.py's child_row makes them) of a grid's cells, each
    with its own output shape; the sixth cell FAILED."""
    rows = []
    for job, values in enumerate(itertools.product(*grid.values())):
        cell = dict(zip(grid, values))
        sequences = cell.get("return_sequences") == "true"
        units = 2 * job + 1
        shape = f"(4, {cell.get('data.timesteps', 30)}, {units})" if sequences else f"(4, {units})"
        rows.append({"job": job, "overrides": ",".join(f"{k}={v}" for k, v in cell.items()),
                     "status": "FAILED" if job == 5 else "FINISHED", "shape.output": shape,
                     "outputs": {"output": shape}, "error": "",
                     "throughput": 1000.0 + 250 * job, "median_seconds": 0.01 + job / 1000,
                     "iqr_seconds": 0.002})
    return rows


def drawn_texts(figure) -> list:
    """(text, box in pixels) of every visible, non-empty text, as the Agg canvas draws it."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.text import Text

    canvas = FigureCanvasAgg(figure)
    canvas.draw()
    renderer = canvas.get_renderer()
    return [(text.get_text(), text.get_window_extent(renderer))
            for text in figure.findobj(Text) if text.get_visible() and text.get_text().strip()]


def assert_legible(figure) -> list:
    """Every text whole inside the canvas and none overlapping another; returns the texts."""
    texts = drawn_texts(figure)
    width, height = figure.canvas.get_width_height()
    outside = [text for text, box in texts
               if box.x0 < 0 or box.y0 < 0 or box.x1 > width or box.y1 > height]
    assert outside == [], f"cut by the canvas edge ({width}x{height}): {outside}"
    overlapping = [(a, b) for (a, box_a), (b, box_b) in itertools.combinations(texts, 2)
                   if box_a.overlaps(box_b)]
    assert overlapping == []
    return [text for text, _ in texts]


@pytest.mark.parametrize("grid", [SEED, SPEED, SEEDS], ids=["8 cells", "16 cells", "48 cells"])
def test_the_grid_figure_is_legible_and_shows_every_shape(grid):
    from runner.plots import grid_figure

    rows = sweep_rows(grid)
    assert len(rows) in (8, 16, 48)
    figure = grid_figure(rows)
    texts = assert_legible(figure)
    shapes = [text.get_text() for text in figure.texts if text.get_gid() == "shape"]
    # one text a cell: its shape, and its status when it did not finish
    assert sorted(shapes) == sorted(row["shape.output"] + ("\nFAILED" if row["job"] == 5 else "")
                                    for row in rows)
    # every value of every varying key labels a row or a column
    labels = "\n".join(texts)
    assert all(f"{key}={value}" in labels for key, values in grid.items() for value in values)


def test_the_grid_puts_each_shape_where_its_overrides_cross():
    """The seed sweep as the notebook's table: stacks down, return_sequences across."""
    from runner.plots import grid_figure

    figure = grid_figure(sweep_rows(SEED))
    texts = {text.get_text(): text.get_position() for text in figure.texts}
    sides = [texts[f"model={model}"][1] for model in SEED["model"]]
    tops = [texts[f"return_sequences={value}"][0] for value in SEED["return_sequences"]]
    assert sides == sorted(sides, reverse=True) and tops == sorted(tops)  # in the typed order
    # lstm with return_sequences=true is job 3: its shape is at that row and that column
    assert texts["(4, 30, 7)"] == pytest.approx((tops[1], sides[1]))


@pytest.mark.parametrize("grid", [SEED, SPEED, SEEDS], ids=["8 cells", "16 cells", "48 cells"])
def test_the_throughput_figure_is_legible_and_names_every_cell(grid):
    from runner.plots import throughput_figure, varying_keys

    rows = sweep_rows(grid)
    figure = throughput_figure(rows)
    texts = assert_legible(figure)
    [axes] = figure.axes
    names = [label.get_text() for label in axes.get_yticklabels()]
    # each cell named by the overrides that vary, fastest (the last job) first
    assert names == [",".join(f"{key}={row['overrides'].split(key + '=')[1].split(',')[0]}"
                              for key in varying_keys(rows)) for row in reversed(rows)]
    assert "sequences per second: the dot at the median call,\n" \
           "the bar across the quartiles of the timed calls" in texts


def test_a_sweep_has_the_figures_of_its_kind():
    from runner.plots import sweep_figures

    rows = sweep_rows(SPEED)
    assert list(sweep_figures(rows)) == ["grid.png"]
    assert list(sweep_figures(rows, speed=True)) == ["grid.png", "throughput.png"]
    untimed = [{**row, "throughput": ""} for row in rows]
    assert list(sweep_figures(untimed, speed=True)) == ["grid.png"]
    assert sweep_figures([], speed=True) == {}


THOUSAND = {**SEED, "data.timesteps": [str(t) for t in range(10, 35)],
            "seed": [str(seed) for seed in range(5)]}


def test_a_thousand_cells_give_way_to_squares_over_two_knobs_legible():
    """Past 64 cells grid.png is a square for each pair of values of the first two knobs that
    fit an axis: the cells' shapes in it, how many finished, coloured as they ended."""
    from runner.plots import grid_figure

    rows = sweep_rows(THOUSAND)
    assert len(rows) == 1000
    figure = grid_figure(rows)
    texts = assert_legible(figure)
    width, height = figure.canvas.get_width_height()
    assert width < 1600 and height < 800
    assert texts[0] == ("output shapes of 1000 cells over model and return_sequences "
                        "(data.timesteps, seed vary within each square)")
    squares = {text.get_text() for text in figure.texts if text.get_gid() == "shape"}
    assert len([text for text in figure.texts if text.get_gid() == "shape"]) == 8
    # simple_rnn with return_sequences=false: jobs 0-124, job 5 FAILED, each its own shape
    assert "(4, 1)\n(4, 3)\n+123 more shapes\n124 of 125 FINISHED" in squares
    assert "(4, 501)\n(4, 503)\n+123 more shapes\n125 cells" in squares  # lstm, false


def test_a_thousand_timed_cells_show_their_fastest_and_slowest():
    from runner.plots import throughput_figure

    rows = sweep_rows(THOUSAND)
    figure = throughput_figure(rows)
    texts = assert_legible(figure)
    [axes] = figure.axes
    assert len(axes.get_yticklabels()) == 40
    assert "throughput of the 30 fastest and the 10 slowest of 1000 cells" in texts
