"""The runner beside bare Keras, pair by pair, A and B alternating: medians and ratios.

    .venv/bin/python benchmarks/run.py [--repeats 3] [--smoke] [--only notebook,grid,...]

Every measurement is a fresh process (wall seconds, peak resident memory from wait4), except
the memory pair, which reads each job's resident memory inside one long process. The runner
records everything into a sqlite store created before the timed runs.
"""

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
PYTHON = sys.executable

FULL = {
    "grid": (["simple_rnn,lstm,bilstm,gru", "false,true", "3,8", "10,30,60"],
             ["simple_rnn,lstm,bilstm,gru", "false,true", "3", "10"]),
    "large": {"units": 128, "batch": 1024, "timesteps": 512, "features": 16},
    "memory": (50, 10),
    "timing": {"units": 64, "batch": 256, "timesteps": 400, "features": 16},
}
# The timing pairs' timed calls, each side: more than a run's default 5, so that the two
# medians are steady enough to compare on a shared machine
TIMED_CALLS = 25
SMOKE = {
    "grid": (["lstm,gru", "false", "3", "10,30"], ["lstm,gru", "false", "3", "10"]),
    "large": {"units": 8, "batch": 64, "timesteps": 64, "features": 4},
    "memory": (6, 2),
    "timing": {"units": 8, "batch": 16, "timesteps": 20, "features": 4},
}
CREATE_STORE = """
import os
from runner.recording.requests import Tracking
from runner.recording.store import Store
Store(Tracking.from_config({"uri": None, "experiment": "rnn-shapes", "artifact_root": None}),
      os.getpid())
"""
BACKENDS = ("tensorflow", "jax", "torch")
TARGETS = {"notebook": 1.05, "grid": 1.10, "large": 1.05, "large.rss": 1.10, "startup": 1.5,
           "memory": 1.10, **{f"timing.{backend}": 1.10 for backend in BACKENDS}}


def measure(command: list, cwd: str, env: dict) -> tuple:
    """(wall seconds, peak RSS MiB, stdout) of one fresh process."""
    start = time.perf_counter()
    process = subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.DEVNULL, text=True)
    stdout = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - start
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} exited {process.returncode}")
    return seconds, usage.ru_maxrss / 1024, stdout


def runner(*overrides: str) -> list:
    return [PYTHON, "-m", "runner", *overrides]


def grid_overrides(models: str, sequences: str, units: str, timesteps: str) -> list:
    """The grid as a sweep: one prediction a cell, as the bare loop makes (no timed calls)."""
    return ["-m", f"model={models}", f"return_sequences={sequences}", f"model.units={units}",
            f"data.timesteps={timesteps}", "timing.repeats=0", "timing.warmup=0"]


def pairs(sizes: dict) -> dict:
    """name -> (A command(s), B command(s), how to turn one repeat's results into figures)."""
    big, small = sizes["grid"]
    large = sizes["large"]
    jobs, early = sizes["memory"]
    n_big = _cells(big)
    n_small = _cells(small)
    return {
        "notebook": {
            "bare": [[PYTHON, str(HERE / "bare_notebook.py")]],
            "runner": [runner("-m", "sweep=seed")],
            "what": "the notebook's 8 cells, one process each side",
        },
        "grid": {
            "bare": [[PYTHON, str(HERE / "bare_grid.py"), *big],
                     [PYTHON, str(HERE / "bare_grid.py"), *small],
                     [PYTHON, str(HERE / "bare_grid.py"), *big, "--keep-session"],
                     [PYTHON, str(HERE / "bare_grid.py"), *small, "--keep-session"]],
            "runner": [runner(*grid_overrides(*big)),
                       runner(*grid_overrides(*small))],
            "per_job": n_big - n_small,
            "what": f"marginal seconds per job: ({n_big} cells - {n_small} cells) / "
                    f"{n_big - n_small}, one prediction a cell",
        },
        "large": {
            "bare": [[PYTHON, str(HERE / "bare_grid.py"), "lstm", "false", str(large["units"]),
                      str(large["timesteps"]), "--batch", str(large["batch"]),
                      "--features", str(large["features"])]],
            "runner": [runner("model=lstm", f"model.units={large['units']}",
                              f"data.batch_size={large['batch']}",
                              f"data.timesteps={large['timesteps']}",
                              f"data.features={large['features']}",
                              "timing.repeats=0", "timing.warmup=0")],  # one call, as bare
            "what": "LSTM {units} units, batch {batch}, timesteps {timesteps}, "
                    "features {features}: one job, one process, one prediction (the runner "
                    "with timing.repeats=0 timing.warmup=0)".format(**large),
        },
        "startup": {
            "bare": [[PYTHON, str(HERE / "minimal_app.py"), "--cfg", "job"],
                     [PYTHON, str(HERE / "minimal_app.py"), "--help"]],
            "runner": [runner("--cfg", "job"), runner("--help")],
            "what": "`--cfg job`, runner vs a minimal @hydra.main app",
        },
        "memory": {
            "bare": [[PYTHON, str(HERE / "bare_grid.py"), "lstm", "false", "3", "30",
                      "--repeat", str(jobs)]],
            "runner": [runner("-m", "model=lstm", f"seed=range({jobs})")],
            "jobs": (jobs, early),
            "what": f"RSS at job {jobs} / RSS at job {early}, {jobs} jobs in one process",
        },
        **{f"timing.{backend}": timing_pair(backend, sizes["timing"]) for backend in BACKENDS},
    }


