"""The MLflow UI in a real headless Chromium: run names and shapes are where a person looks."""

import re
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


def test_the_printed_addresses_open_the_runs_and_their_shapes(run_cli, client, store_uri,
                                                              tmp_path):
    """The runs table and the compare view, at the addresses the sweep printed: the runs table
    ("Model training", not the GenAI overview) holds the sweep's runs; Compare shows shapes."""
    result = run_cli("-m", "model=lstm,bilstm", "return_sequences=true")
    assert result.returncode == 0
    children = [r for r in runs_of(client) if "mlflow.parentRunId" in r.data.tags]
    printed = dict(re.findall(r"^  (runs|compare): +(\S+)", result.stdout, re.M))

    with servers.mlflow_server(store_uri, tmp_path / "server") as server:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM,
                                                 args=["--no-sandbox", "--disable-gpu"])
            page = browser.new_page(viewport={"width": 1600, "height": 1000})

            page.goto(printed["runs"].replace("http://127.0.0.1:5000", server.url))
            page.get_by_text("Model training", exact=True).first.wait_for(timeout=90_000)
            page.get_by_text("3 matching runs").wait_for(timeout=90_000)  # the parent, 2 cells
            page.screenshot(path=str(tmp_path / "runs.png"), full_page=True)

            page.goto(printed["compare"].replace("http://127.0.0.1:5000", server.url))
            for child in children:
                page.get_by_text(child.info.run_name).first.wait_for(timeout=90_000)
            page.get_by_text("shape.output", exact=True).first.wait_for(timeout=90_000)
            for shape in ("(4, 30, 3)", "(4, 30, 6)", "output (4, 30, 6)"):
                page.get_by_text(shape, exact=True).first.wait_for(timeout=30_000)
            page.screenshot(path=str(tmp_path / "compare.png"), full_page=True)
            browser.close()
    assert (tmp_path / "runs.png").stat().st_size > 10_000
    assert (tmp_path / "compare.png").stat().st_size > 10_000
