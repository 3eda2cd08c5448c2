"""Requests delivered to the store in order, each journaled first: a store that goes away
while work is computed costs time, never records. Away: a tracking server that does not answer
or answers 5xx, or a store on local disk that is full or read-only (recording/local_faults.py).

A request that waits for the store (a sweep's job's run, its end, the sweep's close: work is
computed) is tried again with backoff while the store is away, until `tracking.retry_minutes`
after it went away; then it and every later one are left in the journal (RecordsWaiting), in
order, for `python -m runner.sync`. A request made before anything is computed (a sweep's
parent, a job alone) fails at once, as it always did.

A request the journal cannot take (its own disk full or read-only) is held in memory and
applied like any other; if the store is still away at the deadline, the journal is tried once
more, and failing that the request is lost and said to be (RecordsLost): never reported as
recorded, nor as waiting.

A journal whose writer is gone (killed -9, or ended with records waiting) is taken over and
sent by the next recording process that opens the same journal directory for the same store,
before its own first request (so before a reaper could end those runs KILLED), and again
before a sweep's close (so its jobs' runs are in before the summary is made)."""

import random
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from runner.recording import requests
from runner.recording.journal import JournalFile, files, sync_command, waiting
from runner.recording.local_faults import (StoreFault, WaitingForRepair, cause_of, database_of,
                                           fault_of, journal_refusal, journal_unwritable, refusal,
                                           shown, worth_waiting_for)
from runner.recording.server import RecordsLost, RecordsWaiting, StoreUnreachable, is_server, named

FIRST_DELAY_S = 1.0  # between tries of a store that is away, doubling up to MAX_DELAY_S
MAX_DELAY_S = 5.0
JOURNALED = (requests.CreateParent, requests.StartRun, requests.FinishRun, requests.CloseSweep,
             requests.ReopenSweep)  # FindSweep only reads
RECORDS = {requests.StartRun: "a run's start", requests.FinishRun: "a run's results and end",
           requests.CloseSweep: "the sweep's close"}


@dataclass(frozen=True)
class NotKept:
    """The ticket of a request that the journal could not take: why."""
    error: OSError


@dataclass
class Outage:
    """A store that went away: since when, how many requests waited, how many the journal
    could not keep, whether it was given up. `fault`: a local store that cannot be written,
    and why; None for a tracking server that is away."""
    uri: str
    journal: Path
    fault: Optional[StoreFault] = None
    since: float = field(default_factory=time.monotonic)
    sent: int = 0
    lost: int = 0
    given_up: bool = False

    def store(self) -> str:
        return f"store {self.fault.store}" if self.fault else f"tracking server {named(self.uri)}"

    def waiting(self) -> RecordsWaiting:
        if self.fault is None:
            return RecordsWaiting(f"tracking server {named(self.uri)} is away: "
                                  f"{waiting(self.journal)} records wait in {self.journal}; once "
                                  f"it answers, send them with: {sync_command(self.journal)}")
        lost = f" ({self.lost} lost: the journal's disk failed too)" if self.lost else ""
        return WaitingForRepair(f"store {self.fault.store} cannot be written ({self.fault.cause})"
                                f": {waiting(self.journal)} records wait in "
                                f"{shown(self.journal)}{lost}; once mended: "
                                f"{sync_command(shown(self.journal))}")


@dataclass
class Replayed:
    """What a takeover of journals sent, and what it left."""
    sent: list = field(default_factory=list)  # of requests
    failed: list = field(default_factory=list)  # (request, the store's refusal)
    held: list = field(default_factory=list)  # files whose writer still holds them
    away: Optional[BaseException] = None  # the store that stopped it, if one did


