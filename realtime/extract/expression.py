"""Facial expression per video frame: the FER2013 mini-Xception (`models.expression`) on a
face crop cut from the landmarks the face extractor already found (no second detector).

The crop (`face_crop`): the landmarks' bounding box, made square around its centre and
widened by ``margin`` of its side on each side, cut from the full-resolution frame (black
outside the picture, as the ``fer`` package pads), converted to grey (ITU-R 601 weights, as
OpenCV's RGB2GRAY) and resized to 64x64.

`ExpressionExtractor` is a push/poll stage: `FaceExtractor` pushes one `FaceCrop` per frame
(``grey`` None when the frame had no face) with `insert_crop`; `process_iter` classifies
the queued crops in one batch and returns `FeatureFrames` of ``EXPRESSION_DIM`` = 8 columns:
the 7 class probabilities (`EXPRESSIONS` order) and ``face_present``. A frame without a face
is a row of zeros with face_present = 0. At most ``max_frames`` crops wait (oldest dropped,
counted in ``drops``). It never reads the clock: ``computed_at_s`` is ``now_s`` plus the
compute time when the caller passes ``now_s``, else the newest crop's capture time.

Rate (``max_rate_hz``, None: every crop): the expression panel shows the mean of the last
0.5 s, so a few classifications a second carry it. Media time is cut in slots of
1/``max_rate_hz`` s (`RateGate`); the first crop of a slot is classified, the others are
let go before any work (`wants_crop`: the face extractor does not even cut them) and counted
in ``decimated``. The choice depends on the crops' times only, so a replay is deterministic.
`set_max_rate_hz` changes it (a session under load, `realtime.load.LoadGovernor`).
"""

from __future__ import annotations

import logging
import math
from collections import deque
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from models.expression import EXPRESSIONS, INPUT_SIDE, MiniXception
from realtime.clock import perf_s
from realtime.types import FeatureFrames

log = logging.getLogger(__name__)

FEATURE_NAMES: tuple[str, ...] = (*EXPRESSIONS, "face_present")
EXPRESSION_DIM = len(FEATURE_NAMES)
FACE_PRESENT_INDEX = EXPRESSION_DIM - 1
CROP_MARGIN = 0.1
_GREY_WEIGHTS = np.array([0.299, 0.587, 0.114], np.float32)


@dataclass(frozen=True)
class FaceCrop:
    """One frame's face: ``grey`` (64, 64) uint8, or None when the frame had no face."""

    t_s: float
    grey: np.ndarray | None
    captured_at_s: float


def crop_box(points_xy: np.ndarray, margin: float = CROP_MARGIN) -> tuple[int, int, int]:
    """(x0, y0, side) in pixels of the square crop around landmark points (N, 2) in pixels."""
    pts = np.asarray(points_xy, np.float64)
    if pts.ndim != 2 or pts.shape[1] != 2 or len(pts) == 0:
        raise ValueError(f"landmark points must be (N, 2) with N > 0, got {pts.shape}")
    lo, hi = pts.min(axis=0), pts.max(axis=0)
    centre = (lo + hi) / 2.0
    side = max(float((hi - lo).max()) * (1.0 + 2.0 * margin), 8.0)
    x0, y0 = np.round(centre - side / 2.0).astype(int)
    return int(x0), int(y0), int(round(side))


def face_crop(image: np.ndarray, landmarks_norm: np.ndarray,
              margin: float = CROP_MARGIN) -> np.ndarray:
    """RGB uint8 (H, W, 3) frame and landmarks (N, 2) normalised to [0, 1] of the frame ->
    the (64, 64) uint8 grey face crop (see the module doc)."""
    import cv2

    h, w = image.shape[:2]
    x0, y0, side = crop_box(np.asarray(landmarks_norm, np.float64) * (w, h), margin)
    square = np.zeros((side, side), np.uint8)
    sx0, sy0 = max(x0, 0), max(y0, 0)
    sx1, sy1 = min(x0 + side, w), min(y0 + side, h)
    if sx1 > sx0 and sy1 > sy0:  # only the box is made grey, not the whole frame
        box = image[sy0:sy1, sx0:sx1].astype(np.float32) @ _GREY_WEIGHTS + 0.5
        square[sy0 - y0 : sy1 - y0, sx0 - x0 : sx1 - x0] = box.clip(0, 255).astype(np.uint8)
    interp = cv2.INTER_AREA if side > INPUT_SIDE else cv2.INTER_LINEAR
    return cv2.resize(square, (INPUT_SIDE, INPUT_SIDE), interpolation=interp)


