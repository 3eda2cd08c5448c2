"""A store that is full, read-only or not a database: one line, and no computed result thrown
away.

Before any job, a store that cannot be written is refused in one line naming the path, the
cause and the fix, and leaves no file behind. Once jobs run, a store that fills up or is made
read-only keeps every computed result: the records wait in the journal, the console says so
once, and when the fault is mended the next start or `python -m runner.sync` records every
cell once and ends the sweep's parent.

Root writes what permission bits forbid. So a test that needs a read-only file runs the CLI
without the two capabilities that let root do so (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH,
dropped from its bounding set as it starts: `_bound_by_permission_bits`); any other user needs
nothing dropped. Both ways run everywhere, and neither skips.

A full disk mid-sweep needs a filesystem to fill: a 16 MB tmpfs that the test mounts and fills
after the third cell. That needs the right to mount (root, as CI runs, with CAP_SYS_ADMIN): in
CI the tmpfs runs. Where mounting is refused, that test makes the store read-only half-way
instead, and prints that it did."""

import ctypes
import errno
import re
import shutil
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import Sweep, check_recorded_whole, runner_env, runs_of
from runner.recording.journal import files

SWEEP = ["model=lstm", "return_sequences=true,false", "seed=0,1"]  # 4 cells
PR_CAPBSET_DROP = 24  # prctl(2)
CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH = 1, 2  # capability(7)
LINE_LIMIT = 200


def _passes_permission_bits() -> bool:
    """Whether this process writes files whatever their mode says (root, as a rule)."""
    status = Path("/proc/self/status").read_text()
    effective = int(re.search(r"^CapEff:\s*([0-9a-f]+)$", status, re.M).group(1), 16)
    return bool(effective & (1 << CAP_DAC_OVERRIDE | 1 << CAP_DAC_READ_SEARCH))


def _bound_by_permission_bits() -> None:
    """In the child, before exec: drop from the bounding set the capabilities that pass
    permission bits, so the program run (and every process it starts) has them no more."""
    libc = ctypes.CDLL(None, use_errno=True)
    for capability in (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH):
        if libc.prctl(PR_CAPBSET_DROP, capability, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP) refused")


def as_a_user() -> dict:
    """Popen's arguments for a CLI that permission bits bind, as they bind any user's."""
    return {"preexec_fn": _bound_by_permission_bits} if _passes_permission_bits() else {}


def cli(directory: Path, *args, env=None, bound=False) -> subprocess.CompletedProcess:
    """`python -m runner ARGS` in `directory`, as a user types it."""
    return subprocess.run([sys.executable, "-m", "runner", *args], cwd=directory,
                          env=runner_env(**(env or {})), capture_output=True, text=True,
                          timeout=300, **(as_a_user() if bound else {}))


def tree(directory: Path) -> list:
    """Every path under `directory` with its mode: what a refused command must leave as it was."""
    return sorted((str(path.relative_to(directory)), path.lstat().st_mode)
                  for path in directory.rglob("*"))


def restore_modes(directory: Path) -> None:
    """Everything under `directory` writable again by its owner (so pytest can remove it)."""
    for path in [directory, *directory.rglob("*")]:
        if not path.is_symlink():
            path.chmod(path.stat().st_mode | stat.S_IWUSR | stat.S_IXUSR)


# --- The causes, in-process: real errors of sqlite and of the system ------------------------

def _sqlite_error(tmp_path: Path, kind: str) -> sqlite3.Error:
    """The error sqlite raises for a write to a read-only database, a read of a file that is
    not one, or a write that meets another writer's lock."""
    path = tmp_path / f"{kind}.db"
    if kind == "not a database":
        path.write_text("name,value\nalpha,1\n")
        connection, statement = sqlite3.connect(path), "select * from sqlite_master"
    else:
        with sqlite3.connect(path) as made:
            made.execute("create table t (x)")
        if kind == "read-only":
            connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
            statement = "insert into t values (1)"
        else:
            holder = sqlite3.connect(path, isolation_level=None)
            holder.execute("begin exclusive")
            connection, statement = sqlite3.connect(path, timeout=0), "insert into t values (1)"
    try:
        connection.execute(statement)
    except sqlite3.Error as error:
        return error
    raise AssertionError(f"sqlite did not refuse: {kind}")


