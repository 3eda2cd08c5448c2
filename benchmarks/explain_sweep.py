"""A 16-cell explain sweep, end to end in a fresh process: median wall seconds of N repeats.

    .venv/bin/python benchmarks/explain_sweep.py [--repeats 5]
"""

import argparse
import statistics
import subprocess
import sys
import tempfile
import time

GRID = ["model=simple_rnn,lstm,bilstm,gru", "return_sequences=false,true",
        "return_state=false,true"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    seconds = []
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(args.repeats):
            start = time.perf_counter()
            result = subprocess.run(
                [sys.executable, "-m", "runner", "-m", *GRID, "mode=explain",
                 f"hydra.sweep.dir={tmp}/multirun"],
                cwd=tmp, capture_output=True, text=True, check=True)
            seconds.append(time.perf_counter() - start)
            cells = result.stdout.count("total params:")
    print(f"explain sweep: {cells} cells, median {statistics.median(seconds):.2f} s "
          f"(min {min(seconds):.2f} s, max {max(seconds):.2f} s, {args.repeats} repeats)")


if __name__ == "__main__":
    main()
