"""The files a run keeps, written into its output directory."""

import io
import json
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
