"""A sweep's machinery at 10, 100 and 1,000 cells: checking the grid, time to the first job,
marginal seconds a cell, closing the parent, `runner.results`, resuming a finished sweep, and
the peak memory of the sweep process. Tiny stacks: the point is the runner, not Keras.

    .venv/bin/python benchmarks/big_grid.py [--cells 10 100 1000] [--run-cells 10 100] [--smoke]

- check: `-m GRID mode=explain` in a fresh process (every cell composed and checked, its table
  printed; no TensorFlow, no store), wall seconds, CPU seconds (the process and the children
  that check the grid) and peak RSS. Peak RSS is always the sweep process's own (its VmHWM),
  not that of the helpers it starts (the recording process: MLflow, about 250 MiB).
- first job: `-m GRID` run for real, the seconds from the command's start to its first job's
  start (the first progress line's arrival, less the seconds it says jobs have run), then
  stopped with SIGTERM; the median of `--first-repeats`, each in a fresh directory. Within
  `--run-cells` the whole sweep also runs: its wall seconds, peak RSS, and the seconds from
  its last progress line to its last line (the recording caught up, the parent closed, the
  summary printed).
- marginal: (wall of the largest run sweep - wall of the smallest) / (their cells' difference).
- store: a finished sweep of N cells made directly in a fresh sqlite store (MlflowClient, each
  child a copy of a real child run of the same stack, its cell's name, job number, params and
  `config.sha256`), then: the parent closed (Store.close_sweep: summary, figures, view) in this
  process; `python -m runner.results last`; `-m GRID resume=last` (nothing to run), with its
  CPU seconds (the recording process's too) and peak RSS; one cold store query (MLflow's
  import, the parent and every child run found, as a resume and `runner.results` did before
  they read the parent's records).
"""

import argparse
import json
import os
import platform
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

PYTHON = sys.executable
MODELS = "simple_rnn,lstm,gru,bilstm,lambda_lstm"
TINY = ["data.batch_size=2", "timing.repeats=0", "timing.warmup=0", "reference_rows=1"]
QUERY = """
import sys
from mlflow import MlflowClient
client = MlflowClient(sys.argv[1])
experiment = client.get_experiment_by_name("rnn-shapes").experiment_id
parent = client.search_runs([experiment], filter_string="tags.`sweep.grid.sha256` LIKE '%'",
                            max_results=1)[0]
client.search_runs([experiment], max_results=10000,
                   filter_string=f"tags.mlflow.parentRunId = '{parent.info.run_id}'")
"""


def grid(cells: int) -> list:
    """A grid of `cells` cells (10, 100, 1,000...): five stacks, return_sequences, then
    timesteps and seeds."""
    arguments = [f"model={MODELS}", "return_sequences=false,true"]
    if cells >= 100:
        arguments.append("data.timesteps=" + ",".join(str(t) for t in range(3, 3 + 10)))
    if cells >= 1000:
        arguments.append(f"seed=range(0,{cells // 100})")
    return arguments