class Delivery:
    """The recording process's requests applied in order, each journaled before."""

    def __init__(self, stores, backlog=lambda: 0, announce: bool = True) -> None:
        self.stores = stores
        self.backlog = backlog  # requests read but not yet applied
        self.announce = announce  # the console hears of an outage (the sync command reports)
        self._journals = {}  # directory -> this process's JournalFile there
        self._made = {}  # directory -> the directories its journal's creation had to make
        self._looked = set()  # directories whose orphaned journals were sent at first use
        self._outages = {}  # uri -> Outage
        self._unkept_said = set()  # journal directories said to hold records in memory only

    def journal(self, request):
        """The request on disk (fsynced), before it is applied, as (journal, entry); NotKept
        when the journal cannot take it; None where nothing journals."""
        directory = request.tracking.journal
        if directory is None or not isinstance(request, JOURNALED):
            return None
        try:
            if directory not in self._journals:
                self._made.setdefault(directory, _missing(Path(directory)))
                self._journals[directory] = JournalFile.create(Path(directory))
            journal = self._journals[directory]
            return journal, journal.append(request)
        except OSError as error:
            return NotKept(error)

    def answer(self, request, ticket) -> tuple:
        """(True, the answer) or (False, the error); the journal marked accordingly."""
        tracking = request.tracking
        if tracking.journal is not None and tracking.journal not in self._looked:
            self._looked.add(tracking.journal)
            try:
                self.take_over(Path(tracking.journal), tracking.uri)
            except Exception:
                pass  # the store is away or refuses: this process's own request says how
        if isinstance(ticket, NotKept) and not request.waits_for_store(self.stores):
            return False, self._journal_refused(tracking, ticket)  # nothing computed yet
        try:
            value = self._apply(request, ticket if isinstance(ticket, NotKept) else None)
        except RecordsWaiting as error:
            if isinstance(ticket, NotKept):
                ticket = self.journal(request)  # once more: the disk may have room by now
                if isinstance(ticket, NotKept):
                    return False, self._lost(request, ticket)
                error = self._outages[tracking.uri].waiting()
            return False, error  # left in the journal, in order
        except BaseException as error:
            if isinstance(ticket, tuple):
                journal, entry = ticket
                journal.mark(entry, "dropped")  # refused where nothing was computed, or for good
            return False, error
        if isinstance(ticket, tuple):
            journal, entry = ticket
            run_id = value.run_id if isinstance(value, requests.RunRef) else None
            journal.mark(entry, "done", **({"run_id": run_id} if run_id else {}))
        return True, value

    def _apply(self, request, unkept: Optional[NotKept] = None):
        """The request applied; a store that is away tried again until the deadline.
        `unkept`: why the journal could not take it, when it is held here only."""
        tracking = request.tracking
        waits = tracking.journal is not None and request.waits_for_store(self.stores)
        outage = self._outages.get(tracking.uri)
        if waits and outage is not None and outage.given_up:
            raise outage.waiting()
        delay = FIRST_DELAY_S
        while True:
            try:
                if isinstance(request, requests.CloseSweep) and tracking.journal is not None:
                    self._sweeps_runs_first(Path(tracking.journal), tracking.uri)
                value = request.apply(self.stores)
            except Exception as error:
                if not (waits and worth_waiting_for(error)):
                    raise
                outage = self._went_away(tracking, error, unkept)
                if unkept is not None:
                    self._held_in_memory(tracking, outage, unkept)
                if time.monotonic() - outage.since > tracking.retry_minutes * 60:
                    outage.given_up = True
                    if outage.fault is None:  # a local fault's first line said what comes
                        self._say(f"runner: tracking server {named(tracking.uri)} still away "
                                  f"after {tracking.retry_minutes:g} min "
                                  f"(tracking.retry_minutes): {outage.waiting()}")
                    raise outage.waiting() from error
                time.sleep(delay * random.uniform(0.8, 1.2))
                delay = min(delay * 2, MAX_DELAY_S)
                continue
            outage = self._outages.get(tracking.uri)
            if outage is not None and not outage.given_up:
                outage.sent += 1
                if self.backlog() == 0:  # every record that waited has arrived
                    del self._outages[tracking.uri]
                    back = ("is back" if outage.fault is None else "can be written again")
                    self._say(f"runner: {outage.store()} {back}: the {outage.sent} records "
                              f"that waited have arrived ({time.monotonic() - outage.since:.0f} "
                              f"s after it {'went away' if outage.fault is None else 'failed'})")
            return value

    def _went_away(self, tracking, error, unkept: Optional[NotKept] = None) -> Outage:
        """The store's outage, said in one line when it begins; `unkept`: the request that met
        it is not in the journal (the line says the journal cannot be written either)."""
        outage = self._outages.get(tracking.uri)
        if outage is not None:
            return outage
        fault = None if is_server(tracking.uri) else fault_of(tracking.uri, error)
        outage = self._outages[tracking.uri] = Outage(tracking.uri, Path(tracking.journal), fault)
        journal = Path(tracking.journal)
        if fault is None:
            reason = " ".join(str(error).split())[:200]
            self._say(f"runner: tracking server {named(tracking.uri)} is away ({reason}); "
                      f"records wait in {tracking.journal} and are sent when it is back "
                      f"(tried for {tracking.retry_minutes:g} min, tracking.retry_minutes)")
        elif unkept is None:
            self._say(f"runner: store {fault.store} cannot be written ({fault.cause}); records "
                      f"wait in {shown(journal)}, tried for {tracking.retry_minutes:g} min "
                      f"(tracking.retry_minutes); once mended: {sync_command(shown(journal))}")
        else:
            self._unkept_said.add(tracking.journal)
            self._say(f"runner: store {fault.store} cannot be written ({fault.cause}), nor "
                      f"journal {shown(journal)} ({_journal_fault(journal, unkept.error)}): "
                      f"records wait in memory only, lost unless the store takes them within "
                      f"{tracking.retry_minutes:g} min")
        return outage

    def _held_in_memory(self, tracking, outage: Outage, unkept: NotKept) -> None:
        """Said once a journal: what waits is held here only, and when it would be lost."""
        if tracking.journal in self._unkept_said:
            return
        self._unkept_said.add(tracking.journal)
        journal = Path(tracking.journal)
        self._say(f"runner: journal {shown(journal)} cannot be written either "
                  f"({_journal_fault(journal, unkept.error)}): records wait in memory only, "
                  f"lost unless {outage.store()} takes them within {tracking.retry_minutes:g} min")

    def _journal_refused(self, tracking, ticket: NotKept) -> StoreUnreachable:
        """The start of a run or a sweep refused: the store's own fault first, if it has one
        (a journal beside a read-only store fails with it)."""
        database = database_of(tracking.uri)
        fault = refusal(database) if database is not None else None
        if fault is not None:
            return fault
        journal = Path(tracking.journal)
        return journal_unwritable(journal, _journal_fault(journal, ticket.error))

    def _lost(self, request, ticket: NotKept) -> RecordsLost:
        """A request neither the store nor the journal could take: said once a journal, from
        here on lost, and never reported as waiting."""
        tracking = request.tracking
        outage = self._outages[tracking.uri]
        outage.lost += 1
        journal = Path(tracking.journal)
        why = _journal_fault(journal, ticket.error)
        if tracking.journal not in self._unkept_said:
            self._unkept_said.add(tracking.journal)
            self._say(f"runner: journal {shown(journal)} cannot be written either ({why}): "
                      f"records that {outage.store()} cannot take are lost")
        return RecordsLost(f"{RECORDS.get(type(request), 'a record')} is lost: "
                           f"{outage.store()} could not take it, nor journal {shown(journal)} "
                           f"({why})")

    def _sweeps_runs_first(self, directory: Path, uri: str) -> None:
        """Before a sweep's close: the runs that processes now gone left in the journal (its
        workers, after the deadline), so that the summary reads them ended as their jobs ended."""
        replayed = self.take_over(directory, uri)
        if replayed.away is not None:
            raise replayed.away

    def take_over(self, directory: Path, uri: Optional[str] = None) -> Replayed:
        """Send what waits in the journals of `directory` whose writers are gone (those of
        store `uri` only, when given): every run's requests first, in each file's order, then
        the sweeps' closes. A store that is away stops it; what is left waits on."""
        replayed = Replayed()
        own = {journal.path for journal in self._journals.values()}
        taken = []
        for path in files(directory):
            if path in own:
                continue
            journal = JournalFile.take_over(path)
            if journal is None:
                replayed.held.append(path)
            elif journal.pending():
                taken.append(journal)
            else:
                journal.close()
        try:
            for closes in (False, True):
                for journal in taken:
                    self.stores.learn(journal.entries())
                    for entry in journal.pending():
                        request = entry.request
                        if (isinstance(request, requests.CloseSweep) != closes
                                or (uri is not None and request.tracking.uri != uri)):
                            continue
                        self._replay(journal, entry, replayed)
        except Exception as error:
            if not worth_waiting_for(error):
                raise
            replayed.away = error
        finally:
            for journal in taken:
                journal.close()
        return replayed

    def _replay(self, journal: JournalFile, entry, replayed: Replayed) -> None:
        request = entry.request
        if not request.waits_for_store(self.stores):
            journal.mark(entry, "dropped")  # its caller had its answer already: a failure
            return
        try:
            value = request.apply(self.stores)
        except Exception as error:
            if worth_waiting_for(error):
                raise
            line = (str(error).splitlines() or [type(error).__name__])[0][:300]
            journal.mark(entry, "failed", error=f"{type(error).__name__}: {line}")
            replayed.failed.append((request, f"{type(error).__name__}: {line}"))
            return
        run_id = value.run_id if isinstance(value, requests.RunRef) else None
        journal.mark(entry, "done", **({"run_id": run_id} if run_id else {}))
        replayed.sent.append(request)

    def close(self) -> None:
        """Each journal file closed (removed when nothing waits in it), then its directory
        and those made for it, each only when empty."""
        for journal in self._journals.values():
            journal.close()
        for directory in {*self._journals, *self._made}:
            for path in dict.fromkeys([Path(directory), *self._made.get(directory, ())]):
                try:
                    path.rmdir()  # only when nothing of anyone's waits in it
                except OSError:
                    break

    def _say(self, line: str) -> None:
        if self.announce:
            print(line, file=sys.stderr, flush=True)


def _journal_fault(journal: Path, error: OSError) -> str:
    """Why the journal cannot be written: as its path shows it, else as the error says."""
    return (journal_refusal(journal, needs_free=1) or cause_of(error) or error.strerror
            or type(error).__name__)


def _missing(directory: Path) -> list:
    """`directory` and those of its parents that do not exist, deepest first."""
    missing = []
    while not directory.exists() and directory != directory.parent:
        missing.append(directory)
        directory = directory.parent
    return missing
