"""Writers recording at once through the project's own recording code, without TensorFlow: does
every run arrive as its writer recorded it, and how long does the slowest write take?

    .venv/bin/python benchmarks/store_load.py --writers 64 --store sqlite   # a fresh sqlite store
    .venv/bin/python benchmarks/store_load.py --writers 64 --store server   # mlflow server on a
                                                                 # throwaway PostgreSQL, 4 workers
    .venv/bin/python benchmarks/store_load.py --writers 16 --uri URI        # a store that exists
    ... --orphans 8       # and 8 runs left RUNNING by a process gone before the writers start
    ... --opened          # each writer opens the store before the release: only writes meet

Each writer is a process doing what one job's recording process does, through its own code
(`OpenStores`, `StartRun`, `FinishRun`): open the store, start a run without a parent (orphans
of this host reaped first), finish it with 60 params, 20 tags, 10 metrics and five small
artifacts, then exit. They are released at the same moment; the store is then read back, and
the last line says `writers N: finished F, lost L, rewritten R, slowest write S s`. With
`--orphans K`, every writer meets K orphans to reap at once; the line before says how they ended.
lost: runs missing or not FINISHED. rewritten: runs whose status or data differ from what their
writer recorded, and runs no writer started. slowest write: the longest single call of a
writer to the open store (MLflow's busy timeout on sqlite is 20 s a call); the lines before give
each step's times (opening the store, starting the run, finishing it).
"""

import argparse
import multiprocessing
import os
import statistics
import sys
import tempfile
import time
import uuid
from contextlib import ExitStack
from multiprocessing.connection import wait
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))  # servers.py: PostgreSQL and `mlflow server`, as tested

STEPS = ("open", "start", "finish")


def params_of(writer: int) -> dict:
    return {f"param.{k:02d}": f"{writer}.{k}" for k in range(60)}


def tags_of(writer: int) -> dict:
    return {f"tag.{k:02d}": f"writer {writer} tag {k}" for k in range(20)}


def metrics_of(writer: int) -> dict:
    return {f"metric.{k}": writer + k / 10 for k in range(10)}


def artifacts_of(writer: int) -> dict:
    return {f"file-{k}.txt": f"writer {writer} file {k}\n" * (k + 1) for k in range(5)}


def name_of(writer: int) -> str:
    return f"writer-{writer:03d}"


class Timed:
    """A store's client whose calls are timed: (seconds, name) of the slowest."""

    def __init__(self, client) -> None:
        self.client, self.slowest = client, (0.0, "")

    def __getattr__(self, name: str):
        attribute = getattr(self.client, name)
        if not callable(attribute):
            return attribute

        def timed(*args, **kwargs):
            started = time.monotonic()
            try:
                return attribute(*args, **kwargs)
            finally:
                self.slowest = max(self.slowest, (time.monotonic() - started, name))

        return timed


def write(writer: int, tracking, files: Path, gate, answers, opened: bool) -> None:
    """One writer, in a process of its own: its run's id and how long each step took. `opened`:
    the store is opened before the release, so that only the writes meet."""
    from runner.recording.process import OpenStores
    from runner.recording.requests import FinishRun, StartRun
    from runner.result import JobResult

    files.mkdir(parents=True)
    os.dup2(os.open(os.devnull, os.O_WRONLY), 1)  # MLflow's "View run" lines: not the report's
    os.dup2(os.open(files.with_suffix(".stderr"), os.O_WRONLY | os.O_CREAT), 2)  # read after
    for file_name, text in artifacts_of(writer).items():
        (files / file_name).write_text(text)
    result = JobResult(label=name_of(writer), params={}, artifact_dir=files,
                       tags=tags_of(writer), metrics=metrics_of(writer))
    recording, seconds, run_id, error, client = OpenStores(os.getpid()), {}, None, None, None
    released = []

    def release() -> None:  # every writer released at once, also one whose open failed
        if not released:
            gate.wait()
            released.append(time.monotonic())

    try:
        if not opened:
            release()
        started = time.monotonic()
        store = recording.store(tracking)
        seconds["open"] = time.monotonic() - started
        store.client = client = Timed(store.client)
        release()
        started = time.monotonic()
        run_id = StartRun(tracking, 1, name_of(writer), {}, None, int(time.time() * 1000)).apply(
            recording).run_id
        seconds["start"] = time.monotonic() - started
        started = time.monotonic()
        FinishRun(tracking, 1, params_of(writer), result, int(time.time() * 1000)).apply(recording)
        seconds["finish"] = time.monotonic() - started
    except Exception as failure:
        error = f"{type(failure).__name__}: {(str(failure).splitlines() or [''])[0][:200]}"
    release()
    answers.put((writer, run_id, seconds, error, client.slowest if client else (0.0, "")))