def _wrapped(error: BaseException) -> Exception:
    """As MLflow raises a database error: its own exception, the driver's below it."""
    from mlflow.exceptions import MlflowException

    try:
        raise MlflowException(str(error)) from error
    except MlflowException as wrapper:
        return wrapper


def test_local_faults_are_named_by_their_codes(tmp_path):
    from runner.recording.local_faults import cause_of, worth_waiting_for

    read_only = _sqlite_error(tmp_path, "read-only")
    not_a_database = _sqlite_error(tmp_path, "not a database")
    with pytest.raises(OSError) as full:
        with open("/dev/full", "wb") as device:  # every write: no space left on device
            device.write(b"x")
    assert cause_of(_wrapped(read_only)) == "it is read-only"
    assert cause_of(_wrapped(not_a_database)) == "it is not a database"
    assert full.value.errno == errno.ENOSPC and cause_of(full.value) == "the disk is full"
    assert worth_waiting_for(_wrapped(read_only)) and worth_waiting_for(full.value)
    # A lock is waited out where it is met (store.when_unlocked); a refused connection is a
    # server's; neither is a fault of the disk
    locked = _sqlite_error(tmp_path, "locked")
    for other in (locked, ConnectionRefusedError(errno.ECONNREFUSED, "refused"),
                  ValueError("Changing param values is not allowed")):
        assert cause_of(_wrapped(other)) is None


def test_a_store_is_looked_at_before_anything_is_made(tmp_path, monkeypatch):
    from runner.recording.local_faults import refusal

    monkeypatch.chdir(tmp_path)
    (tmp_path / "notes.txt").write_text("not a directory")
    (tmp_path / "table.db").write_text("name,value\nalpha,1\n")
    (tmp_path / "folder.db").mkdir()
    (tmp_path / "empty.db").touch()  # sqlite's own empty database
    before = tree(tmp_path)
    said = {name: refusal(tmp_path / name) for name in (
        "notes.txt/mlflow.db", "table.db", "folder.db", "empty.db", "new/deeper/mlflow.db")}
    assert {name: str(fault) if fault else None for name, fault in said.items()} == {
        "notes.txt/mlflow.db": "store notes.txt/mlflow.db cannot be written: its directory "
                               "cannot be made: notes.txt is a file; move that file aside, or "
                               "name another path in tracking.uri",
        "table.db": "store table.db cannot be written: it is not a database (not a sqlite "
                    "file); move it aside, or name another file in tracking.uri",
        "folder.db": "store folder.db cannot be written: it is a directory; name a file in it "
                     "in tracking.uri",
        "empty.db": None,
        "new/deeper/mlflow.db": None}
    free = shutil.disk_usage(tmp_path).free
    full = refusal(tmp_path / "new" / "mlflow.db", needs_free=free + 2**30)
    assert re.fullmatch(r"store new/mlflow.db cannot be written: the disk is full \([\d.]+ MB "
                        r"free, the runner starts with \d+ MB\); free some space on it",
                        str(full)), full
    assert tree(tmp_path) == before  # looked at, nothing made


def test_a_request_the_journal_cannot_take_is_never_said_to_wait(tmp_path):
    from runner.recording.journal import JournalFile
    from runner.recording.requests import StartRun, Tracking

    tracking = Tracking("sqlite:///x.db", "rnn-shapes", None, str(tmp_path), 10.0)
    journal = JournalFile(tmp_path / "full.jsonl", open("/dev/full", "r+b"))
    with pytest.raises(OSError) as refused:
        journal.append(StartRun(tracking, "k1", "a", {}, "parent", 0))
    assert refused.value.errno == errno.ENOSPC
    assert journal.pending() == []  # not kept: never claimed to wait


