"""The benchmark at tiny sizes, once, so it cannot rot (figures are not asserted: noisy)."""

import subprocess
import sys
from pathlib import Path

import pytest


pytestmark = pytest.mark.slow  # the benchmark in a subprocess: in `make test` only

ROOT = Path(__file__).resolve().parents[1]


def test_benchmark_smoke_run_prints_every_pair(tmp_path):
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "run.py"), "--smoke", "--repeats", "1",
         "--json", str(tmp_path / "results.json")],
        cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    for row in ("| notebook:", "| grid:", "| large:", "| large: peak RSS", "| startup:",
                "| memory:", "| timing:"):
        assert row in result.stdout
    assert (tmp_path / "results.json").exists()
