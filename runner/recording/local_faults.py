"""A store on this machine's disks that cannot be written: full, read-only, not a database, or
in a directory that cannot be made. Checked before a sqlite store is opened, so that a sweep
or a run is refused in one line before any job starts and before any file is made; met once
jobs are running, it is a fault that waits (the records stay in the journal) like a tracking
server that went away (recording/delivery.py).

The causes are read from what the system says: the errno of an OSError, the error code of
sqlite3 (`sqlite_errorcode`, Python 3.11+), never the words of a message. Importing this
module imports no MLflow."""

import errno
import functools
import os
from pathlib import Path
from typing import Optional

from runner.recording.server import (RecordsWaiting, StoreUnreachable, away, is_server, named,
                                     names_the_server)

SQLITE_PREFIX = "sqlite:///"
SQLITE_HEADER = b"SQLite format 3\x00"  # the first 16 bytes of every sqlite database file
# A new store's tables take about 1 MB, each run about 60 KB of rows and artifacts more: with
# less free than this a store is refused before a sweep starts rather than filled half-way
MIN_FREE_BYTES = 10 * 2**20

# sqlite's primary result codes (sqlite3.SQLITE_*): what each says of the store
_SQLITE_CAUSES = {3: "permission denied",  # SQLITE_PERM
                  8: "it is read-only",  # SQLITE_READONLY
                  10: "an I/O error",  # SQLITE_IOERR
                  11: "its file is malformed",  # SQLITE_CORRUPT
                  13: "the disk is full",  # SQLITE_FULL
                  14: "it is read-only",  # SQLITE_CANTOPEN: no journal file beside it, mostly
                  26: "it is not a database"}  # SQLITE_NOTADB
_OS_CAUSES = {errno.ENOSPC: "the disk is full", errno.EDQUOT: "the disk quota is used up",
              errno.EROFS: "its filesystem is read-only", errno.EACCES: "it is read-only",
              errno.EPERM: "it is read-only", errno.EIO: "an I/O error"}


class StoreFault(StoreUnreachable):
    """A store on local disk that cannot be written: the store as a person names it, the
    cause, and what mends it; said in one line."""

    def __init__(self, store: str, cause: str, fix: str = "") -> None:
        super().__init__(store, cause, fix)  # all three: the error is pickled to the job
        self.store, self.cause, self.fix = store, cause, fix

    def __str__(self) -> str:
        return f"store {self.store} cannot be written: {self.cause}" + (
            f"; {self.fix}" if self.fix else "")


class WaitingForRepair(RecordsWaiting):
    """A local store still could not be written past `tracking.retry_minutes`: the request
    waits in the journal until the store is mended and `python -m runner.sync` sends it."""


class JournalUnwritable(StoreUnreachable):
    """The journal's directory cannot be written as a run or a sweep starts: where, and why."""


def shown(path: Path) -> str:
    """A path as the user names it: relative to the working directory when under it."""
    path = Path(path).absolute()
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def database_of(uri: str) -> Optional[Path]:
    """The file of a sqlite store (`sqlite:///PATH`); None for any other store."""
    return Path(uri[len(SQLITE_PREFIX):]).absolute() if uri.startswith(SQLITE_PREFIX) else None


def cause_of(error: BaseException) -> Optional[str]:
    """What a local fault anywhere in the error's chain says of the store ("the disk is
    full", "it is read-only", ...), or None when the error is no such fault."""
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, StoreFault):
            return error.cause
        code = getattr(error, "sqlite_errorcode", None)
        if isinstance(code, int) and code & 0xFF in _SQLITE_CAUSES:
            return _SQLITE_CAUSES[code & 0xFF]
        if (isinstance(error, OSError) and not isinstance(error, ConnectionError)
                and error.errno in _OS_CAUSES):
            return _OS_CAUSES[error.errno]
        error = error.__cause__ or error.__context__
    return None


def worth_waiting_for(error: BaseException) -> bool:
    """A store that may take records again soon: a tracking server that is away
    (server.away), or a store on local disk that is full or read-only, until it is mended."""
    return cause_of(error) is not None or away(error)


def names_the_store(method):
    """A store method whose server does not answer or refuses the user raises one
    StoreUnreachable naming the server (server.names_the_server); one whose local store is
    full or read-only, one StoreFault naming the file and the cause."""
    naming_the_server = names_the_server(method)

    @functools.wraps(method)
    def calling(store, *args, **kwargs):
        try:
            return naming_the_server(store, *args, **kwargs)
        except StoreUnreachable:
            raise
        except Exception as error:
            fault = fault_of(store.uri, error)
            if fault is None:
                raise
            raise fault from error

    return calling


def fault_of(uri: str, error: BaseException) -> Optional[StoreFault]:
    """The StoreFault an error of a store that is no tracking server is, named by its short
    cause; None for any other error, or for a server (recording/server.py names those)."""
    cause = cause_of(error)
    if cause is None or is_server(uri):
        return None
    if isinstance(error, StoreFault):
        return error
    database = database_of(uri)
    return StoreFault(shown(database) if database is not None else named(uri), cause)


