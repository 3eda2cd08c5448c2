"""What a resume asks of the store: a sweep's parent created with its grid, found again by it,
its cells' latest attempts, and the parent reopened. MLflow calls only, in the recording
process, like the rest of the Store (runner/recording/store.py)."""

import tempfile
from pathlib import Path
from typing import Optional

from runner.identity import grid_sha256
from runner.recording.requests import Attempt, RunRef, SweepFound
from runner.recording.local_faults import names_the_store
from runner.recording.orphans import process_started
from runner.recording.store import Store
from runner.recording.summary import latest_attempts

GRID_SHA256 = "sweep.grid.sha256"  # one query finds the latest parent of a grid
GRID = "sweep.grid"  # the cells' keys, one a line, in job order
GRID_FILE = "sweep_grid.txt"  # the same, for a grid past MLflow's limit on a tag's value
TAG_VALUE_LIMIT = 8000


class SweepStore(Store):
    """The Store, and the sweeps that a resume finds and reopens."""

    @names_the_store
    def create_sweep(self, name: str, tags: dict, grid: tuple) -> RunRef:
        """A sweep's parent, its grid among the tags it is created with (or, past MLflow's
        limit, in GRID_FILE: one more call, for grids of more than about 150 cells)."""
        text = "\n".join(grid)
        kept = {GRID_SHA256: grid_sha256(grid)} if grid else {}
        if grid and len(text) <= TAG_VALUE_LIMIT:
            kept[GRID] = text
        parent = self.create_parent(name, {**tags, **kept})
        if grid and GRID not in kept:
            self.client.log_text(parent.run_id, text, GRID_FILE)
        return parent

    @names_the_store
    def find_sweep(self, which: str, grid_digest: str,
                   listed: bool = False) -> Optional[SweepFound]:
        """The parent that `which` names (`last`: the latest with this grid digest) and the
        latest attempt of each of its cells; None when this experiment has no such sweep.
        A sweep that closed FINISHED is read from the records its parent keeps (one file,
        where its children are a thousand runs), its `runs` then None; `listed`: from its
        children's runs, every one listed, whatever its status."""
        from runner.results import cell_records, summary_row

        parent = self._parent(which, grid_digest)
        if parent is None:
            return None
        parent_id, tags = parent.info.run_id, parent.data.tags
        records = None if listed else self._kept_records(parent)
        if records is None:
            children = self.client.search_runs(
                [self.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{parent_id}'",
                max_results=10000)
            latest, _ = latest_attempts(children)
            records = cell_records(latest)
            runs = tuple(run.info.run_id for run in children)
        else:
            runs = None
        pid, host = tags.get("runner.pid", ""), tags.get("runner.host", "")
        alive = None  # another host's process: this one cannot tell
        if host == self.owner_tags["runner.host"]:
            alive = pid.isdigit() and process_started(int(pid)) == tags.get("runner.pid_started")
        return SweepFound(
            parent=RunRef(parent_id, self.experiment_id, parent.info.artifact_uri),
            status=parent.info.status,
            grid=self._grid(parent), owner=f"process {pid or '?'} on {host or '?'}",
            owner_alive=alive,
            attempts={record["job"]: Attempt(record["run_id"], record["status"],
                                             record["config.sha256"]) for record in records},
            runs=runs,
            rows=[summary_row(record) for record in records],
            resumes=int(tags.get("sweep.resumes", "0")))

    @names_the_store
    def reopen_sweep(self, parent_id: str, skipped: int, ran: int, resumes: int) -> None:
        """The parent RUNNING again, owned by this recorder's process; runs left RUNNING by this
        host's processes that are gone (an earlier attempt's) are ended KILLED first."""
        from mlflow.entities import RunTag

        self.reap_orphans()
        parent = self.client.get_run(parent_id)
        for stale in ("jobs.failed_cells", "error"):  # the close to come says them again
            if stale in parent.data.tags:
                self.client.delete_tag(parent_id, stale)
        tags = {**self.owner_tags, "jobs.skipped": str(skipped), "jobs.ran": str(ran),
                "sweep.resumes": str(resumes)}
        self.client.log_batch(parent_id, tags=[RunTag(k, v) for k, v in tags.items()])
        self.client.update_run(parent_id, status="RUNNING")

    def _kept_records(self, parent) -> Optional[list]:
        """The cell records a parent that closed FINISHED keeps (CELLS_FILE), or None."""
        import json

        from runner.results import CELLS_FILE

        if parent.info.status != "FINISHED":
            return None
        try:
            with tempfile.TemporaryDirectory() as directory:
                path = self.client.download_artifacts(parent.info.run_id, CELLS_FILE, directory)
                return json.loads(Path(path).read_text())
        except Exception:  # noqa: BLE001 - none kept (a parent closed before they were)
            return None

    def _parent(self, which: str, grid_digest: str):
        from mlflow.exceptions import MlflowException

        if which == "last":
            found = self.client.search_runs(
                [self.experiment_id], filter_string=f"tags.`{GRID_SHA256}` = '{grid_digest}'",
                order_by=["attributes.start_time DESC"], max_results=1)
            return found[0] if found else None
        try:
            run = self.client.get_run(which)
        except MlflowException as error:
            if error.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
                return None
            raise
        is_parent = "sweep.dir" in run.data.tags and "mlflow.parentRunId" not in run.data.tags
        if (run.info.experiment_id != self.experiment_id or not is_parent
                or run.info.lifecycle_stage != "active"):
            return None
        return run

    def _grid(self, parent) -> Optional[tuple]:
        tags = parent.data.tags
        if GRID in tags:
            return tuple(tags[GRID].split("\n"))
        if GRID_SHA256 not in tags:
            return None  # a sweep recorded before grids were
        with tempfile.TemporaryDirectory() as directory:
            path = self.client.download_artifacts(parent.info.run_id, GRID_FILE, directory)
            return tuple(Path(path).read_text().split("\n"))
