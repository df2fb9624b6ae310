"""Record a session's feature stream with the user's own labels, for personal calibration.

The dashboard's `realtime.calibration.controller.Calibrator` subscribes to the pipeline's
windows (`realtime.pipeline.Pipeline.subscribe`): while it records, every window the live
model sees passes through `SessionRecorder.add`. While the user holds a label (a slider value
in [-3, 3], or thumbs up / down = +2 / -2, set with `set_label`), each window is kept with that
label, at most one per ``min_interval_s`` of session time, at most ``max_samples`` (the
oldest dropped and counted), with what the pipeline showed beside it: the model's own
sentiment, the face valence and the 7 expression probabilities (NaN without a face). `save`
writes the `models.data.sessions` session format: features only -- never audio samples,
video frames or words. Then

    python -m models.calibrate --session FILE

fine-tunes the voice and face branches, fits the face weight and saves a personal model.

Never reads the clock: each window comes with its session time ``t_s`` (the window's end on
the pipeline's clock; when that clock starts again -- a new pipeline after a source switch
or a looped recording -- the recorder shifts it so its times keep increasing). Thread-safe
(the tick thread adds, the UI thread labels and saves).

Where the dashboard keeps sessions and personal models: `realtime.personal.storage`.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np

from models.data.sessions import N_EXPRESSIONS, Session, write_session

THUMBS_UP, THUMBS_DOWN = 2.0, -2.0

log = logging.getLogger(__name__)


def label_from_thumbs(up: bool) -> float:
    return THUMBS_UP if up else THUMBS_DOWN


class _Sample(NamedTuple):
    t_s: float
    label: float
    text: np.ndarray
    audio: np.ndarray
    video: np.ndarray
    model_sentiment: float
    face_valence: float
    expression: np.ndarray


class SessionRecorder:
    def __init__(self, max_samples: int = 3000, min_interval_s: float = 0.5) -> None:
        self.max_samples = int(max_samples)
        self.min_interval_s = float(min_interval_s)
        self._samples: deque[_Sample] = deque()
        self._label: float | None = None
        self._last_t_s = -np.inf
        self._shift_s = 0.0  # added to t_s once its clock has started again
        self._lock = threading.Lock()
        self.dropped = 0  # kept windows pushed out by newer ones (over max_samples)
        self.unlabelled = 0  # windows offered while no label was set (not kept)

    # -- the user's side ---------------------------------------------------------------
    def set_label(self, value: float | None) -> None:
        """The label for the windows from now on, clipped to [-3, 3]; None stops labelling."""
        if value is not None and not np.isfinite(value):
            raise ValueError(f"a label must be a finite number, got {value}")
        with self._lock:
            self._label = None if value is None else float(np.clip(value, -3.0, 3.0))

    @property
    def label(self) -> float | None:
        return self._label

    def __len__(self) -> int:
        return len(self._samples)

    # -- the pipeline's side -----------------------------------------------------------
    def add(self, text: np.ndarray, audio: np.ndarray, video: np.ndarray, t_s: float, *,
            model_sentiment: float = float("nan"), face_valence: float = float("nan"),
            expression: Sequence[float] | None = None) -> bool:
        """One window (T, D_m) per modality at session time ``t_s``, with the model's own
        sentiment for it, the face valence and the 7 expression probabilities (NaN / None:
        no face); kept when a label is set and at least ``min_interval_s`` passed since the
        last kept one. Returns whether it was kept."""
        if expression is not None and len(expression) != N_EXPRESSIONS:
            raise ValueError(f"expression needs {N_EXPRESSIONS} probabilities, got "
                             f"{len(expression)}")
        raw_s = float(t_s)
        with self._lock:
            t_s = raw_s + self._shift_s
            if t_s < self._last_t_s:  # a new clock: continue after the last kept window
                self._shift_s = self._last_t_s + self.min_interval_s - raw_s
                t_s = raw_s + self._shift_s
            if self._label is None:
                self.unlabelled += 1
                return False
            if t_s - self._last_t_s < self.min_interval_s:
                return False
            if len(self._samples) >= self.max_samples:
                self._samples.popleft()
                self.dropped += 1
            self._samples.append(_Sample(
                t_s, self._label, *(np.array(x, np.float32, copy=True)
                                    for x in (text, audio, video)),
                float(model_sentiment), float(face_valence),
                np.full(N_EXPRESSIONS, np.nan, np.float32) if expression is None
                else np.asarray(expression, np.float32)))
            self._last_t_s = t_s
            return True

    def session(self) -> Session:
        with self._lock:
            samples = list(self._samples)
        return Session(
            tuple(s.text for s in samples), tuple(s.audio for s in samples),
            tuple(s.video for s in samples), np.array([s.label for s in samples], np.float32),
            np.array([s.t_s for s in samples], np.float64),
            model_sentiment=np.array([s.model_sentiment for s in samples], np.float32),
            face_valence=np.array([s.face_valence for s in samples], np.float32),
            expression=np.array([s.expression for s in samples], np.float32).reshape(
                -1, N_EXPRESSIONS))

    def save(self, path: str | Path) -> Path:
        """Writes the labelled windows (features only) for `python -m models.calibrate`."""
        saved = write_session(path, self.session())
        log.info("saved %d labelled windows to %s", len(self), saved)
        return saved

    def clear(self) -> None:
        """Forgets the kept windows and the counters (the label stays)."""
        with self._lock:
            self._samples.clear()
            self._last_t_s = -np.inf
            self._shift_s = 0.0
            self.dropped = self.unlabelled = 0