def leave_orphans(count: int, tracking) -> None:
    """`count` runs started by this process, which then exits without ending them."""
    from runner.recording.process import OpenStores
    from runner.recording.requests import StartRun

    recording = OpenStores(os.getpid())
    for orphan in range(count):
        StartRun(tracking, orphan, f"orphan-{orphan}", {}, None, int(time.time() * 1000)).apply(
            recording)


def load(uri: str, writers: int, directory: Path, artifact_location=None,
         orphans: int = 0, opened: bool = False) -> dict:
    """Run `writers` writers against the store at `uri`; what each reported, by writer."""
    from runner.recording.process import before_mlflow

    before_mlflow()  # as the recording process does
    # Imported once, here: the forked writers share them, so the figures are the store's, not
    # those of 64 imports at once on a few cores
    import mlflow.store.tracking.sqlalchemy_store  # noqa: F401
    import runner.recording.store  # noqa: F401
    from runner.recording.requests import Tracking

    tracking = Tracking(uri, f"store-load-{uuid.uuid4().hex[:8]}", artifact_location)
    context = multiprocessing.get_context("fork")  # no store is open in this process yet
    if orphans:
        orphaning = context.Process(target=leave_orphans, args=(orphans, tracking))
        orphaning.start()
        orphaning.join()
    gate, answers = context.Barrier(writers + 1), context.SimpleQueue()
    processes = [context.Process(target=write, args=(w, tracking, directory / name_of(w), gate,
                                                     answers, opened)) for w in range(writers)]
    for process in processes:
        process.start()
    gate.wait()
    released = time.monotonic()
    reports, running = {}, {p.sentinel: p for p in processes}
    while running or not answers.empty():
        for sentinel in wait(list(running), timeout=1) if running else ():
            running.pop(sentinel).join()  # as soon as it ends: its pid is gone, as a job's is
        while not answers.empty():
            writer, *report = answers.get()
            reports[writer] = dict(zip(("run_id", "seconds", "error", "call"), report))
    wall = time.monotonic() - released
    said = "".join(path.read_text() for path in directory.glob("*.stderr"))
    # MLflow logs each write that met the lock (then tried again): its error, then a traceback
    met_lock = said.count("caught.\n(sqlite3.OperationalError) database is locked")
    lines = [line for line in said.splitlines() if line.startswith("runner: ")]
    return {"tracking": tracking, "reports": reports, "wall": wall, "met_lock": met_lock,
            "said": lines}