class _FaultyStores:
    """The store protocol of OpenStores (process.py) over a store whose writes fail with
    `error`, a real sqlite error, `failures` times (every time: None), then succeed."""

    def __init__(self, error: BaseException, failures=None) -> None:
        self.error, self.failures, self.written = error, failures, []

    def store(self, tracking):
        return self

    def start(self, key, tracking, create, waits):
        return create()

    def run_of(self, key, tracking):
        from runner.recording.requests import RunRef

        return RunRef(f"run-{key}", "1")

    def tried_before(self, what) -> bool:
        return False

    def never_created(self, key) -> bool:
        return False

    def learn(self, entries) -> None:
        pass

    def _write(self, what: tuple):
        if self.failures is None or self.failures > 0:
            self.failures = None if self.failures is None else self.failures - 1
            raise self.error
        self.written.append(what)

    def start_run(self, name, tags, parent_id, start_ms):
        from runner.recording.requests import RunRef

        self._write(("start", name))
        return RunRef(f"run-{name}", "1")

    def finish_run(self, run_id, params, result, end_ms, again=False):
        self._write(("finish", run_id))

    def close_sweep(self, parent_id, status, jobs, earlier, sort_by):
        self._write(("close", parent_id))
        return []


def _sweeps_records(tracking, tmp_path: Path) -> list:
    """A job's run, its end, and the sweep's close, as a sweep's recording process gets them."""
    from runner.recording.requests import CloseSweep, FinishRun, StartRun
    from runner.result import JobResult

    result = JobResult(label="gru", params={"model": "gru"}, artifact_dir=tmp_path / "job0")
    return [StartRun(tracking, "k0", "model=gru", {"job.num": "0"}, "parent", 0),
            FinishRun(tracking, "k0", {"model": "gru"}, result, 1000),
            CloseSweep(tracking, "parent", None, ())]


@pytest.fixture
def quick_retries(monkeypatch, tmp_path):
    import runner.recording.delivery as delivery

    monkeypatch.setattr(delivery, "FIRST_DELAY_S", 0.01)
    monkeypatch.setattr(delivery, "MAX_DELAY_S", 0.02)
    monkeypatch.chdir(tmp_path)  # the lines name paths as a user there reads them


def test_a_store_that_fails_mid_sweep_keeps_its_records_in_the_journal(
        tmp_path, capsys, quick_retries):
    from runner.recording.delivery import Delivery
    from runner.recording.local_faults import WaitingForRepair
    from runner.recording.requests import Tracking

    tracking = Tracking(f"sqlite:///{tmp_path}/store/mlflow.db", "rnn-shapes", None,
                        str(tmp_path / "journal"), retry_minutes=0.001)
    stores = _FaultyStores(_wrapped(_sqlite_error(tmp_path, "read-only")))
    delivery = Delivery(stores)
    answers = [delivery.answer(request, delivery.journal(request))
               for request in _sweeps_records(tracking, tmp_path)]
    delivery.close()
    assert [ok for ok, _ in answers] == [False] * 3
    assert all(isinstance(error, WaitingForRepair) for _, error in answers)
    assert str(answers[-1][1]) == (
        "store store/mlflow.db cannot be written (it is read-only): 3 records wait in journal; "
        "once mended: python -m runner.sync journal")
    assert capsys.readouterr().err.splitlines() == [
        "runner: store store/mlflow.db cannot be written (it is read-only); records wait in "
        "journal, tried for 0.001 min (tracking.retry_minutes); once mended: "
        "python -m runner.sync journal"]
    assert stores.written == [] and len(files(tmp_path / "journal")) == 1

    stores.failures = 0  # mended: the next start, or the sync command, sends them in order
    replayed = Delivery(stores, announce=False).take_over(tmp_path / "journal")
    assert stores.written == [("start", "model=gru"), ("finish", "run-k0"), ("close", "parent")]
    assert len(replayed.sent) == 3 and files(tmp_path / "journal") == []


