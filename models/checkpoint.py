"""Checkpoints: ``model.safetensors`` (the weights) + ``config.json`` (registry name, config
dataclass, optional metadata such as the training data and test metrics). `load` rebuilds the
model from these two files alone, in eval mode.

The face weight W (how much of the face valence a session adds to the model's sentiment,
`models.expression`) travels with the model: personal calibration saves it in the meta
(``face_weight``). `meta_face_weight` reads it from a meta, `face_weight` decides the W a
process applies with a checkpoint folder: the flag when one was given, else the
checkpoint's, else 0. Training, the engine and the calibration panel all read it here."""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any

import torch
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
    check_finite(state, f"refusing to save {name} to {directory}")
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
    """The model, in eval mode. Raises `CheckpointError` with one line naming what is wrong:
    a config that does not build, weights that are unreadable, that do not match the config
    (the first mismatching tensor, and how many more) or that hold NaN or Inf."""
    directory = Path(directory)
    doc = read_config(directory)
    try:
        model = build(doc["model"], config_from_dict(doc["model"], doc["config"]))
    except Exception as exc:  # noqa: BLE001 - any config the model refuses is the file's fault
        raise CheckpointError(
            f"{directory / CONFIG}: cannot rebuild the model: {_first_line(exc)}") from exc
    weights = directory / WEIGHTS
    if not weights.is_file():
        raise CheckpointError(f"{weights} not found")
    try:
        state = load_file(str(weights), device=map_location)
    except (SafetensorError, OSError) as exc:
        raise CheckpointError(f"{weights} is corrupt or unreadable: {exc}") from exc
    check_state(state, model.state_dict(), f"{weights} does not match {directory / CONFIG}")
    check_finite(state, str(weights))
    model.load_state_dict(state, strict=True)
    logger.debug("loaded %s checkpoint from %s", doc["model"], directory)
    return model.to(map_location).eval()


def check_state(state: dict[str, torch.Tensor], expected: dict[str, torch.Tensor],
                where: str) -> None:
    """Raises `CheckpointError` (one line) unless ``state`` has exactly ``expected``'s
    tensor names and shapes."""
    problems = [f"{k!r} is missing" for k in expected if k not in state]
    problems += [f"{k!r} is not in the model" for k in state if k not in expected]
    problems += [f"{k!r} is {tuple(state[k].shape)} in the weights but "
                 f"{tuple(v.shape)} for the config"
                 for k, v in expected.items() if k in state and state[k].shape != v.shape]
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise CheckpointError(f"{where}: {problems[0]}{more}")


def check_finite(state: dict[str, torch.Tensor], where: str) -> None:
    """Raises `CheckpointError` (one line) when any floating tensor holds NaN or Inf."""
    bad = [(k, int((~torch.isfinite(v)).sum())) for k, v in state.items()
           if v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if bad:
        name, count = bad[0]
        more = f" (and {len(bad) - 1} more tensors)" if len(bad) > 1 else ""
        raise CheckpointError(
            f"{where}: tensor {name!r} has {count} non-finite values (NaN or Inf){more}")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def read_meta(directory: str | Path) -> dict[str, Any]:
    """The checkpoint's metadata (training data, metrics, selection), as saved."""
    meta = read_config(directory).get("meta") or {}
    if not isinstance(meta, dict):
        raise CheckpointError(f"{Path(directory) / CONFIG}: meta is not an object")
    return dict(meta)


FACE_WEIGHT_LIMIT = 6.0
FACE_WEIGHT_KEY = "face_weight"  # in a personal checkpoint's meta


def meta_face_weight(meta: dict[str, Any]) -> float | None:
    """The face weight a checkpoint's meta (`read_meta`) carries, None when it has none (a
    model calibration did not make). Raises ValueError for a W that is not a number within
    +-FACE_WEIGHT_LIMIT."""
    if FACE_WEIGHT_KEY not in meta:
        return None
    w = meta[FACE_WEIGHT_KEY]
    if isinstance(w, bool) or not isinstance(w, (int, float)) or not math.isfinite(w) or abs(
            w) > FACE_WEIGHT_LIMIT:
        raise ValueError(f"the checkpoint's {FACE_WEIGHT_KEY} must be a number in "
                         f"[-{FACE_WEIGHT_LIMIT:g}, {FACE_WEIGHT_LIMIT:g}], got {w!r}")
    return float(w)


def face_weight(directory: str | Path, override: float | None = None) -> float:
    """The W a process applies with the checkpoint in ``directory``: ``override`` (a
    --face-weight flag) when given, else the W the checkpoint carries, else 0. Raises
    `CheckpointError` for an unreadable config and ValueError for an invalid W (either
    one's)."""
    if override is not None:
        if not (math.isfinite(override) and abs(override) <= FACE_WEIGHT_LIMIT):
            raise ValueError(f"a face weight must be a number in [-{FACE_WEIGHT_LIMIT:g}, "
                             f"{FACE_WEIGHT_LIMIT:g}], got {override!r}")
        return float(override)
    return meta_face_weight(read_meta(directory)) or 0.0