class Classifier(Protocol):
    def classify(self, grey: np.ndarray) -> np.ndarray: ...


class RateGate:
    """At most one item per slot of 1/``max_rate_hz`` seconds of media time (None or 0:
    every item). `due(t_s)` says whether an item at ``t_s`` opens a new slot; `take(t_s)`
    marks it taken. A time that goes back opens a slot again (a looped recording)."""

    def __init__(self, max_rate_hz: float | None) -> None:
        self.max_rate_hz: float | None = None
        self._slot: int | None = None
        self.set_rate(max_rate_hz)

    def set_rate(self, max_rate_hz: float | None) -> None:
        """A new rate from the next item on (ValueError for a negative one)."""
        if max_rate_hz is not None and not max_rate_hz >= 0:
            raise ValueError(f"max_rate_hz must be None or >= 0, got {max_rate_hz}")
        self.max_rate_hz, self._slot = max_rate_hz or None, None

    def _slot_of(self, t_s: float) -> int:
        return math.floor(t_s * self.max_rate_hz + 1e-6)

    def due(self, t_s: float) -> bool:
        return self.max_rate_hz is None or self._slot != self._slot_of(t_s)

    def take(self, t_s: float) -> None:
        if self.max_rate_hz is not None:
            self._slot = self._slot_of(t_s)


class ExpressionExtractor:
    """insert_crop / process_iter / finish (see the module doc). ``classifier`` is shared
    (loaded once by the engine, or `realtime.serving.executor.SharedClassifier`, batched with
    other sessions' crops) and only read. max_rate_hz: see the module doc."""

    def __init__(self, classifier: Classifier | MiniXception, max_frames: int = 8,
                 max_rate_hz: float | None = None) -> None:
        self._classifier = classifier
        self._queue: deque[FaceCrop] = deque()
        self._max_frames = int(max_frames)
        self._gate = RateGate(max_rate_hz)
        self.decimated = 0
        self.drops = 0
        self.faces = 0
        self.compute_s = 0.0

    @property
    def ms_per_face(self) -> float:
        return 1000.0 * self.compute_s / self.faces if self.faces else float("nan")

    @property
    def max_rate_hz(self) -> float | None:
        return self._gate.max_rate_hz

    def set_max_rate_hz(self, max_rate_hz: float | None) -> None:
        self._gate.set_rate(max_rate_hz)

    def wants_crop(self, t_s: float) -> bool:
        """Whether a crop at ``t_s`` would be classified (see the module doc)."""
        return self._gate.due(t_s)

    def insert_crop(self, crop: FaceCrop) -> None:
        """Queues a crop (ValueError for one that is not (64, 64) uint8); one not due is
        counted in ``decimated`` and let go."""
        if crop.grey is not None and (crop.grey.shape != (INPUT_SIDE, INPUT_SIDE)
                                      or crop.grey.dtype != np.uint8):
            raise ValueError(f"face crops must be ({INPUT_SIDE}, {INPUT_SIDE}) uint8, got "
                             f"{crop.grey.shape} {crop.grey.dtype}")
        if not self._gate.due(crop.t_s):
            self.decimated += 1
            return
        self._gate.take(crop.t_s)
        if len(self._queue) >= self._max_frames:
            self._queue.popleft()
            self.drops += 1
            log.debug("expression queue full: dropped its oldest crop (%d so far)", self.drops)
        self._queue.append(crop)

    def process_iter(self, now_s: float | None = None) -> FeatureFrames | None:
        """Rows for every queued crop, oldest first; None when none was queued."""
        if not self._queue:
            return None
        crops = list(self._queue)
        self._queue.clear()
        values = np.zeros((len(crops), EXPRESSION_DIM), np.float32)
        faces = [i for i, c in enumerate(crops) if c.grey is not None]
        start = perf_s()
        if faces:
            batch = np.stack([crops[i].grey for i in faces])
            values[faces, :FACE_PRESENT_INDEX] = self._classifier.classify(batch)
            values[faces, FACE_PRESENT_INDEX] = 1.0
        spent = perf_s() - start
        self.compute_s += spent
        self.faces += len(faces)
        captured = max(c.captured_at_s for c in crops)
        done = captured if now_s is None else now_s + spent
        return FeatureFrames(np.array([c.t_s for c in crops], np.float64), values, done,
                             captured)

    def finish(self, now_s: float | None = None) -> FeatureFrames | None:
        return self.process_iter(now_s)