def timed(command: list, cwd: str) -> tuple:
    """(wall seconds, stdout) of one fresh process, which must succeed."""
    start = time.perf_counter()
    result = subprocess.run(command, cwd=cwd, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if result.returncode:
        raise RuntimeError(f"{' '.join(command)} exited {result.returncode}: "
                           f"{result.stderr[-2000:]}")
    return seconds, result.stdout


class PeakWatch(threading.Thread):
    """The peak resident memory of one process itself (its VmHWM), not of the helpers it
    starts (the recording process, the children checking the grid), read until it exits."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid, self.peak_mib = pid, 0.0

    def run(self) -> None:
        status = Path(f"/proc/{self.pid}/status")
        while True:
            try:
                text = status.read_text()
            except OSError:
                return
            match = re.search(r"^VmHWM:\s+(\d+) kB", text, re.M)
            if match is None:  # a zombie: it has exited
                return
            self.peak_mib = int(match.group(1)) / 1024
            time.sleep(0.02)


def rss_of(command: list, cwd: str) -> tuple:
    """(wall seconds, peak RSS MiB of the process itself, CPU seconds of it and of the
    processes it waited for, stdout)."""
    start = time.perf_counter()
    process = subprocess.Popen(command, cwd=cwd, stdout=subprocess.PIPE,
                               stderr=subprocess.DEVNULL, text=True)
    watch = PeakWatch(process.pid)
    watch.start()
    stdout = process.stdout.read()
    watch.join()
    _, status, usage = os.wait4(process.pid, 0)
    if os.waitstatus_to_exitcode(status):
        raise RuntimeError(f"{' '.join(command)} exited {os.waitstatus_to_exitcode(status)}")
    return (time.perf_counter() - start, watch.peak_mib, usage.ru_utime + usage.ru_stime,
            stdout)


_PROGRESS = re.compile(r"^\[(\d+)/(\d+)\] .*?(\d+\.\d) s(?:, about|\s*$)")


def run_sweep(cells: int, cwd: str, whole: bool) -> dict:
    """A sweep run for real: seconds to its first job; whole, its wall, peak RSS and the
    seconds from its last progress line to its end."""
    command = [PYTHON, "-m", "runner", "-m", *grid(cells), *TINY]
    start = time.perf_counter()
    process = subprocess.Popen(command, cwd=cwd, stdout=subprocess.PIPE,
                               stderr=subprocess.DEVNULL, text=True, bufsize=1)
    watch = PeakWatch(process.pid)
    watch.start()
    first = last = None
    for line in process.stdout:
        match = _PROGRESS.match(line)
        if match:
            now = time.perf_counter() - start
            if first is None:
                first = now - float(match.group(3))
                if not whole:
                    process.send_signal(signal.SIGTERM)
            last = now
    watch.join()
    _, status, _ = os.wait4(process.pid, 0)
    wall = time.perf_counter() - start
    figures = {"first job s": first}
    if whole:
        if os.waitstatus_to_exitcode(status):
            raise RuntimeError(f"{' '.join(command)} exited {os.waitstatus_to_exitcode(status)}")
        figures.update({"run wall s": wall, "run peak RSS MiB": watch.peak_mib,
                        "after last job s": wall - last})
    return figures


def finished_sweep(cells: int, directory: Path, template: dict) -> str:
    """A finished sweep of `cells` cells made directly in a fresh store under `directory`, as
    the runner would have recorded it: the parent with its grid, each child a copy of the
    template run of its stack. Returns the store's uri."""
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.types import RunMode
    from mlflow.entities import Metric, Param

    from hydra_plugins.runner_sweeper.composing import CellChecker, split_arguments
    from hydra_plugins.runner_sweeper.composing import config_digest
    from runner.composition import GridComposer
    from runner.identity import cell_key
    from runner.recording.requests import Tracking
    from runner.recording.sweeps import SweepStore
    from runner.schema import register_schema
    from runner.vocabulary import spell_overrides

    register_schema()
    conf = Path(__file__).resolve().parents[1] / "conf"
    arguments = grid(cells)
    os.chdir(directory)
    with initialize_config_dir(version_base="1.3", config_dir=str(conf)):
        loader = GlobalHydra.instance().config_loader()
        master = loader.load_configuration("config", [*arguments, *TINY], RunMode.MULTIRUN)
        HydraConfig.instance().set_config(master)
        parsed = OverridesParser.create(config_loader=loader).parse_overrides(
            [*arguments, *TINY])
        [cells_] = split_arguments(parsed, None)
        checker = CellChecker(GridComposer(loader, master), config_digest)
        digests = [checker.outcome(cell)[1] for cell in cells_]
    uri = f"sqlite:///{directory}/outputs/mlflow.db"
    store = SweepStore(Tracking.from_config({"uri": uri, "experiment": "rnn-shapes"}),
                       os.getpid())
    name = " ".join([*arguments, *TINY])
    parent = store.create_sweep(name, {"sweep.dir": str(directory / "multirun"),
                                       "sweep.overrides": name},
                                tuple(cell_key(cell) for cell in cells_))
    client = store.client
    for job, (cell, digest) in enumerate(zip(cells_, digests)):
        name = spell_overrides(",".join(sorted(cell)))  # as Hydra's override_dirname
        pairs = dict(override.split("=", 1) for override in name.split(","))
        run = template[pairs["model"]]
        params = {**run["params"], **{key.lstrip("+"): value for key, value in pairs.items()}}
        tags = {**run["tags"], "job.num": str(job), "config.sha256": digest,
                "mlflow.parentRunId": parent.run_id}
        child = client.create_run(store.experiment_id, run_name=name, tags=tags)
        client.log_batch(child.info.run_id,
                         metrics=[Metric(k, v, 0, 0) for k, v in run["metrics"].items()],
                         params=[Param(k, v) for k, v in params.items()])
        client.set_terminated(child.info.run_id, "FINISHED")
    client.set_terminated(parent.run_id, "FINISHED")
    return uri, parent.run_id


def templates(cwd: str) -> dict:
    """A real child run of each stack, from a 10-cell sweep run in `cwd`: its params, tags
    (less those the runner writes per run) and metrics."""
    from mlflow import MlflowClient

    client = MlflowClient(f"sqlite:///{cwd}/outputs/mlflow.db")
    experiment = client.get_experiment_by_name("rnn-shapes").experiment_id
    found = {}
    for run in client.search_runs([experiment], max_results=1000):
        model = run.data.params.get("model")
        if "mlflow.parentRunId" in run.data.tags and model and model not in found:
            tags = {k: v for k, v in run.data.tags.items()
                    if not k.startswith(("mlflow.", "runner.")) and k not in ("job.num",)}
            found[model] = {"params": dict(run.data.params), "tags": tags,
                            "metrics": dict(run.data.metrics)}
    return found


def close_parent(uri: str, parent_id: str) -> float:
    """Seconds Store.close_sweep takes over the finished children, as the sweep closes it."""
    from runner.recording.requests import Tracking
    from runner.recording.store import Store

    store = Store(Tracking.from_config({"uri": uri, "experiment": "rnn-shapes"}), os.getpid())
    start = time.perf_counter()
    store.close_sweep(parent_id, None, ())
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", type=int, nargs="+", default=[10, 100, 1000])
    parser.add_argument("--run-cells", type=int, nargs="+", default=[10, 100],
                        help="sizes run whole (the others stop after their first job)")
    parser.add_argument("--first-repeats", type=int, default=3,
                        help="stopped runs whose first job is timed, a median (default 3)")
    parser.add_argument("--smoke", action="store_true", help="10 cells, one of each, quickly")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    sizes, whole = ([10], [10]) if args.smoke else (args.cells, args.run_cells)
    print(f"machine: {platform.machine()}, {len(os.sched_getaffinity(0))} cores, Python "
          f"{platform.python_version()}; load average {os.getloadavg()[0]:.1f}", flush=True)
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        for cells in sizes:
            figures = results[cells] = {}
            where = base / f"check-{cells}"
            where.mkdir()
            wall, rss, cpu, out = rss_of([PYTHON, "-m", "runner", "-m", *grid(cells), *TINY,
                                          "mode=explain"], str(where))
            assert out.count("total params:") == cells, out[-500:]
            figures.update({"check s": wall, "check CPU s": cpu, "check peak RSS MiB": rss,
                            "load": os.getloadavg()[0]})
            firsts = []
            for repeat in range(1 if args.smoke else args.first_repeats):
                where = base / f"first-{cells}-{repeat}"
                where.mkdir()
                firsts.append(run_sweep(cells, str(where), False)["first job s"])
            figures["first job s"] = statistics.median(firsts)
            if cells in whole:
                where = base / f"run-{cells}"
                where.mkdir()
                ran = run_sweep(cells, str(where), True)
                figures.update({key: value for key, value in ran.items() if key != "first job s"})
            print(cells, json.dumps(figures), flush=True)
        template = templates(str(base / f"run-{min(whole)}"))
        for cells in sizes:
            figures = results[cells]
            where = base / f"store-{cells}"
            where.mkdir()
            start = time.perf_counter()
            uri, parent = finished_sweep(cells, where, template)
            made = time.perf_counter() - start
            figures["close s"] = close_parent(uri, parent)
            wall, _ = timed([PYTHON, "-m", "runner.results", "last"], str(where))
            figures["results s"] = wall
            wall, rss, cpu, out = rss_of([PYTHON, "-m", "runner", "-m", *grid(cells), *TINY,
                                          "resume=last"], str(where))
            assert "nothing to run" in out, out[-500:]
            figures.update({"resume s": wall, "resume CPU s": cpu, "resume peak RSS MiB": rss})
            wall, _ = timed([PYTHON, "-c", QUERY, uri], str(where))
            figures["store query s"] = wall
            print(cells, json.dumps(figures), f"(store made in {made:.0f} s)", flush=True)
    ran = sorted(cells for cells in sizes if "run wall s" in results[cells])
    if len(ran) >= 2:
        low, high = ran[0], ran[-1]
        marginal = ((results[high]["run wall s"] - results[low]["run wall s"])
                    / (high - low))
        print(f"marginal seconds a cell ({low} to {high} cells run): {marginal:.3f}")
        results["marginal s"] = marginal
    table(results, sizes)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


def table(results: dict, sizes: list) -> None:
    rows = ["check s", "check CPU s", "check peak RSS MiB", "first job s", "run wall s",
            "after last job s", "run peak RSS MiB", "close s", "results s", "resume s",
            "resume CPU s", "resume peak RSS MiB", "store query s", "load"]
    print("| figure | " + " | ".join(f"{cells} cells" for cells in sizes) + " |")
    print("|---|" + "---|" * len(sizes))
    for row in rows:
        values = [results[cells].get(row) for cells in sizes]
        print(f"| {row} | " + " | ".join("-" if value is None else f"{value:.2f}"
                                          for value in values) + " |")


if __name__ == "__main__":
    main()
