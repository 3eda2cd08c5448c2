"""What makes a job the same job, and a grid the same grid: digests computed the same way by
the job (its run's `config.sha256` tag) and by the sweeper (which cells a resume skips).

Pure Python: importing it costs nothing."""

import hashlib
import json
import re
from typing import Iterable, Sequence

from runner.vocabulary import spell_overrides

RESUME = "resume"  # the knob that resumes a sweep: never part of a cell's identity

# Not what a job computes: `hydra` is where its files go; `resume` how it was started; and
# `tracking` where its run is recorded, not what the run is (its default `uri` holds the working
# directory, so a sweep resumed from another directory, or on another node of a cluster, against
# the same tracking server would otherwise run every cell again)
NOT_IDENTITY = ("hydra", RESUME, "tracking")


def config_sha256(config: dict) -> str:
    """The digest of a resolved job config (plain data, as `JobSpec.config` holds it), keys
    sorted, without the keys that say where or how it runs rather than what it computes."""
    job = {key: value for key, value in config.items() if key not in NOT_IDENTITY}
    text = json.dumps(job, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(text.encode()).hexdigest()


def job_name(hydra_job) -> str:
    """A job's name (its run's): its overrides as typed, `${...}` in them left unresolved and
    without the backslashes Hydra escapes `:,[]{}()=` with, spelled as `spell_overrides` spells
    them; `defaults` when there are none."""
    from omegaconf import OmegaConf

    escaped = OmegaConf.to_container(hydra_job, resolve=False)["override_dirname"]
    return spell_overrides(unescaped(escaped)) or "defaults"


def unescaped(overrides: str) -> str:
    """Overrides as typed, without the backslashes Hydra adds when it writes them back."""
    return re.sub(r"\\(.)", r"\1", overrides)


def is_resume(override: str) -> bool:
    """`resume=last`, `+resume=...`: the override that says how a sweep starts."""
    return override.split("=", 1)[0].lstrip("+~") == RESUME


def cell_key(overrides: Sequence[str]) -> str:
    """A cell as its overrides spell it, in any order they were typed, booleans as everywhere
    else (Hydra hands a swept `false` on as `False`): `model=lstm return_sequences=false`."""
    return " ".join(sorted(spell_overrides(override) for override in overrides
                           if not is_resume(override)))


def grid_sha256(cells: Iterable[str]) -> str:
    """The digest of a grid: the set of its cells' keys (`cell_key`), in any order."""
    return hashlib.sha256("\n".join(sorted(set(cells))).encode()).hexdigest()
