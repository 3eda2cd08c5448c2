"""The files a run keeps, written into its output directory; none for a run that keeps none."""

import io
import json
import shutil
from pathlib import Path

import numpy as np
import yaml


def write_artifacts(directory: Path, config: dict, model, inputs: np.ndarray, outputs: dict,
                    shapes: dict, device: dict) -> None:
    """config.yaml, shapes.json, device.json, predictions.npz and model_summary.txt."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    (directory / "shapes.json").write_text(json.dumps(shapes, indent=2))
    (directory / "device.json").write_text(json.dumps(device, indent=2))
    np.savez(directory / "predictions.npz", input=inputs, **outputs)
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
