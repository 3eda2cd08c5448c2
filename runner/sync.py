"""python -m runner.sync [JOURNAL_DIR]: send the records that wait in a journal to their store.

A sweep whose tracking server stayed away, or whose local store could not be written (a full
disk, a read-only file), past `tracking.retry_minutes` leaves its records in the journal
(`outputs/journal/` by default) and says so. Run this once the server answers or the store can
be written again, from any machine that can read the journal (and the jobs' output
directories, which hold the files each run keeps) and reach the store. It sends every run's requests first, then the
sweeps' closes, marks each one sent, and sends nothing twice: run it again, it sends what is
left. Journals still held by a running recording process are left to it. Exit code 0 when
nothing waits any more."""

import argparse
import os
import sys
from collections import Counter
from pathlib import Path

from runner.recording.journal import DEFAULT_DIRECTORY, files, waiting, writer_of

DEFAULT = DEFAULT_DIRECTORY


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m runner.sync", description=__doc__.split(
        "\n")[0].split(": ", 1)[1])
    parser.add_argument("journal", nargs="?", default=str(DEFAULT),
                        help=f"the journal's directory (default: {DEFAULT})")
    directory = Path(parser.parse_args(argv).journal).absolute()
    if not files(directory):
        print(f"nothing waits in {directory}")
        return 0
    from runner.recording.delivery import Delivery
    from runner.recording.process import OpenStores, before_mlflow, quiet_store_errors

    before_mlflow()
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")  # the runner's quiet default
    import mlflow  # noqa: F401  (its loggers set up by its import)

    quiet_store_errors()
    replayed = Delivery(OpenStores(os.getpid()), announce=False).take_over(directory)
    kinds = Counter(type(request).__name__ for request in replayed.sent)
    stores = sorted({request.tracking.uri for request in replayed.sent})
    from runner.vocabulary import without_login

    print(f"sent {len(replayed.sent)} records from {directory}"
          + (f" to {', '.join(without_login(uri) for uri in stores)}" if stores else "")
          + f": {kinds['StartRun']} runs created, {kinds['FinishRun']} runs ended, "
            f"{kinds['CloseSweep']} sweeps closed")
    for request, error in replayed.failed:
        print(f"refused by the store, not sent again: {type(request).__name__}: {error}",
              file=sys.stderr)
    if replayed.held:
        print(f"left to their writers, still running: "
              f"{', '.join(writer_of(path) for path in replayed.held)}", file=sys.stderr)
    left = waiting(directory)
    if replayed.away is not None:
        from runner.recording.local_faults import cause_of, shown

        reason = (str(replayed.away).splitlines() or [""])[0][:300]
        if cause_of(replayed.away) is not None:  # the store's line says what mends it
            print(f"error: {reason}; {left} records still wait in {shown(directory)}",
                  file=sys.stderr)
        else:
            print(f"error: {reason}; {left} records still wait in {directory}: run this again "
                  f"once the server answers", file=sys.stderr)
    elif left == 0:
        print(f"nothing waits in {directory} any more")
    return 0 if left == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
