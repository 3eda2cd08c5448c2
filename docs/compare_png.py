"""Draw docs/compare.png: the seed sweep's return_sequences=true cells in MLflow's Compare view,
Tags with "Show diff only" on. Needs Debian's chromium and the test extra (playwright).

    .venv/bin/python docs/compare_png.py
"""

import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

import servers  # noqa: E402  (the tests' own way to start `mlflow server` on 127.0.0.1)


def main() -> None:
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        sweep = subprocess.run([sys.executable, "-m", "runner", "-m", "sweep=seed",
                                "return_sequences=true"], cwd=tmp, capture_output=True,
                               text=True, check=True)
        compare = re.search(r"compare: (\S+)", sweep.stdout).group(1)
        store = f"sqlite:///{tmp}/outputs/mlflow.db"
        with servers.mlflow_server(store, tmp / "server") as server, \
                sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=shutil.which("chromium"), args=["--no-sandbox", "--disable-gpu"])
            page = browser.new_page(viewport={"width": 1500, "height": 900})
            page.goto(compare.replace("http://127.0.0.1:5000", server.url))
            page.get_by_text("shape.output", exact=True).first.wait_for(timeout=90_000)
            close = page.get_by_role("button", name="Close", exact=True)
            if close.count():  # the assistant's side panel takes a third of the width
                close.first.click()
                page.get_by_role("button", name="New Chat").wait_for(state="detached")
            page.get_by_text("Show diff only", exact=True).last.click()  # the one under Tags
            tags = page.get_by_text("Tags", exact=True).first
            tags.scroll_into_view_if_needed()
            box = tags.bounding_box()
            page.screenshot(path=str(HERE / "compare.png"),
                            clip={"x": 180, "y": box["y"] - 20, "width": 1300, "height": 500})
            browser.close()


if __name__ == "__main__":
    main()
