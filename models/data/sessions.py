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

Features only: no audio samples, no video frames, no words. Written with mode 0600 (the
dashboard keeps them in a 0700 folder).
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


def save_npz_atomic(path: Path, arrays: dict[str, np.ndarray], mode: int = 0o644) -> Path:
    """Writes ``arrays`` to ``path`` through a temporary file renamed into place; the file
    is created with permissions ``mode`` (0o600: readable by its owner only)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp.npz")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    os.fchmod(fd, mode)  # also when the file was already there
    with os.fdopen(fd, "wb") as f:
        np.savez(f, **arrays)
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
    out = save_npz_atomic(Path(path), arrays, mode=0o600)  # personal data: owner only
    logger.info("wrote a session of %d labelled windows to %s", len(session), out)
    return out


def read_session(path: str | Path) -> Session:
    """The session in ``path``, fully checked (`check_session_arrays`); any problem raises
    `SessionError` with one line naming it."""
    path = Path(path)
    if not path.is_file():
        raise SessionError(f"session file {path} not found")
    try:
        with np.load(path, allow_pickle=False) as f:
            missing = [k for k in REQUIRED_KEYS if k not in f.files]
            if missing:
                raise SessionError(f"{path}: not a valid session file: no {', '.join(missing)}")
            z = {k: f[k] for k in SESSION_KEYS if k in f.files}
    except SessionError:
        raise
    except Exception as exc:  # noqa: BLE001 - zip, npy and pickle refusals alike: a bad file
        raise SessionError(f"{path} is not a valid session file: "
                           f"{type(exc).__name__}: {_first_line(exc)}") from exc
    try:
        return check_session_arrays(z)
    except SessionError as exc:
        raise SessionError(f"{path}: {exc}") from None


def check_session_arrays(z: Mapping[str, np.ndarray]) -> Session:
    """A `Session` from the file's arrays, refusing anything training could be poisoned
    by: a bad ``meta``, wrong ranks, dims or dtypes, non-finite features, labels outside
    [-3, 3] or not finite, times not finite, offsets that do not start at 0, decrease,
    leave a sample empty or do not end at the number of steps; and (format 2) face arrays
    of the wrong shape, or values that are neither NaN (unknown, no face) nor in range."""
    meta = _meta(z["meta"])
    dims = meta["dims"]
    steps = None
    for name, dim in zip(("text", "audio", "video"), dims, strict=True):
        x = z[name]
        if x.ndim != 2 or x.dtype.kind != "f":
            raise SessionError(f"{name} must be a 2-D float array, got {x.dtype} {x.shape}")
        if x.shape[1] != dim:
            raise SessionError(f"{name} has {x.shape[1]} features per step; meta says {dim}")
        if steps is not None and x.shape[0] != steps:
            raise SessionError(f"{name} has {x.shape[0]} steps; text has {steps}")
        steps = x.shape[0]
        if not np.isfinite(x).all():
            raise SessionError(f"{name} holds {int((~np.isfinite(x)).sum())} NaN or Inf values")
    labels, t_s, offsets = z["labels"], z["t_s"], z["offsets"]
    n = len(labels) if labels.ndim == 1 else -1
    if n < 1:
        raise SessionError(f"labels must be a non-empty 1-D array, got shape {labels.shape}")
    if labels.dtype.kind != "f" or not np.isfinite(labels).all():
        raise SessionError("labels must be finite numbers")
    if np.abs(labels).max() > 3.0:
        raise SessionError(f"labels must lie in [-3, 3], got {float(np.abs(labels).max()):g}")
    if t_s.shape != (n,) or t_s.dtype.kind != "f" or not np.isfinite(t_s).all():
        raise SessionError(f"t_s must be {n} finite times, got {t_s.dtype} {t_s.shape}")
    if offsets.shape != (n + 1,) or offsets.dtype.kind not in "iu":
        raise SessionError(f"offsets must be {n + 1} integers, got {offsets.dtype} "
                           f"{offsets.shape}")
    if offsets[0] != 0 or offsets[-1] != steps or (np.diff(offsets) < 1).any():
        raise SessionError(f"offsets must rise from 0 to {steps} steps, one or more per "
                           "sample")
    return Session(*unpack_steps(z), labels.astype(np.float32), t_s.astype(np.float64),
                   **_face_arrays(z, n, meta["format"]))


def _face_arrays(z: Mapping[str, np.ndarray], n: int, version: int) -> dict[str, np.ndarray]:
    """Format 2's per-window arrays beside the model input, checked (format 1: none)."""
    if version < 2:
        return {}
    missing = [k for k in FACE_KEYS if k not in z]
    if missing:
        raise SessionError(f"format {version} needs {', '.join(missing)}")
    out = {}
    for name, shape, low, high in (("model_sentiment", (n,), -3.0, 3.0),
                                   ("face_valence", (n,), -1.0, 1.0),
                                   ("expression", (n, N_EXPRESSIONS), 0.0, 1.0)):
        x = z[name]
        if x.shape != shape or x.dtype.kind != "f":
            raise SessionError(f"{name} must be {shape} floats, got {x.dtype} {x.shape}")
        known = x[~np.isnan(x)]
        if known.size and not (np.isfinite(known).all() and low <= known.min()
                               and known.max() <= high):
            raise SessionError(f"{name} values must be NaN or within [{low:g}, {high:g}]")
        out[name] = x
    return out


def _meta(raw: np.ndarray) -> dict:
    try:
        meta = json.loads(str(raw)) if raw.ndim == 0 and raw.dtype.kind == "U" else None
    except json.JSONDecodeError:
        meta = None
    if not isinstance(meta, dict):
        raise SessionError("meta must be a JSON object")
    if meta.get("format") not in READABLE_FORMATS:
        raise SessionError(f"session format {meta.get('format')!r}, expected one of "
                           f"{READABLE_FORMATS}")
    dims = meta.get("dims")
    if not (isinstance(dims, list) and len(dims) == 3
            and all(isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in dims)):
        raise SessionError(f"meta dims must be three positive integers, got {dims!r}")
    return meta


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else ""
