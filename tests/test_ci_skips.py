"""The CI rule of tests/ci_skips.py, on small test files run by pytest in a subprocess: in CI a
skip fails with its reason, but for the GPU tests; elsewhere a skip is a skip, its reason shown."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).parent

SAMPLE = '''import pytest

def test_runs():
    pass

def test_needs_a_browser():
    pytest.skip("Debian's chromium is not installed")

@pytest.mark.skipif(True, reason="postgres is not here")
def test_needs_a_database():
    pass

@pytest.mark.gpu
@pytest.mark.skipif(True, reason="no NVIDIA GPU here")
def test_on_the_gpu():
    pass

@pytest.mark.xfail(reason="known", strict=True)
def test_known_failure():
    assert False
'''
WHOLE = '''import pytest

pytest.skip("playwright is not installed", allow_module_level=True)
'''


def _pytest(tmp_path, ci) -> subprocess.CompletedProcess:
    (tmp_path / "test_sample.py").write_text(SAMPLE)
    (tmp_path / "test_whole.py").write_text(WHOLE)
    (tmp_path / "pytest.ini").write_text("[pytest]\nmarkers =\n    gpu: needs a GPU\n")
    env = {k: v for k, v in os.environ.items() if k not in ("CI", "PYTEST_ADDOPTS")}
    if ci is not None:
        env["CI"] = ci
    env["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"  # none needed: starts in a fraction of the time
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(TESTS), env.get("PYTHONPATH")]))
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "ci_skips", "-p",
                           "no:cacheprovider", "-rfEs",
                           "--continue-on-collection-errors"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)


def test_in_ci_a_skip_fails_with_its_reason_but_a_gpu_tests_skip(tmp_path):
    result = _pytest(tmp_path, ci="true")
    out = result.stdout
    assert result.returncode == 1, out
    why = "skipped in CI, where only the GPU tests may skip: "
    assert "FAILED test_sample.py::test_needs_a_browser" in out
    assert why + "Debian's chromium is not installed" in out
    assert "ERROR test_sample.py::test_needs_a_database" in out  # skipped by its mark, at setup
    assert why + "postgres is not here" in out
    assert "ERROR test_whole.py" in out and why + "playwright is not installed" in out
    assert re.search(r"SKIPPED \[1\] test_sample.py:\d+: no NVIDIA GPU here", out)
    assert "1 failed, 1 passed, 1 skipped, 1 xfailed, 2 errors" in out


@pytest.mark.parametrize("ci", [None, "false"])
def test_outside_ci_a_skip_is_a_skip_and_says_why(tmp_path, ci):
    result = _pytest(tmp_path, ci=ci)
    out = result.stdout
    assert result.returncode == 0, out
    assert re.search(r"SKIPPED \[1\] test_sample.py:\d+: Debian's chromium is not installed", out)
    assert re.search(r"SKIPPED \[1\] test_whole.py:\d+: playwright is not installed", out)
    assert "1 passed, 4 skipped, 1 xfailed" in out
