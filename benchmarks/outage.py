"""A tracking server that restarts mid-sweep, and what the journal costs when nothing fails.

    .venv/bin/python benchmarks/outage.py [--cells 16] [--outage 30] [--repeats 3]

outage: a sweep records into `mlflow server` on a throwaway PostgreSQL (Debian's, as the tests
use it); the server is stopped after the sweep's third cell and started again on the same port
`--outage` seconds later. Printed: the sweep's exit code, how long after the server was back
its records took to arrive (the sweep's end), and the runs in the store. Then the same with an
outage that outlasts the sweep (`tracking.retry_minutes=0.2`), followed by `python -m
runner.sync`: its time and what it sent.

journal: the seed sweep (`python -m runner -m sweep=seed`, 8 cells) on a sqlite store with the
journal (the default) and without (`tracking.journal=null`), beside the bare script
(`bare_notebook.py`), alternating, fresh processes: medians of wall seconds.
"""

import argparse
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))  # the tests' real servers: PostgreSQL, MLflow
PYTHON = sys.executable
MODELS = "simple_rnn,lstm,gru,bilstm"


def grid(cells: int) -> list:
    seeds = ",".join(str(seed) for seed in range(max(1, cells // 8)))
    return [f"model={MODELS}", "return_sequences=false,true", f"seed={seeds}"]


def sweep(directory: Path, uri: str, *overrides: str) -> subprocess.Popen:
    env = {k: v for k, v in __import__("os").environ.items()
           if not k.startswith(("MLFLOW_", "RUNNER_", "HYDRA_"))}
    return subprocess.Popen([PYTHON, "-m", "runner", "-m", *overrides], cwd=directory,
                            env={**env, "MLFLOW_TRACKING_URI": uri}, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def after_third_cell(process: subprocess.Popen, lines: list) -> threading.Thread:
    """Read the sweep's lines; returns once its third cell's line came (the reader goes on)."""
    third = threading.Event()

    def read() -> None:
        for line in process.stdout:
            lines.append(line)
            if line.startswith("[3/"):
                third.set()
        third.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    third.wait()
    return reader


def runs(uri: str, experiment: str) -> dict:
    from mlflow import MlflowClient

    client = MlflowClient(uri)
    found = client.search_runs([client.get_experiment_by_name(experiment).experiment_id],
                               max_results=1000)
    statuses = {}
    for run in found:
        statuses[run.info.status] = statuses.get(run.info.status, 0) + 1
    return statuses


def outage(cells: int, seconds: float) -> None:
    import servers

    with tempfile.TemporaryDirectory() as tmp, servers.postgres() as database, \
            servers.mlflow_server(database, Path(tmp)) as server:
        work = Path(tmp) / "work"
        work.mkdir()
        lines = []
        running = sweep(work, server.url, *grid(cells), "tracking.experiment=outage")
        reader = after_third_cell(running, lines)
        stopped = time.monotonic()
        server.stop()
        time.sleep(seconds)
        server.start()
        back = time.monotonic()
        code = running.wait()
        arrived = time.monotonic() - back
        reader.join()
        away = [line for line in running.stderr.read().splitlines() if "is back" in line]
        print(f"outage {seconds:g} s after cell 3 of {cells} (server down {back - stopped:.1f} s "
              f"with its restart): exit code {code}; records arrived {arrived:.1f} s after the "
              f"server was back; runs in the store: {runs(server.url, 'outage')}")
        print(f"  {away[0] if away else '(no line says the server is back)'}")

        lines = []
        running = sweep(work, server.url, *grid(cells), "tracking.experiment=outlasting",
                        "tracking.retry_minutes=0.2")
        reader = after_third_cell(running, lines)
        server.stop()
        code = running.wait()
        reader.join()
        server.start()
        started = time.monotonic()
        sync = subprocess.run([PYTHON, "-m", "runner.sync"], cwd=work, capture_output=True,
                              text=True)
        print(f"outage that outlasts the sweep: exit code {code}; `python -m runner.sync` took "
              f"{time.monotonic() - started:.1f} s, exit code {sync.returncode}: "
              f"{sync.stdout.splitlines()[0] if sync.stdout else sync.stderr[-300:]}; runs in "
              f"the store: {runs(server.url, 'outlasting')}")


def journal_cost(repeats: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        env = {k: v for k, v in __import__("os").environ.items()
               if not k.startswith(("MLFLOW_", "RUNNER_", "HYDRA_"))}
        subprocess.run([PYTHON, "-m", "runner", "model=gru"], cwd=tmp, env=env, check=True,
                       capture_output=True)  # the store made before the timed runs
        sides = {"bare": [PYTHON, str(HERE / "bare_notebook.py")],
                 "runner, journal": [PYTHON, "-m", "runner", "-m", "sweep=seed"],
                 "runner, no journal": [PYTHON, "-m", "runner", "-m", "sweep=seed",
                                        "tracking.journal=null"]}
        seconds = {side: [] for side in sides}
        for _ in range(repeats):
            for side, command in sides.items():
                start = time.perf_counter()
                subprocess.run(command, cwd=tmp, env=env, check=True, capture_output=True)
                seconds[side].append(time.perf_counter() - start)
        medians = {side: statistics.median(values) for side, values in seconds.items()}
        for side, median in medians.items():
            print(f"seed sweep, {side}: median {median:.3f} s of {repeats} "
                  f"({', '.join(f'{value:.2f}' for value in seconds[side])})")
        print(f"journal / no journal: {medians['runner, journal'] / medians['runner, no journal']:.3f}x; "
              f"runner with journal / bare: {medians['runner, journal'] / medians['bare']:.3f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", type=int, default=16)
    parser.add_argument("--outage", type=float, default=30.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--only", default="outage,journal")
    args = parser.parse_args()
    if "journal" in args.only.split(","):
        journal_cost(args.repeats)
    if "outage" in args.only.split(","):
        outage(args.cells, args.outage)


if __name__ == "__main__":
    main()
