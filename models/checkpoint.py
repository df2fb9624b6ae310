"""Checkpoints: ``model.safetensors`` (the weights) + ``config.json`` (registry name, config
dataclass, optional metadata such as the training data and test metrics). `load` rebuilds the
model from these two files alone, in eval mode."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from models.registry import build, config_from_dict, config_to_dict

FORMAT = 1
WEIGHTS = "model.safetensors"
CONFIG = "config.json"

logger = logging.getLogger(__name__)


class CheckpointError(RuntimeError):
    pass


def save(model: nn.Module, directory: str | Path, meta: dict[str, Any] | None = None) -> Path:
    name = model.config.name
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    save_file(state, str(directory / WEIGHTS))
    doc = {"format": FORMAT, "model": name, "config": config_to_dict(model.config),
           "meta": meta or {}}
    (directory / CONFIG).write_text(json.dumps(doc, indent=2) + "\n")
    logger.info("saved %s checkpoint to %s", name, directory)
    return directory


def read_config(directory: str | Path) -> dict[str, Any]:
    path = Path(directory) / CONFIG
    if not path.is_file():
        raise CheckpointError(f"{path} not found: a checkpoint folder needs {CONFIG} and {WEIGHTS}")
    try:
        doc = json.loads(path.read_text())
        if doc.get("format") != FORMAT:
            raise CheckpointError(f"{path}: unsupported checkpoint format {doc.get('format')!r}")
        return doc
    except (json.JSONDecodeError, UnicodeDecodeError, AttributeError) as exc:
        raise CheckpointError(f"{path} is not a valid checkpoint config: {exc}") from exc


def load(directory: str | Path, map_location: str = "cpu") -> nn.Module:
    directory = Path(directory)
    doc = read_config(directory)
    try:
        model = build(doc["model"], config_from_dict(doc["model"], doc["config"]))
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{directory / CONFIG}: cannot rebuild the model: {exc}") from exc
    weights = directory / WEIGHTS
    if not weights.is_file():
        raise CheckpointError(f"{weights} not found")
    try:
        state = load_file(str(weights), device=map_location)
    except (SafetensorError, OSError) as exc:
        raise CheckpointError(f"{weights} is corrupt or unreadable: {exc}") from exc
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise CheckpointError(f"{weights} does not match {directory / CONFIG}: {exc}") from exc
    logger.debug("loaded %s checkpoint from %s", doc["model"], directory)
    return model.to(map_location).eval()


def read_meta(directory: str | Path) -> dict[str, Any]:
    """The checkpoint's metadata (training data, metrics, selection), as saved."""
    meta = read_config(directory).get("meta") or {}
    if not isinstance(meta, dict):
        raise CheckpointError(f"{Path(directory) / CONFIG}: meta is not an object")
    return dict(meta)
