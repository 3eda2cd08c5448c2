"""`python -m runner.ui [--port N] [--store PATH]`: the MLflow UI over the embedded store, on
127.0.0.1 only, after printing the address of the experiment's runs table."""

import argparse
import os
import sqlite3
import sys
from pathlib import Path

from runner.report import UI_PORT, runs_table_url


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=UI_PORT)
    parser.add_argument("--store", default="outputs/mlflow.db")
    parser.add_argument("--experiment", default="rnn-shapes")
    args = parser.parse_args()
    store = Path(args.store).absolute()
    base = f"http://127.0.0.1:{args.port}"
    experiment = _experiment_id(store, args.experiment)
    if experiment is None:
        print(f"{args.store}: no experiment {args.experiment!r} yet; run `make run` first, "
              f"then open {base}")
    else:
        url = runs_table_url(f"sqlite:///{store}", experiment).replace(
            f"http://127.0.0.1:{UI_PORT}", base)
        print(f"the runs of {args.experiment}: {url}", flush=True)
    # MLflow's own command, by the interpreter that runs this one: wherever it is installed
    os.execv(sys.executable, [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1",
                              "--port", str(args.port), "--backend-store-uri",
                              f"sqlite:///{store}"])


def _experiment_id(store: Path, name: str):
    if not store.is_file():
        return None
    try:
        with sqlite3.connect(f"file:{store}?mode=ro", uri=True) as database:
            row = database.execute("select experiment_id from experiments where name = ?",
                                   (name,)).fetchone()
    except sqlite3.Error:
        return None
    return str(row[0]) if row else None


if __name__ == "__main__":
    main()
