"""Ragged-sequence ``.npz`` files: the packing shared by spoken MOSI (models.data.spoken) and
the personal calibration sessions, and the calibration session format itself.

`pack_steps` stores per-sample (T_i, D_m) sequences as one float32 array per modality plus
``offsets`` (N+1,) int64; `save_npz_atomic` writes through a temporary file renamed into place.

Calibration session file, written by the dashboard (`realtime.calibration.recorder`) and read
by `models.training.calibrate` (models/ never imports realtime/, so the format is defined
here): one ``.npz``

| array | shape / dtype | meaning |
| --- | --- | --- |
| ``text``, ``audio``, ``video`` | (S, D_m) float32 | every sample's window steps, concatenated |
| ``offsets`` | (N+1,) int64 | sample i owns steps offsets[i]:offsets[i+1] |
| ``labels`` | (N,) float32 | the user's label for that window, in [-3, 3] |
| ``t_s`` | (N,) float64 | session time of the window's end, seconds |
| ``model_sentiment`` | (N,) float32 | the live model's own sentiment (NaN: unknown) |
| ``face_valence`` | (N,) float32 | face valence in [-1, 1] (NaN: no face) |
| ``expression`` | (N, 7) float32 | expression probabilities, EXPRESSIONS order (NaN: no face) |
| ``meta`` | () str | JSON: format, dims |

Format 2 added the last three arrays; a format 1 file (without them) still reads, with
NaN there (no face: calibration then leaves the face weight at 0).

Features only: no audio samples, no video frames, no words.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from models.base import InputDims

FORMAT = 2
READABLE_FORMATS = (1, 2)
REQUIRED_KEYS = ("text", "audio", "video", "offsets", "labels", "t_s", "meta")  # format 1 on
FACE_KEYS = ("model_sentiment", "face_valence", "expression")  # format 2 on
SESSION_KEYS = REQUIRED_KEYS + FACE_KEYS  # what `write_session` writes
N_EXPRESSIONS = 7

logger = logging.getLogger(__name__)


def pack_steps(text: Sequence[np.ndarray], audio: Sequence[np.ndarray],
               video: Sequence[np.ndarray]) -> dict[str, np.ndarray]:
    """Ragged per-sample (T_i, D_m) sequences as one float32 array per modality plus
    ``offsets`` (N+1,) int64: sample i owns steps offsets[i]:offsets[i+1]."""
    steps = [len(t) for t in text]
    return {
        "text": np.concatenate(text).astype(np.float32),
        "audio": np.concatenate(audio).astype(np.float32),
        "video": np.concatenate(video).astype(np.float32),
        "offsets": np.concatenate([[0], np.cumsum(steps)]).astype(np.int64),
    }


def unpack_steps(arrays: Mapping[str, np.ndarray]) -> tuple[tuple[np.ndarray, ...], ...]:
    """Inverse of `pack_steps`: (text, audio, video), each a tuple of per-sample arrays."""
    off = arrays["offsets"]
    cut = [slice(int(a), int(b)) for a, b in zip(off[:-1], off[1:], strict=True)]
    return tuple(tuple(arrays[m][c] for c in cut) for m in ("text", "audio", "video"))


def save_npz_atomic(path: Path, arrays: dict[str, np.ndarray]) -> Path:
    """Writes ``arrays`` to ``path`` through a temporary file renamed into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez(tmp, **arrays)
    os.replace(tmp, path)
    return path


class SessionError(ValueError):
    """A session file is missing, unreadable or unusable."""


@dataclass(frozen=True)
class Session:
    """Labelled windows: per sample (T_i, D_m) arrays, a label in [-3, 3] and a time; and
    per sample what the live pipeline showed beside the model input: the model's own
    sentiment, the face valence and the 7 expression probabilities (NaN where unknown or
    without a face; None given: all NaN)."""

    text: tuple[np.ndarray, ...]
    audio: tuple[np.ndarray, ...]
    video: tuple[np.ndarray, ...]
    labels: np.ndarray
    t_s: np.ndarray
    model_sentiment: np.ndarray | None = None
    face_valence: np.ndarray | None = None
    expression: np.ndarray | None = None

    def __post_init__(self) -> None:
        n = len(self.labels)
        for name, shape in (("model_sentiment", (n,)), ("face_valence", (n,)),
                            ("expression", (n, N_EXPRESSIONS))):
            value = getattr(self, name)
            value = (np.full(shape, np.nan, np.float32) if value is None
                     else np.asarray(value, np.float32))
            if value.shape != shape:
                raise SessionError(f"session {name} has shape {value.shape}, expected {shape}")
            object.__setattr__(self, name, value)

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def dims(self) -> InputDims:
        return InputDims(self.text[0].shape[1], self.audio[0].shape[1], self.video[0].shape[1])


def write_session(path: str | Path, session: Session) -> Path:
    if not len(session):
        raise SessionError("the session has no labelled windows to save")
    arrays = pack_steps(session.text, session.audio, session.video)
    arrays.update(
        labels=np.clip(np.asarray(session.labels, np.float32), -3, 3),
        t_s=np.asarray(session.t_s, np.float64),
        **{k: getattr(session, k) for k in FACE_KEYS},
        meta=np.asarray(json.dumps({"format": FORMAT, "dims": session.dims.as_tuple()})))
    out = save_npz_atomic(Path(path), arrays)
    logger.info("wrote a session of %d labelled windows to %s", len(session), out)
    return out


def read_session(path: str | Path) -> Session:
    path = Path(path)
    if not path.is_file():
        raise SessionError(f"session file {path} not found")
    try:
        with np.load(path, allow_pickle=False) as f:
            z = {k: f[k] for k in REQUIRED_KEYS}
            face = {k: f[k] for k in FACE_KEYS if k in f.files}
        meta = json.loads(str(z["meta"]))
    except (OSError, ValueError, KeyError, TypeError, json.JSONDecodeError) as exc:
        raise SessionError(f"{path} is not a valid session file: {exc}") from exc
    if meta.get("format") not in READABLE_FORMATS:
        raise SessionError(f"{path}: session format {meta.get('format')!r}, expected one of "
                           f"{READABLE_FORMATS}")
    try:
        session = Session(*unpack_steps(z), z["labels"].astype(np.float32),
                          z["t_s"].astype(np.float64), **face)
    except (ValueError, KeyError, TypeError) as exc:  # SessionError is a ValueError
        raise SessionError(f"{path} is not a valid session file: {exc}") from exc
    if not len(session) or len(session.t_s) != len(session):
        raise SessionError(f"{path}: no labelled windows, or arrays of different lengths")
    return session