def read_back(tracking, writers: int, reports: dict) -> dict:
    """Every writer's run as the store has it, against what the writer recorded."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking.uri)
    experiment = client.get_experiment_by_name(tracking.experiment)
    runs = client.search_runs([experiment.experiment_id], max_results=10000) if experiment else []
    by_name = {}
    for run in runs:
        by_name.setdefault(run.info.run_name, []).append(run)
    orphans = [run for name, found in list(by_name.items()) if name.startswith("orphan-")
               for run in by_name.pop(name)]
    reaped = [run for run in orphans if run.info.status == "KILLED"
              and "ended without closing this run" in run.data.tags.get("error", "")]
    finished = lost = rewritten = 0
    differences = []
    for writer in range(writers):
        found = by_name.pop(name_of(writer), [])
        recorded = reports.get(writer, {})
        mine = [run for run in found if run.info.run_id == recorded.get("run_id")]
        rewritten += len(found) - len(mine)  # runs of this name its writer never started
        if not mine or mine[0].info.status != "FINISHED":
            lost += 1
        else:
            finished += 1
        if mine and recorded.get("error") is None:
            difference = _difference(client, mine[0], writer)
            if difference:
                rewritten += 1
                differences.append(f"{name_of(writer)}: {difference}")
    rewritten += sum(len(extra) for extra in by_name.values())
    return {"finished": finished, "lost": lost, "rewritten": rewritten,
            "differences": differences, "orphans": len(orphans), "reaped": len(reaped)}


def _difference(client, run, writer: int) -> str:
    """What differs between the run and what its writer recorded ("" when nothing does)."""
    if run.info.status != "FINISHED":
        return f"status {run.info.status} ({run.data.tags.get('error', 'no error tag')})"
    if run.data.params != params_of(writer):
        return "params"
    if run.data.metrics != metrics_of(writer):
        return "metrics"
    tags = run.data.tags
    if any(tags.get(key) != value for key, value in tags_of(writer).items()):
        return "tags"
    if "error" in tags:
        return f"an error tag: {tags['error']}"
    stored = {f.path: f.file_size for f in client.list_artifacts(run.info.run_id)}
    if stored != {name: len(text.encode()) for name, text in artifacts_of(writer).items()}:
        return f"artifacts {sorted(stored)}"
    return ""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--writers", type=int, default=64)
    parser.add_argument("--store", choices=("sqlite", "server"), default="sqlite")
    parser.add_argument("--uri", help="a store that exists (then --store is not used)")
    parser.add_argument("--orphans", type=int, default=0,
                        help="runs left RUNNING by a gone process, for every writer to reap")
    parser.add_argument("--opened", action="store_true",
                        help="writers open the store before they are released: only writes meet")
    args = parser.parse_args()
    with ExitStack() as stack:
        directory = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="store-load-")))
        artifact_location = None
        if args.uri:
            uri = args.uri
        elif args.store == "sqlite":
            uri = f"sqlite:///{directory}/mlflow.db"
            artifact_location = str(directory / "mlartifacts")
        else:
            import servers

            database = stack.enter_context(servers.postgres())
            uri = stack.enter_context(servers.mlflow_server(database, directory, workers=4)).url
        loaded = load(uri, args.writers, directory / "writers", artifact_location, args.orphans,
                      args.opened)
        counts = read_back(loaded["tracking"], args.writers, loaded["reports"])
    reports = loaded["reports"].values()
    for step in STEPS:
        seconds = [r["seconds"][step] for r in reports if step in r["seconds"]]
        if seconds:
            print(f"{step}: median {statistics.median(seconds):.2f} s, max {max(seconds):.2f} s")
    errors = sorted({r["error"] for r in reports if r["error"]})
    for line in errors[:5] + counts["differences"][:5]:
        print(f"  {line}")
    slowest, call = max((r["call"] for r in reports), default=(0.0, ""))
    print(f"slowest call to the open store: {slowest:.2f} s ({call})")
    for line in loaded["said"][:5]:
        print(f"  {line}")
    print(f"all {args.writers} writers done in {loaded['wall']:.1f} s; writes that met a locked "
          f"sqlite store and were tried again: {loaded['met_lock']}")
    if args.orphans:
        print(f"orphans {counts['orphans']}: ended KILLED by a reaper {counts['reaped']}")
    print(f"writers {args.writers}: finished {counts['finished']}, lost {counts['lost']}, "
          f"rewritten {counts['rewritten']}, slowest write {slowest:.1f} s")


if __name__ == "__main__":
    main()
