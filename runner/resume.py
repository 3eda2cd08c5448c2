"""A sweep resumed (`resume=last` or `resume=RUN_ID`): which of its cells run again, under
the job numbers they had, or the one line that refuses the resume. Pure Python: the store's
answer (a SweepFound) comes from the recording process. (Not under hydra_plugins/, whose
modules Hydra's plugin scan runs a second time, making a second ResumeRefused class.)"""

from dataclasses import dataclass
from typing import List, Optional, Sequence

from runner.identity import RESUME, cell_key, is_resume


class ResumeRefused(Exception):
    """Why this resume cannot go on: one line, starting with `resume:`."""


def split_resume(cells: List[tuple]) -> tuple:
    """(the resume asked for, or None; the cells without it): `resume` is no part of a cell."""
    values = {override.split("=", 1)[1] for cell in cells for override in cell
              if is_resume(override)}
    if len(values) > 1:
        raise ResumeRefused(f"{RESUME}: one sweep at a time, not {', '.join(sorted(values))}")
    value = values.pop() if values else None
    cells = [tuple(override for override in cell if not is_resume(override)) for cell in cells]
    return (None if value in (None, "", "null") else value), cells


@dataclass(frozen=True)
class Plan:
    """The cells to launch, each with its job number, in job order; how many are kept."""
    run: tuple  # of (job number, cell)
    skipped: int = 0

    @classmethod
    def whole(cls, cells: Sequence[tuple]) -> "Plan":
        return cls(tuple(enumerate(cells)))

    def jobs(self) -> str:
        """`0-2, 5, 7-8`: the job numbers to run, as spans of consecutive ones."""
        spans = []
        for job, _ in self.run:
            if spans and spans[-1][1] == job - 1:
                spans[-1][1] = job
            else:
                spans.append([job, job])
        return ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in spans)

    def groups(self, max_batch_size: Optional[int] = None) -> list:
        """[(first job number, [cell, ...])]: one launch a run of consecutive job numbers, as a
        launcher numbers its jobs from the first it is given."""
        groups = []
        for job, cell in self.run:
            last = groups[-1] if groups else None
            if (last and last[0] + len(last[1]) == job
                    and (not max_batch_size or len(last[1]) < max_batch_size)):
                last[1].append(list(cell))
            else:
                groups.append((job, [list(cell)]))
        return groups


def plan_resume(found, cells: Sequence[tuple], digests: dict, experiment: str,
                which: str) -> Plan:
    """What a resume of the sweep `found` runs: each cell whose latest run did not finish, or
    finished with another config (its `config.sha256`); ResumeRefused when it cannot."""
    if found is None:
        if which == "last":
            raise ResumeRefused(f"{RESUME}: no earlier sweep of this grid in experiment "
                                f"{experiment}; run it without resume first")
        raise ResumeRefused(f"{RESUME}: no sweep with parent run {which} in experiment "
                            f"{experiment}")
    sweep = found.parent.run_id
    if found.grid is None:
        raise ResumeRefused(f"{RESUME}: sweep {sweep} was recorded without its grid; run it "
                            f"again without resume")
    by_key = {cell_key(cell): cell for cell in cells}
    added = sorted(set(by_key) - set(found.grid))
    missing = sorted(set(found.grid) - set(by_key))
    if added or missing:
        listed = [f"{label} {', '.join(repr(cell) for cell in changed)}"
                  for label, changed in (("added", added), ("missing", missing)) if changed]
        raise ResumeRefused(f"{RESUME}: this grid is not the grid of sweep {sweep}: "
                            f"{'; '.join(listed)}")
    if found.status == "RUNNING" and found.owner_alive is not False:
        where = "" if found.owner_alive else " (another host's: it cannot be checked from here)"
        raise ResumeRefused(f"{RESUME}: sweep {sweep} is still running in {found.owner}{where}; "
                            f"let it end, or stop it, then resume")
    run = []
    for job, key in enumerate(found.grid):
        attempt = found.attempts.get(job)
        if (attempt is None or attempt.status != "FINISHED"
                or attempt.config_sha256 != digests[key]):
            run.append((job, by_key[key]))
    return Plan(tuple(run), len(found.grid) - len(run))
