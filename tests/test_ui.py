"""The MLflow UI in a real headless Chromium: run names and shapes are where a person looks."""

import json
import shutil

import pytest

import servers
from helpers import runs_of

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


def test_runs_and_shapes_are_visible_in_the_mlflow_ui(run_cli, client, store_uri, tmp_path):
    assert run_cli("-m", "model=lstm,bilstm", "return_sequences=true").returncode == 0
    runs = runs_of(client)
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    [parent] = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    experiment_id = runs[0].info.experiment_id

    with servers.mlflow_server(store_uri, tmp_path / "server") as server:
        base = server.url
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM,
                                                 args=["--no-sandbox", "--disable-gpu"])
            page = browser.new_page(viewport={"width": 1600, "height": 1000})

            # the runs table ("Model training"); the sweep's parent groups its children
            page.goto(f"{base}/#/experiments/{experiment_id}/runs?workflowType=machine_learning")
            page.get_by_text(parent.info.run_name, exact=True).first.wait_for(timeout=90_000)
            page.screenshot(path=str(tmp_path / "experiment.png"), full_page=True)

            ids = json.dumps([child.info.run_id for child in children])
            page.goto(f"{base}/#/compare-runs?runs={ids}&experiments={json.dumps([experiment_id])}")
            for child in children:
                page.get_by_text(child.info.run_name).first.wait_for(timeout=90_000)
            page.get_by_text("shape.output", exact=True).first.wait_for(timeout=90_000)
            for shape in ("(4, 30, 3)", "(4, 30, 6)"):
                page.get_by_text(shape, exact=True).first.wait_for(timeout=30_000)
            page.screenshot(path=str(tmp_path / "compare.png"), full_page=True)
            browser.close()
    assert (tmp_path / "experiment.png").stat().st_size > 10_000
    assert (tmp_path / "compare.png").stat().st_size > 10_000
