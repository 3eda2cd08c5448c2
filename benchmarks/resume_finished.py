"""Resuming a finished sweep beside `--cfg job` and one cold store query: median wall seconds of
N repeats, each a fresh process, on a store holding the notebook's sweep (made first, untimed).

    .venv/bin/python benchmarks/resume_finished.py [--repeats 5]
"""

import argparse
import statistics
import subprocess
import sys
import tempfile
import time

SWEEP = ["-m", "sweep=seed"]
# What a resume asks of the store, alone: MLflow's import, the store opened, the grid's parent
QUERY = """
import sys
from mlflow import MlflowClient
client = MlflowClient(sys.argv[1])
experiment = client.get_experiment_by_name("rnn-shapes").experiment_id
parent = client.search_runs([experiment], filter_string="tags.`sweep.grid.sha256` LIKE '%'",
                            max_results=1)[0]
client.search_runs([experiment], filter_string=f"tags.mlflow.parentRunId = '{parent.info.run_id}'")
"""


def seconds(command: list, cwd: str, repeats: int) -> list:
    taken = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run(command, cwd=cwd, capture_output=True, check=True)
        taken.append(time.perf_counter() - start)
    return taken


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([sys.executable, "-m", "runner", *SWEEP], cwd=tmp, capture_output=True,
                       check=True)
        rows = {
            "resume=last of the finished sweep": [sys.executable, "-m", "runner", *SWEEP,
                                                  "resume=last"],
            "--cfg job": [sys.executable, "-m", "runner", "--cfg", "job"],
            "one cold store query": [sys.executable, "-c", QUERY,
                                     f"sqlite:///{tmp}/outputs/mlflow.db"],
        }
        for name, command in rows.items():
            taken = seconds(command, tmp, args.repeats)
            print(f"{name}: median {statistics.median(taken):.2f} s (min {min(taken):.2f} s, "
                  f"max {max(taken):.2f} s, {args.repeats} repeats)")


if __name__ == "__main__":
    main()