def test_a_store_mended_within_the_retries_takes_what_waited(tmp_path, capsys, quick_retries):
    from runner.recording.delivery import Delivery
    from runner.recording.requests import Tracking

    tracking = Tracking(f"sqlite:///{tmp_path}/store/mlflow.db", "rnn-shapes", None,
                        str(tmp_path / "journal"), retry_minutes=10)
    stores = _FaultyStores(_wrapped(_sqlite_error(tmp_path, "read-only")), failures=3)
    delivery = Delivery(stores)
    answers = [delivery.answer(request, delivery.journal(request))
               for request in _sweeps_records(tracking, tmp_path)]
    delivery.close()
    assert [ok for ok, _ in answers] == [True] * 3
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 2 and err[0].startswith("runner: store store/mlflow.db cannot be written")
    assert re.fullmatch(r"runner: store store/mlflow.db can be written again: the 1 records "
                        r"that waited have arrived \(\d+ s after it failed\)", err[1]), err
    assert not (tmp_path / "journal").exists()


def test_where_the_journal_cannot_be_written_either_nothing_is_said_to_wait(
        tmp_path, capsys, quick_retries):
    """The journal's directory cannot be made (its parent is a file): at the start of a sweep
    that refuses it; once jobs run, a record the store cannot take either is said lost."""
    from runner.recording.delivery import Delivery
    from runner.recording.local_faults import JournalUnwritable
    from runner.recording.requests import CreateParent, Tracking
    from runner.recording.server import RecordsLost, RecordsWaiting

    (tmp_path / "notes.txt").write_text("not a directory")
    tracking = Tracking(f"sqlite:///{tmp_path}/store/mlflow.db", "rnn-shapes", None,
                        str(tmp_path / "notes.txt" / "journal"), retry_minutes=0.001)
    stores = _FaultyStores(_wrapped(_sqlite_error(tmp_path, "read-only")))
    delivery = Delivery(stores)
    parent = CreateParent(tracking, "model=gru,lstm", {})
    ok, refused = delivery.answer(parent, delivery.journal(parent))
    assert not ok and isinstance(refused, JournalUnwritable)
    assert str(refused) == ("journal notes.txt/journal cannot be written (notes.txt is a file): "
                            "make it writable, or name another directory in tracking.journal")

    start, finish, close = _sweeps_records(tracking, tmp_path)
    answers = [delivery.answer(request, delivery.journal(request))
               for request in (start, finish, close)]
    delivery.close()
    assert not any(isinstance(error, RecordsWaiting) for _, error in answers)
    assert all(isinstance(error, RecordsLost) for _, error in answers)
    assert str(answers[1][1]) == (
        "a run's results and end is lost: store store/mlflow.db could not take it, nor journal "
        "notes.txt/journal (notes.txt is a file)")
    assert capsys.readouterr().err.splitlines() == [
        "runner: store store/mlflow.db cannot be written (it is read-only), nor journal "
        "notes.txt/journal (notes.txt is a file): records wait in memory only, lost unless the "
        "store takes them within 0.001 min"]

    stores.failures = 0  # a store that takes records needs no journal to take them
    fresh = Delivery(stores)
    ok, _ = fresh.answer(start, fresh.journal(start))
    fresh.close()
    assert ok and stores.written == [("start", "model=gru")]
    assert capsys.readouterr().err == ""


# --- The CLI, as a user types it -------------------------------------------------------------

def _store(tmp_path: Path, _empty_store: Path, where: str) -> Path:
    """A store with its tables made, at `where` under tmp_path."""
    path = tmp_path / where
    path.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(_empty_store, path)
    return path


