"""`python -m runner --help`: the knobs with their comments, the stacks with the picture each
model file opens with, the sweeps, and examples; read from the config files themselves."""

import re
from pathlib import Path

USAGE = """\
runner: Keras recurrent stacks described in Hydra config. Every shape is known before Keras
runs, every number is checked against a NumPy reference, every run is recorded in MLflow.

  python -m runner [model=STACK] [KEY=VALUE ...]     one run
  python -m runner -m KEY=A,B [KEY=C,D ...]          a sweep: one run per combination
  python -m runner mode=explain [-m] ...             shapes and parameter counts only
  python -m runner -m ... resume=last                the same sweep: only its cells not FINISHED
  python -m runner.results [--pivot ROW COL]         the last sweep as a table

Examples:
  python -m runner model=bilstm return_sequences=true
  python -m runner -m model=lstm,gru return_sequences=false,true
  python -m runner -m sweep=seed mode=explain
"""
FOOTER = """\
Any key of the composed config can be set, e.g. model.layers.0.units=8 (see them all with
--cfg job); a key the model file does not set is added with +, e.g.
+model.layers.0.dropout=0.1. Your own stacks: --config-dir=DIR with DIR/model/NAME.yaml.
Hydra's own flags: --hydra-help."""

_KNOB = re.compile(r"^([a-z_]+): *(\S+) +# *(.*)$")


def _sources() -> list:
    """The config directories on Hydra's search path, the user's --config-dir first: folders
    (`file://`) and packages (`pkg://`, the runner's own conf/ where it is installed)."""
    from importlib.resources import files

    from hydra.core.hydra_config import HydraConfig

    found = []
    for source in HydraConfig.get().runtime.config_sources:
        if source.schema == "file" and Path(source.path).is_dir():
            found.append(Path(source.path))
        elif source.schema == "pkg" and source.provider == "main":
            found.append(files(source.path))
    return found


def _knobs(path, prefix: str = "") -> list:
    """`  key=value   comment` for each commented top-level key of a config file."""
    lines = []
    for line in path.read_text().splitlines():
        match = _KNOB.match(line)
        if match and not line.startswith(("defaults", "hydra")):
            key, value, comment = match.groups()
            lines.append(f"  {prefix}{key}={value}".ljust(30) + f" {comment}")
    return lines


def _pictures(group: str) -> list:
    """`  name   the file's first comment` for every option of a config group."""
    seen, lines = set(), []
    for source in _sources():
        folder = source / group
        if not folder.is_dir():
            continue
        for path in sorted(folder.iterdir(), key=lambda path: path.name):
            name = path.name.removesuffix(".yaml")
            if name == path.name or name in seen:
                continue
            seen.add(name)
            comments = [line.lstrip("# ").rstrip() for line in path.read_text().splitlines()
                        if line.startswith("#") and "@package" not in line]
            picture = re.sub(r"\s{2,}", " ", comments[0]) if comments else ""
            lines.append(f"  {name}".ljust(22) + f" {picture}")
    return lines


def _allowed() -> list:
    """The allowed `_target_`s, by module, as wrapped lines."""
    import textwrap

    from runner.vocabulary import ALLOWED_TARGETS

    lines = []
    for module in sorted({target.rsplit(".", 1)[0] for target in ALLOWED_TARGETS}):
        names = ", ".join(t.rsplit(".", 1)[1] for t in ALLOWED_TARGETS
                          if t.rsplit(".", 1)[0] == module)
        lines += textwrap.wrap(f"{module}: {names}", 92, initial_indent="  ",
                               subsequent_indent="    ")
    return lines


def help_text() -> str:
    """The whole of `--help`, with `$` doubled for Hydra's template."""
    main = next((s for s in _sources() if (s / "config.yaml").is_file()), None)
    parts = [USAGE, "Knobs (conf/config.yaml):", *_knobs(main / "config.yaml"),
             "", "Data (data.KEY=...):", *_knobs(main / "data" / "default.yaml", "data."),
             "", "Tracking (tracking.KEY=...):",
             *_knobs(main / "tracking" / "default.yaml", "tracking."),
             "", "Stacks (model=...):", *_pictures("model"),
             "", "Sweeps (-m sweep=...):", *_pictures("sweep"),
             "", "What a stack may name (_target_), and nothing else:", *_allowed(),
             "", FOOTER]
    return "\n".join(parts).replace("$", "$$")