def refusal(database: Path, needs_free: int = MIN_FREE_BYTES) -> Optional[StoreFault]:
    """Why the sqlite store `database` cannot be written (with what mends it), or None when
    it can. Looks only: nothing is made, so a refused command leaves no file behind."""
    name = shown(database)
    if database.is_dir():
        return StoreFault(name, "it is a directory", "name a file in it in tracking.uri")
    if database.exists():
        try:
            with open(database, "rb") as file:
                header = file.read(len(SQLITE_HEADER))
        except OSError as error:
            return StoreFault(name, f"it cannot be read ({error.strerror})",
                              f"make it readable and writable: chmod u+rw {name}")
        if header and header != SQLITE_HEADER:  # an empty file is an empty sqlite database
            return StoreFault(name, "it is not a database (not a sqlite file)",
                              "move it aside, or name another file in tracking.uri")
    directory, missing = _nearest_existing(database.parent)
    if not directory.is_dir():
        return StoreFault(name, f"its directory cannot be made: {shown(directory)} is a file",
                          "move that file aside, or name another path in tracking.uri")
    mounted_read_only = _read_only_filesystem(directory)
    if mounted_read_only is not None:
        return StoreFault(name, f"its filesystem ({mounted_read_only}) is mounted read-only",
                          "remount it read-write, or name another path in tracking.uri")
    if not os.access(directory, os.W_OK | os.X_OK):
        place = shown(directory)
        if missing:
            return StoreFault(name, f"its directory cannot be made in {place} (read-only for "
                                    f"this user)", f"make {place} writable, or create "
                                                   f"{shown(database.parent)}")
        return StoreFault(name, f"its directory {place} is read-only for this user (sqlite "
                                f"writes beside the file)", f"make it writable: chmod u+w {place}")
    if database.exists() and not os.access(database, os.W_OK):
        return StoreFault(name, "the file is read-only for this user",
                          f"make it writable: chmod u+w {name}")
    lock = database.with_name(f"{database.name}.lock")  # beside it (store.py, _store_lock)
    if lock.exists() and not os.access(lock, os.W_OK):
        return StoreFault(name, f"its lock file {shown(lock)} is read-only for this user",
                          f"make it writable: chmod u+w {shown(lock)}")
    free = _free_bytes(directory)
    if free is not None and free < needs_free:
        return StoreFault(name, f"the disk is full ({_megabytes(free)} free, the runner "
                                f"starts with {needs_free // 2**20} MB)",
                          "free some space on it")
    return None


def start_refusal(tracking) -> Optional[StoreUnreachable]:
    """Why a run or a sweep must not start with this store and journal, or None: looked at
    from the job's own process, before TensorFlow or MLflow is imported, so that the refusal
    costs well under a second. The recording process looks again as it opens the store."""
    database = database_of(tracking.uri)
    fault = refusal(database) if database is not None else None
    artifacts = tracking.artifact_location
    if fault is None and database is not None and artifacts and "://" not in artifacts:
        why = journal_refusal(Path(artifacts), needs_free=0)  # where log_artifacts copies
        if why is not None:
            fault = StoreFault(shown(database), f"its artifacts cannot be kept ({why})",
                               "mend that, or set tracking.artifact_root")
    if fault is None and tracking.journal is not None:
        why = journal_refusal(Path(tracking.journal))
        fault = journal_unwritable(Path(tracking.journal), why) if why else None
    return fault


def journal_unwritable(journal: Path, why: str) -> JournalUnwritable:
    return JournalUnwritable(f"journal {shown(journal)} cannot be written ({why}): make it "
                             f"writable, or name another directory in tracking.journal")


def journal_refusal(directory: Path, needs_free: int = MIN_FREE_BYTES) -> Optional[str]:
    """Why a directory (the journal's, the artifacts') cannot be written, or None: looks
    only, as `refusal` does."""
    existing, _ = _nearest_existing(directory)
    if not existing.is_dir():
        return f"{shown(existing)} is a file"
    mounted_read_only = _read_only_filesystem(existing)
    if mounted_read_only is not None:
        return f"its filesystem ({mounted_read_only}) is mounted read-only"
    if not os.access(existing, os.W_OK | os.X_OK):
        return f"{shown(existing)} is read-only for this user"
    free = _free_bytes(existing)
    if free is not None and free < needs_free:
        return f"the disk is full: {_megabytes(free)} free"
    return None


def _nearest_existing(directory: Path) -> tuple:
    """(the nearest of `directory` and its parents that exists, whether any was missing)."""
    missing = False
    while not directory.exists() and directory != directory.parent:
        directory, missing = directory.parent, True
    return directory, missing


def _read_only_filesystem(directory: Path) -> Optional[str]:
    """The mount point of a read-only filesystem that holds `directory`, else None."""
    try:
        if not os.statvfs(directory).f_flag & os.ST_RDONLY:
            return None
    except OSError:
        return None
    mount = directory.absolute()
    while mount != mount.parent and os.stat(mount.parent).st_dev == os.stat(mount).st_dev:
        mount = mount.parent
    return shown(mount)


def _free_bytes(directory: Path) -> Optional[int]:
    try:
        status = os.statvfs(directory)
    except OSError:
        return None
    return status.f_bavail * status.f_frsize


def _megabytes(size: int) -> str:
    return f"{size / 2**20:.1f} MB"