START_CASES = {
    # case: (what the test makes, the store's path, whether permission bits must bind, cause)
    "read-only store": (
        lambda tmp, empty: _store(tmp, empty, "outputs/mlflow.db").chmod(0o444),
        "outputs/mlflow.db", True,
        "the file is read-only for this user; make it writable: chmod u+w outputs/mlflow.db"),
    "read-only store directory": (
        lambda tmp, empty: _store(tmp, empty, "team/mlflow.db").parent.chmod(0o555),
        "team/mlflow.db", True,
        "its directory team is read-only for this user (sqlite writes beside the file); make "
        "it writable: chmod u+w team"),
    "not a database": (
        lambda tmp, empty: (tmp / "results.csv").write_text("name,value\nalpha,1\n"),
        "results.csv", False,
        "it is not a database (not a sqlite file); move it aside, or name another file in "
        "tracking.uri"),
    "directory under a file": (
        lambda tmp, empty: (tmp / "notes.txt").write_text("not a directory"),
        "notes.txt/mlflow.db", False,
        "its directory cannot be made: notes.txt is a file; move that file aside, or name "
        "another path in tracking.uri"),
    "directory under a read-only directory": (
        lambda tmp, empty: (tmp / "shared").mkdir(mode=0o555),
        "shared/team/mlflow.db", True,
        "its directory cannot be made in shared (read-only for this user); make shared "
        "writable, or create shared/team"),
}


@pytest.mark.slow
@pytest.mark.parametrize("case", START_CASES)
def test_a_store_that_cannot_be_written_is_refused_before_any_job(tmp_path, _empty_store, case):
    """A single run and a sweep: one line each, exit code 1, and no file made or changed."""
    make, store, bound, cause = START_CASES[case]
    make(tmp_path, _empty_store)
    before = tree(tmp_path)
    default = store == "outputs/mlflow.db"  # the project's own: nothing to type for it
    env = {} if default else {"MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path}/{store}"}
    try:
        for args, ending in ((["-m", "model=gru,lstm"], "no job was started"),
                             (["model=gru"], "no run was recorded")):
            refused = cli(tmp_path, *args, env=env, bound=bound)
            line = f"error: store {store} cannot be written: {cause}; {ending}\n"
            assert (refused.returncode, refused.stderr, refused.stdout) == (1, line, ""), args
            assert len(line) < LINE_LIMIT
            assert tree(tmp_path) == before, args  # no folder, no journal, no store, no lock
    finally:
        restore_modes(tmp_path)


class _FullDisk:
    """A 16 MB tmpfs mounted at `directory` for the store, filled to the last byte by a file."""

    def __init__(self, directory: Path) -> None:
        directory.mkdir()
        self.directory, self.filler = directory, directory / "filler"
        try:
            mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs",
                                      str(directory)], capture_output=True, text=True)
        except FileNotFoundError as error:  # no mount(8) at all
            self.mounted, self.why_not = False, str(error)
        else:
            self.mounted, self.why_not = mounted.returncode == 0, mounted.stderr.strip()

    def break_(self) -> None:
        with open(self.filler, "wb") as filler:
            try:
                while True:
                    filler.write(b"\0" * 2**20)
                    filler.flush()
            except OSError as error:
                assert error.errno == errno.ENOSPC

    def mend(self) -> None:
        self.filler.unlink()

    def close(self) -> None:
        # Lazily: the MLflow client of this process may still hold the store open
        subprocess.run(["umount", "--lazy", str(self.directory)], check=True)


class _ReadOnlyHalfWay:
    """The store's file and its directory made read-only (sqlite's journal goes beside the
    file), as a CLI that permission bits bind meets them."""

    def __init__(self, directory: Path) -> None:
        directory.mkdir(exist_ok=True)
        self.directory, self.database = directory, directory / "mlflow.db"

    def break_(self) -> None:
        self.database.chmod(0o444)
        self.directory.chmod(0o555)

    def mend(self) -> None:
        self.directory.chmod(0o755)
        self.database.chmod(0o644)

    def close(self) -> None:
        self.mend()


