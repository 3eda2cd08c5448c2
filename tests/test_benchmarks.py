"""The benchmarks at tiny sizes, once, so they cannot rot (timings are not asserted: noisy)."""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest


# each benchmark in a subprocess: `make bench-smoke` (CI runs it beside `make test`)
pytestmark = [pytest.mark.slow, pytest.mark.bench]

ROOT = Path(__file__).resolve().parents[1]


# Every pair, in two runs the two test processes can share
SMOKE_PAIRS = {
    "notebook,grid,large,startup,memory": ("| notebook:", "| grid:", "| large:",
                                           "| large: peak RSS", "| startup:", "| memory:"),
    "timing.tensorflow,timing.jax,timing.torch": ("| timing.tensorflow:", "| timing.jax:",
                                                  "| timing.torch:"),
}


@pytest.mark.parametrize("pairs", SMOKE_PAIRS, ids=["runs", "timing"])
def test_benchmark_smoke_run_prints_every_pair(tmp_path, pairs):
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "run.py"), "--smoke", "--repeats", "1",
         "--only", pairs, "--json", str(tmp_path / "results.json")],
        cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    for row in SMOKE_PAIRS[pairs]:
        assert row in result.stdout
    assert (tmp_path / "results.json").exists()


def test_store_load_on_a_fresh_sqlite_store_loses_and_rewrites_nothing(tmp_path):
    """benchmarks/store_load.py at a small size: 8 writer processes at once, 2 orphans to reap."""
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "store_load.py"), "--writers", "8",
         "--orphans", "2", "--store", "sqlite"],
        cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    *_, orphans, writers = result.stdout.splitlines()
    assert orphans == "orphans 2: ended KILLED by a reaper 2"
    assert re.fullmatch(r"writers 8: finished 8, lost 0, rewritten 0, slowest write \d+\.\d s",
                        writers), result.stdout


def test_cost_benchmark_smoke_run_prints_the_estimate_beside_the_measurement(tmp_path):
    result = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "cost.py"), "--smoke"],
                            cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.splitlines()
    assert lines[0].startswith("| cell | estimate MiB | measured MiB above baseline |")
    assert lines[2].startswith("| data.batch_size=16,data.timesteps=20,model.units=8,model=lstm |")
    assert lines[-1].startswith("measured / estimate: min ")


def test_big_grid_smoke_run_prints_every_figure(tmp_path):
    """benchmarks/big_grid.py at 10 cells: the check, a sweep run whole, a finished store of 10
    cells closed, read back and resumed."""
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "big_grid.py"), "--smoke",
         "--json", str(tmp_path / "big.json")],
        cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    rows = [line.split(" | ")[0] for line in result.stdout.splitlines() if line.startswith("| ")]
    assert rows == ["| figure", "| check s", "| check CPU s", "| check peak RSS MiB",
                    "| first job s", "| run wall s", "| after last job s", "| run peak RSS MiB",
                    "| close s", "| results s", "| resume s", "| resume CPU s",
                    "| resume peak RSS MiB", "| store query s", "| load"]
    figures = json.loads((tmp_path / "big.json").read_text())["10"]
    assert all(figures[name] > 0 for name in ("check s", "first job s", "close s", "resume s"))