def timing_pair(backend: str, timing: dict) -> dict:
    """The runner's recorded predict.median_seconds on `backend` beside a bare loop of warm
    predict_on_batch calls whose Keras has that backend (KERAS_BACKEND)."""
    return {
        "bare": [[PYTHON, str(HERE / "bare_timing.py"), f"--repeats={TIMED_CALLS}",
                  *(f"--{k}={v}" for k, v in timing.items())]],
        "runner": [runner(f"backend={backend}", "model=lstm",
                          "model.units={units}".format(**timing),
                          "data.batch_size={batch}".format(**timing),
                          "data.timesteps={timesteps}".format(**timing),
                          "data.features={features}".format(**timing),
                          f"timing.repeats={TIMED_CALLS}")],
        "backend": backend,
        "what": "a warm call's median seconds on {backend}, LSTM {units} units, batch {batch}, "
                "timesteps {timesteps}, features {features}, {calls} timed calls each side: a bare "
                "loop vs the runner's recorded predict.median_seconds".format(
                    backend=backend, calls=TIMED_CALLS, **timing),
    }


def _cells(spec: list) -> int:
    count = 1
    for values in spec:
        count *= len(values.split(","))
    return count


def runner_rss_by_job(uri: str, after: float) -> list:
    """process.rss_mb of the memory sweep's jobs, in job order, read from the sqlite file (see
    `runner_metric`)."""
    import sqlite3

    with sqlite3.connect(uri[len("sqlite:///"):]) as store:
        rows = store.execute(
            "select cast(num.value as integer), rss.value from runs "
            "join tags parent on parent.run_uuid = runs.run_uuid "
            "and parent.key = 'mlflow.parentRunId' "
            "join tags num on num.run_uuid = runs.run_uuid and num.key = 'job.num' "
            "join latest_metrics rss on rss.run_uuid = runs.run_uuid "
            "and rss.key = 'process.rss_mb' "
            "where runs.start_time > ?", (int(after * 1000),)).fetchall()
    return [rss for _, rss in sorted(rows)]


def runner_metric(uri: str, after: float, metric: str) -> float:
    """A metric of the one run the runner recorded since `after`, read from the sqlite file
    itself: MLflow is never imported by this process, whose threads would share the cores with
    the next measurement."""
    import sqlite3

    with sqlite3.connect(uri[len("sqlite:///"):]) as store:
        [(value,)] = store.execute(
            "select value from latest_metrics join runs using (run_uuid) "
            "where runs.start_time > ? and key = ?", (int(after * 1000), metric)).fetchall()
    return value


def runner_param(uri: str, after: float, key: str) -> str:
    """A param of the one run the runner recorded since `after` (see `runner_metric`)."""
    import sqlite3

    with sqlite3.connect(uri[len("sqlite:///"):]) as store:
        [(value,)] = store.execute(
            "select value from params join runs using (run_uuid) "
            "where runs.start_time > ? and key = ?", (int(after * 1000), key)).fetchall()
    return value


