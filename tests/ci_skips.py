"""In CI (the environment variable CI set, as .ci/run sets it) a skipped test fails with its
reason: every test must run there but the GPU ones (marker `gpu`), which skip where there is no
GPU. A test that skips because Chromium or PostgreSQL is missing is then a failing CI run, not a
green one that proved less than it says. Loaded by conftest.py; `-p ci_skips` elsewhere."""

import os

import pytest


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def _reason(report) -> str:
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:  # (file, line, "Skipped: why")
        return str(longrepr[2]).removeprefix("Skipped: ")
    return str(longrepr)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    if (report.skipped and in_ci() and not hasattr(report, "wasxfail")
            and item.get_closest_marker("gpu") is None):
        report.outcome = "failed"
        report.longrepr = (f"skipped in CI, where only the GPU tests may skip: {_reason(report)}")
    return report


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(collector):
    report = yield
    if report.skipped and in_ci():
        report.outcome = "failed"
        report.longrepr = (f"{collector.nodeid} skipped in CI, where only the GPU tests may "
                           f"skip: {_reason(report)}")
    return report