def check_every_cell_once(client, cells: int, others: int = 0) -> None:
    """The sweep's parent FINISHED over `cells` children, each once, FINISHED with its
    params, metrics (each value once) and artifacts; `others` runs beside; none RUNNING."""
    runs = runs_of(client)
    [parent] = [run for run in runs if "sweep.dir" in run.data.tags]
    children = [run for run in runs
                if run.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert len(runs) == 1 + cells + others
    assert {run.info.status for run in runs} == {"FINISHED"}
    assert sorted(int(child.data.tags["job.num"]) for child in children) == list(range(cells))
    assert (parent.data.tags["jobs.total"], parent.data.tags["jobs.failed"]) == (str(cells), "0")
    for child in children:
        check_recorded_whole(client, child)


@pytest.mark.slow
@pytest.mark.parametrize("fault,mended_by", [("full", "the next start"),
                                             ("read-only", "the sync command")])
def test_a_store_that_fails_mid_sweep_loses_no_computed_cell(tmp_path, fault, mended_by):
    """After the third cell's line the store's disk fills up (a tmpfs: CI runs this) or its
    file is made read-only; the sweep ends with its records in the journal. Once mended, the
    next start on the store, or `python -m runner.sync`, records every cell once."""
    from mlflow import MlflowClient

    broken = _FullDisk(tmp_path / "disk") if fault == "full" else None
    if broken is not None and not broken.mounted:
        print(f"no tmpfs ({broken.why_not}): the store is made read-only half-way instead")
        broken = None
    broken = broken or _ReadOnlyHalfWay(tmp_path / "disk")
    uri = f"sqlite:///{tmp_path}/disk/mlflow.db"
    try:
        sweep = Sweep(tmp_path, uri, *SWEEP, "tracking.retry_minutes=0.1", **as_a_user())
        try:
            sweep.wait_for_line("[3/4]")
            broken.break_()
            code, out, err = sweep.end()
        finally:
            sweep.process.kill()
        assert code == 1, err[-3000:]
        lines = err.splitlines()
        assert "Traceback" not in err and all(len(line) < LINE_LIMIT for line in lines), err
        cause = "the disk is full" if isinstance(broken, _FullDisk) else "it is read-only"
        said = [line for line in lines if line.startswith("runner: store disk/mlflow.db")]
        assert said == [f"runner: store disk/mlflow.db cannot be written ({cause}); records wait "
                        f"in outputs/journal, tried for 0.1 min (tracking.retry_minutes); once "
                        f"mended: python -m runner.sync"], err
        [last] = [line for line in lines if line.startswith("error: ")]
        waiting = re.fullmatch(rf"error: store disk/mlflow.db cannot be written \({cause}\): "
                               rf"(\d+) records wait in outputs/journal; once mended: python -m "
                               rf"runner.sync; the sweep is closed with them", last)
        assert waiting and int(waiting.group(1)) >= 2, last  # the last cell's end, the close
        assert "[4/4]" in out  # every cell computed

        early = subprocess.run([sys.executable, "-m", "runner.sync"],
                               cwd=tmp_path, env=runner_env(), capture_output=True, text=True,
                               timeout=300, **as_a_user())  # before it is mended: sends nothing
        assert early.returncode == 1 and early.stdout.startswith("sent 0 records from ")
        assert early.stderr.startswith("error: store disk/mlflow.db cannot be written: ")
        assert early.stderr.endswith(f"; {waiting.group(1)} records still wait in "
                                     f"outputs/journal\n") and early.stderr.count("\n") == 1
        broken.mend()
        if mended_by == "the next start":
            again = subprocess.run([sys.executable, "-m", "runner", "model=gru"], cwd=tmp_path,
                                   env=runner_env(MLFLOW_TRACKING_URI=uri), capture_output=True,
                                   text=True, timeout=300)
            assert again.returncode == 0 and again.stderr == "", again.stderr[-3000:]
        else:
            sync = subprocess.run([sys.executable, "-m", "runner.sync"],  # as the line says
                                  cwd=tmp_path, env=runner_env(), capture_output=True, text=True,
                                  timeout=300)
            assert sync.returncode == 0 and sync.stderr == "", sync.stderr[-3000:]
            assert sync.stdout.startswith(f"sent {waiting.group(1)} records from "
                                          f"{tmp_path}/outputs/journal to {uri}: ")
            assert ", 1 sweeps closed" in sync.stdout
        check_every_cell_once(MlflowClient(uri), 4, others=int(mended_by == "the next start"))
        assert files(tmp_path / "outputs" / "journal") == []  # nothing left waiting
    finally:
        broken.close()