def one_repeat(name: str, pair: dict, tmp: str, env: dict, uri: str) -> dict:
    """A then B, each command once; the figures of this repeat."""
    bare_env = {**env, "KERAS_BACKEND": pair.get("backend", "tensorflow")}  # the runner's default
    bare = [measure(command, tmp, bare_env) for command in pair["bare"]]
    started = time.time()
    ours = [measure(command, tmp, env) for command in pair["runner"]]
    if name == "grid":
        per_job = pair["per_job"]
        return {"bare": (bare[0][0] - bare[1][0]) / per_job,
                "runner": (ours[0][0] - ours[1][0]) / per_job,
                "bare.kept": (bare[2][0] - bare[3][0]) / per_job}
    if name == "large":
        return {"bare": bare[0][0], "runner": ours[0][0],
                "bare.rss": bare[0][1], "runner.rss": ours[0][1]}
    if name == "startup":
        return {"bare": bare[0][0], "runner": ours[0][0], "bare.help": bare[1][0],
                "runner.help": ours[1][0]}
    if name.startswith("timing."):
        measured = json.loads(bare[0][2].splitlines()[-1])
        ran_on = {"bare": measured["backend"], "runner": runner_param(uri, started, "backend")}
        if set(ran_on.values()) != {pair["backend"]}:
            raise RuntimeError(f"{name}: the two sides ran on {ran_on}")
        return {"bare": measured["median"],
                "runner": runner_metric(uri, started, "predict.median_seconds")}
    if name == "memory":
        jobs, early = pair["jobs"]
        bare_rss = [json.loads(line)["rss_mb"] for line in bare[0][2].splitlines()]
        runner_rss = runner_rss_by_job(uri, started)
        return {"bare": bare_rss[jobs - 1] / bare_rss[early - 1],
                "runner": runner_rss[jobs - 1] / runner_rss[early - 1],
                "bare.rss": bare_rss[jobs - 1], "runner.rss": runner_rss[jobs - 1]}
    return {"bare": bare[0][0], "runner": ours[0][0]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, for the test suite")
    parser.add_argument("--only", help="the pairs to run, comma-separated (default: every pair)")
    parser.add_argument("--json", help="also write the medians here")
    args = parser.parse_args()
    every = pairs(SMOKE if args.smoke else FULL)
    only = args.only.split(",") if args.only else list(every)
    unknown = [name for name in only if name not in every]
    if unknown:
        parser.error(f"--only: no pair named {', '.join(unknown)} (the pairs: {', '.join(every)})")
    with tempfile.TemporaryDirectory() as tmp:
        uri = f"sqlite:///{tmp}/mlflow.db"
        env = {**os.environ, "MLFLOW_TRACKING_URI": uri, "TF_CPP_MIN_LOG_LEVEL": "2"}
        env.pop("KERAS_BACKEND", None)  # the runner's side takes its backend from its config
        subprocess.run([PYTHON, "-c", CREATE_STORE], env=env, cwd=tmp, check=True,
                       capture_output=True)  # the store, once, before anything is timed
        results = {}
        for name, pair in every.items():
            if name not in only:
                continue
            repeats = [one_repeat(name, pair, tmp, env, uri) for _ in range(args.repeats)]
            medians = {key: statistics.median(r[key] for r in repeats) for key in repeats[0]}
            results[name] = {"what": pair["what"], **medians}
            print(f"{name}: {json.dumps(medians)}", file=sys.stderr, flush=True)
    print(table(results, args.repeats))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


def table(results: dict, repeats: int) -> str:
    from importlib.metadata import version

    lines = [f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
             f"Python {platform.python_version()}, TensorFlow {version('tensorflow')}, "
             f"Keras {version('keras')}, JAX {version('jax')}, PyTorch {version('torch')}, "
             f"MLflow {version('mlflow')}; medians of {repeats}",
             "",
             "| pair | bare | runner | runner / bare | target |",
             "|---|---|---|---|---|"]
    for name, r in results.items():
        if name == "memory":  # its figures are already ratios: growth from job 10 to job 50
            lines.append(f"| memory: {r['what']} | {r['bare']:.3f} | {r['runner']:.3f} "
                         f"| {r['runner']:.2f}x (runner's own growth) | <= {TARGETS[name]:.2f}x |")
            continue
        unit = " s"
        lines.append(f"| {name}: {r['what']} | {r['bare']:.3f}{unit} | {r['runner']:.3f}{unit} "
                     f"| {r['runner'] / r['bare']:.2f}x | <= {TARGETS[name]:.2f}x |")
        if name == "large":
            lines.append(f"| large: peak RSS | {r['bare.rss']:.0f} MiB | {r['runner.rss']:.0f} MiB "
                         f"| {r['runner.rss'] / r['bare.rss']:.2f}x | <= {TARGETS['large.rss']:.2f}x |")
        if name == "grid":
            lines.append(f"| grid: the same, the bare loop without `clear_session()` between jobs "
                         f"| {r['bare.kept']:.3f} s | {r['runner']:.3f} s "
                         f"| {r['runner'] / r['bare.kept']:.2f}x | none (see below) |")
        if name == "startup":
            lines.append(f"| startup: `--help`, same two apps | {r['bare.help']:.3f} s "
                         f"| {r['runner.help']:.3f} s | {r['runner.help'] / r['bare.help']:.2f}x "
                         f"| <= {TARGETS['startup']:.2f}x |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
