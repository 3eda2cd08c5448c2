"""Requests delivered to the store in order, each journaled first: a tracking server that goes
away while work is computed costs time, never records.

A request that waits for the store (a sweep's job's run, its end, the sweep's close: work is
computed) is tried again with backoff while the server is away or answers 5xx, until
`tracking.retry_minutes` after it went away; then it and every later one are left in the
journal (RecordsWaiting), in order, for `python -m runner.sync`. A request made before
anything is computed (a sweep's parent, a job alone) fails at once, as it always did.

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
from runner.recording.server import RecordsWaiting, away, is_server, named

FIRST_DELAY_S = 1.0  # between tries of a server that is away, doubling up to MAX_DELAY_S
MAX_DELAY_S = 5.0
JOURNALED = (requests.CreateParent, requests.StartRun, requests.FinishRun, requests.CloseSweep,
             requests.ReopenSweep)  # FindSweep only reads


@dataclass
class Outage:
    """A server that went away: since when, how many requests waited, whether it was given up."""
    uri: str
    journal: Path
    since: float = field(default_factory=time.monotonic)
    sent: int = 0
    given_up: bool = False

    def waiting(self) -> RecordsWaiting:
        return RecordsWaiting(f"tracking server {named(self.uri)} is away: {waiting(self.journal)} "
                              f"records wait in {self.journal}; once it answers, send them with: "
                              f"{sync_command(self.journal)}")


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
        self._looked = set()  # directories whose orphaned journals were sent at first use
        self._outages = {}  # uri -> Outage

    def journal(self, request) -> Optional[tuple]:
        """The request on disk (fsynced), before it is applied; None where nothing journals."""
        directory = request.tracking.journal
        if directory is None or not isinstance(request, JOURNALED):
            return None
        if directory not in self._journals:
            self._journals[directory] = JournalFile.create(Path(directory))
        journal = self._journals[directory]
        return journal, journal.append(request)

    def answer(self, request, ticket: Optional[tuple]) -> tuple:
        """(True, the answer) or (False, the error); the journal marked accordingly."""
        tracking = request.tracking
        if tracking.journal is not None and tracking.journal not in self._looked:
            self._looked.add(tracking.journal)
            try:
                self.take_over(Path(tracking.journal), tracking.uri)
            except Exception:
                pass  # the store is away or refuses: this process's own request says how
        try:
            value = self._apply(request)
        except RecordsWaiting as error:
            return False, error  # left in the journal, in order
        except BaseException as error:
            if ticket is not None:
                journal, entry = ticket
                journal.mark(entry, "dropped")  # refused where nothing was computed, or for good
            return False, error
        if ticket is not None:
            journal, entry = ticket
            run_id = value.run_id if isinstance(value, requests.RunRef) else None
            journal.mark(entry, "done", **({"run_id": run_id} if run_id else {}))
        return True, value

    def _apply(self, request):
        """The request applied; a server that is away tried again until the deadline."""
        tracking = request.tracking
        waits = (tracking.journal is not None and is_server(tracking.uri)
                 and request.waits_for_store(self.stores))
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
                if not (waits and away(error)):
                    raise
                outage = self._went_away(tracking, error)
                if time.monotonic() - outage.since > tracking.retry_minutes * 60:
                    outage.given_up = True
                    self._say(f"runner: tracking server {named(tracking.uri)} still away after "
                              f"{tracking.retry_minutes:g} min (tracking.retry_minutes): "
                              f"{outage.waiting()}")
                    raise outage.waiting() from error
                time.sleep(delay * random.uniform(0.8, 1.2))
                delay = min(delay * 2, MAX_DELAY_S)
                continue
            outage = self._outages.get(tracking.uri)
            if outage is not None and not outage.given_up:
                outage.sent += 1
                if self.backlog() == 0:  # every record that waited has arrived
                    del self._outages[tracking.uri]
                    self._say(f"runner: tracking server {named(tracking.uri)} is back: the "
                              f"{outage.sent} records that waited have arrived "
                              f"({time.monotonic() - outage.since:.0f} s after it went away)")
            return value

    def _went_away(self, tracking, error) -> Outage:
        outage = self._outages.get(tracking.uri)
        if outage is None:
            outage = self._outages[tracking.uri] = Outage(tracking.uri, Path(tracking.journal))
            reason = " ".join(str(error).split())[:200]
            self._say(f"runner: tracking server {named(tracking.uri)} is away ({reason}); "
                      f"records wait in {tracking.journal} and are sent when it is back "
                      f"(tried for {tracking.retry_minutes:g} min, tracking.retry_minutes)")
        return outage

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
            if not away(error):
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
            if away(error):
                raise
            line = (str(error).splitlines() or [type(error).__name__])[0][:300]
            journal.mark(entry, "failed", error=f"{type(error).__name__}: {line}")
            replayed.failed.append((request, f"{type(error).__name__}: {line}"))
            return
        run_id = value.run_id if isinstance(value, requests.RunRef) else None
        journal.mark(entry, "done", **({"run_id": run_id} if run_id else {}))
        replayed.sent.append(request)

    def close(self) -> None:
        for directory, journal in self._journals.items():
            journal.close()
            try:
                Path(directory).rmdir()  # only when nothing of anyone's waits in it
            except OSError:
                pass

    def _say(self, line: str) -> None:
        if self.announce:
            print(line, file=sys.stderr, flush=True)
