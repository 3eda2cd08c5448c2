"""The MLflow UI in a real headless Chromium: run names and shapes are where a person looks."""

import re
import shutil

import pytest

import servers
from helpers import SEED_TABLE, runs_of

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
try:
    from playwright.sync_api import sync_playwright
except ImportError:  # pragma: no cover - the test extra installs it
    sync_playwright = None

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed "
                                                "(.ci/run installs it with apt-get)"),
    pytest.mark.skipif(sync_playwright is None, reason="playwright is not installed"),
]


# The rendered runs table, one entry a row: its cells' texts by column id (ag-grid's `col-id`)
ROWS_SCRIPT = """rows => {
    const table = {};
    for (const cell of rows) {
        const row = cell.closest('.ag-row').getAttribute('row-index');
        (table[row] = table[row] || {})[cell.getAttribute('col-id')] = cell.innerText;
    }
    return Object.values(table);
}"""


def test_the_printed_addresses_open_the_shapes(run_cli, client, store_uri, tmp_path):
    """The seed sweep as a user types it; then, in Chromium, the addresses it printed: the runs
    table holds one row a cell, each with its output shape in a visible `shape.output` column
    (no click); Compare shows the shapes too; the figure's address shows grid.png."""
    result = run_cli("-m", "sweep=seed")
    assert result.returncode == 0, result.stderr[-2000:]
    children = [r for r in runs_of(client) if "mlflow.parentRunId" in r.data.tags]
    assert len(children) == 8
    printed = dict(re.findall(r"^  (runs|compare|figure): +(\S+)", result.stdout, re.M))

    with servers.mlflow_server(store_uri, tmp_path / "server") as server:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM,
                                                 args=["--no-sandbox", "--disable-gpu"])
            page = browser.new_page(viewport={"width": 1600, "height": 1000})

            page.goto(printed["runs"].replace("http://127.0.0.1:5000", server.url))
            page.get_by_text("8 matching runs").wait_for(timeout=90_000)  # the cells alone
            page.locator("[col-id='tags.`shape.output`']").nth(8).wait_for(timeout=30_000)
            rows = page.eval_on_selector_all(".ag-row[row-index] [col-id]", ROWS_SCRIPT)
            page.screenshot(path=str(tmp_path / "runs.png"), full_page=True)
            shown = {row["attributes.`Run Name`"].splitlines()[-1]: row["tags.`shape.output`"]
                     for row in rows}
            assert shown == SEED_TABLE
            assert [name for name in shown] == sorted(SEED_TABLE)  # by name, as the view says

            page.goto(printed["compare"].replace("http://127.0.0.1:5000", server.url))
            for child in children:
                page.get_by_text(child.info.run_name).first.wait_for(timeout=90_000)
            page.get_by_text("shape.output", exact=True).first.wait_for(timeout=90_000)
            for shape in ("(4, 30, 3)", "(4, 30, 6)", "output (4, 30, 6)"):
                page.get_by_text(shape, exact=True).first.wait_for(timeout=30_000)

            page.goto(printed["figure"].replace("http://127.0.0.1:5000", server.url))
            page.get_by_text("grid.png").first.wait_for(timeout=90_000)
            page.wait_for_function(  # the picture itself, drawn at its width (over 300 px)
                "[...document.images].some(image => image.naturalWidth > 300)", timeout=90_000)
            page.screenshot(path=str(tmp_path / "figure.png"))
            browser.close()
    assert (tmp_path / "runs.png").stat().st_size > 10_000
