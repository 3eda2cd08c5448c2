"""The files a run keeps, written into its output directory; none for a run that keeps none."""

import io
import json
import shutil
from pathlib import Path

import numpy as np
import yaml


def write_artifacts(directory: Path, config: dict, model, batches: list, predictions: list,
                    shapes: dict, device: dict) -> None:
    """config.yaml, shapes.json, device.json, predictions.npz and model_summary.txt.

    predictions.npz holds the input (`input`, or `input.<name>` for each of several) and every
    named output; with several batches each array gains a first axis, one entry a batch."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    (directory / "shapes.json").write_text(json.dumps(shapes, indent=2))
    (directory / "device.json").write_text(json.dumps(device, indent=2))
    arrays = {}
    for batch, outputs in zip(batches, predictions):
        named = {("input" if len(batch) == 1 else f"input.{k}"): v for k, v in batch.items()}
        for name, array in {**named, **outputs}.items():
            arrays.setdefault(name, []).append(array)
    np.savez(directory / "predictions.npz",
             **{k: v[0] if len(v) == 1 else np.stack(v) for k, v in arrays.items()})
    summary = io.StringIO()
    model.summary(print_fn=lambda line, line_break=True: summary.write(line + "\n"))
    (directory / "model_summary.txt").write_text(summary.getvalue())


def remove_directory(directory: Path, up_to: Path) -> None:
    """Remove `directory`, then each parent left empty, up to (not including) `up_to`: a
    refused command or an explanation leaves no files behind."""
    shutil.rmtree(directory, ignore_errors=True)
    for parent in directory.parents:
        if parent == up_to or up_to not in parent.parents:
            break
        try:
            parent.rmdir()  # only when empty
        except OSError:
            break
