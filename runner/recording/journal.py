"""The journal: what a recording process was asked to record, on local disk before the store.

Each recording process appends to a file of its own in the journal's directory
(`outputs/journal/` by default, `tracking.journal`), one JSON line per entry:

    {"seq": 3, "request": "FinishRun", "uri": "http://...", "data": "<the request, pickled>"}
    {"done": 3}                      the store has it (a run it created: "run_id" too)
    {"dropped": 3}                   it failed where nothing waits for it (a refused start)
    {"failed": 3, "error": "..."}    the store refused it for good: sent no more

A request's line is written and fsynced before it is applied; marks are only written: a mark
lost to a crash, or to a full disk, makes a request sent again, which changes nothing (the
requests are idempotent). A line that a full disk cuts short is taken back (the file is
truncated to where it began), so the next one starts on a line of its own. The process holds an exclusive lock on its file while it lives, so another
process (the next start, or `python -m runner.sync`) takes over a file only once its writer
is gone. A file with nothing left to send is removed when its writer closes it.

No MLflow here: the sync command and the job's side read a journal without importing it."""

import base64
import fcntl
import json
import os
import pickle
import socket
import threading
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

SUFFIX = ".jsonl"
SYNC_COMMAND = "python -m runner.sync"
DEFAULT_DIRECTORY = Path("outputs") / "journal"  # tracking.journal's default, from where it runs


@dataclass(frozen=True)
class Entry:
    """One request of a journal file, in the order it was asked."""
    seq: int
    request: object
    run_id: Optional[str] = None  # the run a done StartRun or CreateParent created


class JournalFile:
    """One journal file, locked by this process: its entries, and the marks appended to it."""

    def __init__(self, path: Path, handle) -> None:
        self.path, self._handle = path, handle
        self._lock = threading.Lock()  # the reader appends requests, the applier marks them
        self._entries = {}  # seq -> Entry, for every request in the file
        self._open = set()  # seqs with no mark yet
        self._next = 1

    @classmethod
    def create(cls, directory: Path) -> "JournalFile":
        """A new file for this process, locked for as long as it lives."""
        directory.mkdir(parents=True, exist_ok=True)
        name = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}{SUFFIX}"
        handle = open(directory / name, "a+b")
        fcntl.flock(handle, fcntl.LOCK_EX)
        return cls(directory / name, handle)

    @classmethod
    def take_over(cls, path: Path) -> Optional["JournalFile"]:
        """A file whose writer is gone, locked by this process now; None while its writer
        (or another process taking it over) still holds it, or once it is gone."""
        try:
            handle = open(path, "r+b")
        except FileNotFoundError:
            return None
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            return None
        if not path.exists():  # removed by the process that held it just before
            handle.close()
            return None
        journal = cls(path, handle)
        journal._read()
        return journal

    def _read(self) -> None:
        self._handle.seek(0)
        for line in self._handle.read().splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue  # a line cut short by a crash: its request was never answered
            if "seq" in record:
                seq = record["seq"]
                request = pickle.loads(base64.b64decode(record["data"]))
                self._entries[seq] = Entry(seq, request)
                self._open.add(seq)
                self._next = max(self._next, seq + 1)
            for mark in ("done", "dropped", "failed"):
                if mark in record:
                    self._open.discard(record[mark])
                    if record.get("run_id") and record[mark] in self._entries:
                        entry = self._entries[record[mark]]
                        self._entries[entry.seq] = Entry(entry.seq, entry.request,
                                                         record["run_id"])
        self._handle.seek(0, os.SEEK_END)

    def append(self, request) -> Entry:
        """The request written and on disk (fsynced) before it is applied."""
        with self._lock:
            entry = Entry(self._next, request)
            self._next += 1
            self._write({"seq": entry.seq, "request": type(request).__name__,
                         "uri": getattr(getattr(request, "tracking", None), "uri", ""),
                         "data": base64.b64encode(pickle.dumps(request)).decode()}, sync=True)
            self._entries[entry.seq] = entry
            self._open.add(entry.seq)
            return entry

    def mark(self, entry: Entry, how: str = "done", **details) -> None:
        """`done`, `dropped` or `failed`: nothing of it is sent again by this process (nor by
        another, unless the disk was too full to write the mark)."""
        with self._lock:
            if entry.seq in self._open:
                try:
                    self._write({how: entry.seq, **details}, sync=False)
                except OSError:
                    pass  # the request is in the store: sent again, it changes nothing
                self._open.discard(entry.seq)

    def _write(self, record: dict, sync: bool) -> None:
        """One whole line appended, or none (an OSError says why): unbuffered, so a failed
        write leaves nothing behind to be written later out of order."""
        line = memoryview((json.dumps(record) + "\n").encode())
        descriptor = self._handle.fileno()
        end = os.lseek(descriptor, 0, os.SEEK_END)
        try:
            while line:
                line = line[os.write(descriptor, line):]
            if sync:
                os.fsync(descriptor)
        except OSError:
            try:
                os.ftruncate(descriptor, end)  # the part written taken back: unreadable
            except OSError:
                pass  # nothing was written (not a file that can be cut)
            raise

    def pending(self) -> list:
        """The entries not yet marked, in order."""
        with self._lock:
            return [self._entries[seq] for seq in sorted(self._open)]

    def entries(self) -> list:
        """Every entry, marked or not, in order (done ones carry their run's id)."""
        with self._lock:
            return [self._entries[seq] for seq in sorted(self._entries)]

    def close(self) -> None:
        """Removed when nothing waits in it; then the lock goes with the handle."""
        with self._lock:
            if not self._open:
                self.path.unlink(missing_ok=True)
            self._handle.close()


def files(directory: Path) -> list:
    """The journal files of a directory, oldest first."""
    if not directory.is_dir():
        return []
    return sorted(directory.glob(f"*{SUFFIX}"), key=lambda path: path.stat().st_mtime)


def waiting(directory: Path) -> int:
    """Requests not yet in the store, in every file of the directory (read without locks)."""
    count = 0
    for path in files(directory):
        asked, marked = set(), set()
        try:
            lines = path.read_text().splitlines()
        except OSError:
            continue
        for line in lines:
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if "seq" in record:
                asked.add(record["seq"])
            marked.update(record[mark] for mark in ("done", "dropped", "failed") if mark in record)
        count += len(asked - marked)
    return count


def writer_of(path: Path) -> str:
    """`process 123 on host-a`, from the file's name."""
    host, pid = path.stem.rsplit("-", 2)[:2]
    return f"process {pid} on {host}"


def sync_command(directory) -> str:
    """The command that sends what waits in `directory`: without it where it is the command's
    default (`outputs/journal`, as a path relative to the working directory names it)."""
    if Path(directory) == DEFAULT_DIRECTORY:
        return SYNC_COMMAND
    return f"{SYNC_COMMAND} {directory}"
