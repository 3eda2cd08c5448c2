"""The oracle's cost estimates beside what the runs measured: memory and mult-adds per second.

    .venv/bin/python benchmarks/cost.py [--smoke]

Runs every cell of three grids through the CLI, one process a cell, into a fresh store (the
speed sweep's cells on a CPU, the guide models at their own sizes, and cells with large outputs):
in a process of its own each cell starts from the same baseline, where cells of one sweep would
reuse memory an earlier cell left mapped. Then prints one markdown row a cell: the estimate (`memory.estimate_mb`), the peak resident memory above the job's baseline
(`memory.peak_rss_mb - memory.baseline_mb`, both measured inside the job), their ratio, the
mult-adds of one prediction and the rate of the median timed call.
"""

import argparse
import itertools
import os
import statistics
import subprocess
import sys
import tempfile

SWEEPS = {
    # The speed sweep's cells (use_cudnn changes nothing on a CPU), with 5 timed calls
    "speed": ["model=lstm,gru", "model.units=64", "data.features=16",
              "data.batch_size=256,512", "data.timesteps=100,200"],
    "guide": ["model=guide_bidirectional,guide_cells,guide_embedding_lstm,"
              "guide_encoder_decoder,guide_gru_simple_rnn,guide_stateful"],
    # Outputs large beside the rest: every timestep of 64 or 128 units
    "large": ["model=lstm,bilstm", "model.units=64", "return_sequences=true",
              "data.features=16", "data.batch_size=1024,2048", "data.timesteps=500"],
}
SMOKE = {"speed": ["model=lstm", "model.units=8", "data.batch_size=16", "data.timesteps=20"]}


def cells(overrides: list) -> list:
    """Every cell of the grid `overrides` describes, as the overrides of one job."""
    choices = [[f"{key}={value}" for value in values.split(",")]
               for key, values in (override.split("=", 1) for override in overrides)]
    return [list(cell) for cell in itertools.product(*choices)]


def run_cell(overrides: list, cwd: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "HYDRA_"))}
    subprocess.run([sys.executable, "-m", "runner", *overrides, "timing.repeats=5"],
                   cwd=cwd, env=env, check=True, stdout=subprocess.DEVNULL)


def rows(cwd: str) -> list:
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{cwd}/outputs/mlflow.db")
    experiment = client.get_experiment_by_name("rnn-shapes")
    runs = client.search_runs([experiment.experiment_id], max_results=1000)
    table = []
    for run in sorted(runs, key=lambda run: run.info.start_time):
        metrics = run.data.metrics
        if "memory.baseline_mb" not in metrics:
            continue
        measured = metrics["memory.peak_rss_mb"] - metrics["memory.baseline_mb"]
        table.append({
            "cell": run.info.run_name.replace(",timing.repeats=5", ""), "estimate_mb": metrics["memory.estimate_mb"],
            "measured_mb": measured, "mult_adds": metrics["model.mult_adds"],
            "rate": metrics.get("throughput.mult_adds_per_second"),
            "median_s": metrics.get("predict.median_seconds")})
    return table


def markdown(table: list) -> str:
    lines = ["| cell | estimate MiB | measured MiB above baseline | measured / estimate | "
             "TF's part MiB | mult-adds a call | median s | mult-adds/s |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for row in table:
        lines.append(
            f"| {row['cell']} | {row['estimate_mb']:.1f} | {row['measured_mb']:.1f} | "
            f"{row['measured_mb'] / row['estimate_mb']:.1f} | "
            f"{row['measured_mb'] - row['estimate_mb']:.1f} | {row['mult_adds']:.2e} | "
            f"{row['median_s']:.4f} | {row['rate']:.2e} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="one tiny cell")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as cwd:
        for overrides in (SMOKE if args.smoke else SWEEPS).values():
            for cell in cells(overrides):
                run_cell(cell, cwd)
        table = rows(cwd)
    print(markdown(table))
    ratios = [row["measured_mb"] / row["estimate_mb"] for row in table]
    rates = [row["rate"] for row in table if row["mult_adds"] >= 10**8]
    print(f"\nmeasured / estimate: min {min(ratios):.2f}, median {statistics.median(ratios):.2f},"
          f" max {max(ratios):.2f}")
    if rates:
        print(f"mult-adds/s over cells of 1e8 or more a call: median "
              f"{statistics.median(rates):.2e}")


if __name__ == "__main__":
    main()
