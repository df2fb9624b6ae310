"""realtime.extract.face: blendshapes, head pose, face flag from the FaceLandmarker."""

from __future__ import annotations

import math

import numpy as np
import pytest

from realtime.extract.face import (
    BLENDSHAPES,
    BROW_INDEX,
    FACE_DIM,
    FACE_PRESENT_INDEX,
    FEATURE_NAMES,
    JAW_INDEX,
    POSE_INDEX,
    SMILE_INDEX,
    FaceExtractor,
    face_signals,
    head_pose,
)
from realtime.types import VideoFrame
from tests.helpers import media


@pytest.fixture()
def extractor():
    with FaceExtractor() as fx:
        yield fx


def frames(n: int, t0_s: float = 0.0, fps: float = 15.0):
    return [VideoFrame(t0_s + i / fps, img, t0_s + i / fps)
            for i, img in enumerate(media.face_frames(n, fps))]


def test_feature_vector_is_defined_once():
    assert FACE_DIM == len(FEATURE_NAMES) == 56 and len(BLENDSHAPES) == 52
    assert len(set(FEATURE_NAMES)) == FACE_DIM
    assert FEATURE_NAMES[SMILE_INDEX] == "mouthSmileLeft"
    assert FEATURE_NAMES[BROW_INDEX] == "browInnerUp"
    assert FEATURE_NAMES[JAW_INDEX] == "jawOpen"
    assert FEATURE_NAMES[POSE_INDEX : POSE_INDEX + 3] == ("yaw", "pitch", "roll")
    assert FACE_PRESENT_INDEX == FACE_DIM - 1


def test_face_is_present_with_blendshapes(extractor):
    for f in frames(6):
        extractor.insert_frame(f)
    out = extractor.process_iter()
    assert out.values.shape == (6, FACE_DIM) and out.values.dtype == np.float32
    assert np.allclose(out.t_s, np.arange(6) / 15.0)
    assert np.all(out.values[:, FACE_PRESENT_INDEX] == 1.0)
    shapes = out.values[:, :52]
    assert np.all((shapes >= 0) & (shapes <= 1)) and shapes.sum(1).min() > 1.0
    reading = face_signals(out.values[0])
    assert reading.face_present and reading.smile > 0.5  # the astronaut smiles
    assert 0 <= reading.brow <= 1 and 0 <= reading.jaw <= 1
    assert np.all(np.abs(out.values[:, POSE_INDEX : POSE_INDEX + 3]) < 0.5)  # < 45 degrees
    assert 0 < extractor.ms_per_frame < 1000


def test_no_face_gives_zeros_and_the_flag(extractor):
    extractor.insert_frame(VideoFrame(0.0, media.no_face_frame(), 0.0))
    extractor.insert_frame(VideoFrame(0.1, np.zeros((120, 160, 3), np.uint8), 0.1))
    values = extractor.process_iter().values
    assert np.all(values == 0.0)
    reading = face_signals(values[0])
    assert not reading.face_present and math.isnan(reading.smile)


def test_timestamps_that_repeat_or_go_back_are_handled(extractor):
    imgs = list(media.face_frames(3))
    for t in (1.0, 1.0, 0.99):  # equal, then earlier by 10 ms
        extractor.insert_frame(VideoFrame(t, imgs[0], t))
    extractor.insert_frame(VideoFrame(0.0, imgs[1], 2.0))  # a new session starting at 0
    extractor.insert_frame(VideoFrame(0.066, imgs[2], 2.1))
    out = extractor.process_iter()
    assert out.values.shape[0] == 5 and np.all(out.values[:, FACE_PRESENT_INDEX] == 1.0)


def test_large_frames_are_downscaled(extractor):
    import cv2

    big = cv2.resize(media.face_frame(0.0), (1920, 1080))
    extractor.insert_frame(VideoFrame(0.0, big, 0.0))
    assert extractor.process_iter().values[0, FACE_PRESENT_INDEX] == 1.0


def test_queue_is_bounded():
    with FaceExtractor(max_frames=3) as fx:
        for f in frames(7):
            fx.insert_frame(f)
        out = fx.process_iter(now_s=5.0)
        assert fx.drops == 4 and np.allclose(out.t_s, np.arange(4, 7) / 15.0)
        assert out.computed_at_s >= 5.0 and out.captured_at_s == pytest.approx(6 / 15.0)
        assert fx.process_iter() is None


@pytest.mark.parametrize(
    "image, message",
    [
        (np.zeros((10, 10, 2), np.uint8), "HxWx3"),
        (np.zeros((0, 10, 3), np.uint8), "HxWx3"),
        (np.zeros((20, 20, 3), np.int32), "uint8"),
    ],
)
def test_bad_frames_get_a_clear_error(extractor, image, message):
    with pytest.raises(ValueError, match=message):
        extractor.insert_frame(VideoFrame(0.0, image, 0.0))


@pytest.mark.parametrize("shape", [(1, 1, 3), (4, 4, 3), (1, 20000, 3), (7, 640, 3)])
def test_a_frame_too_small_to_track_is_dropped_and_counted_not_raised(extractor, shape):
    before = extractor.drops
    extractor.insert_frame(VideoFrame(0.0, np.zeros(shape, np.uint8), 0.0))
    assert extractor.drops == before + 1 and extractor.process_iter() is None


@pytest.mark.parametrize("image", [
    np.zeros((9, 9), np.uint8),  # grey
    np.zeros((9, 9, 4), np.uint8),  # RGBA
    np.full((9, 9, 3), 0.5, np.float32),  # float: the sources convert it, by one convention
])
def test_frames_not_in_the_sources_format_are_refused_not_converted(extractor, image):
    with pytest.raises(ValueError, match="to_rgb_uint8"):
        extractor.insert_frame(VideoFrame(0.0, image, 0.0))
    assert extractor.process_iter() is None


def test_closed_extractor_refuses_work():
    fx = FaceExtractor()
    fx.close()
    fx.insert_frame(frames(1)[0])
    with pytest.raises(RuntimeError, match="closed"):
        fx.process_iter()


def _rot(axis: str, deg: float) -> np.ndarray:
    c, s = math.cos(math.radians(deg)), math.sin(math.radians(deg))
    return {
        "y": np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]]),
        "x": np.array([[1, 0, 0], [0, c, -s], [0, s, c]]),
        "z": np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]]),
    }[axis]


def test_head_pose_angles():
    assert head_pose(_rot("y", 30)) == pytest.approx((30, 0, 0), abs=1e-6)
    assert head_pose(_rot("x", -20)) == pytest.approx((0, -20, 0), abs=1e-6)
    assert head_pose(_rot("z", 10)) == pytest.approx((0, 0, 10), abs=1e-6)
    m = np.eye(4)
    m[:3, :3] = 2.0 * _rot("y", -15)  # scale is removed
    m[:3, 3] = (1, 2, -50)
    assert head_pose(m) == pytest.approx((-15, 0, 0), abs=1e-6)


class _Sink:
    """Wants a crop at even tenths of a second only; records what it got."""

    def __init__(self) -> None:
        self.crops = []

    def wants_crop(self, t_s: float) -> bool:
        return round(t_s * 10) % 2 == 0

    def insert_crop(self, crop) -> None:
        self.crops.append(crop)


def test_at_a_rate_the_tracker_sees_one_frame_a_slot_and_cuts_only_wanted_crops():
    sink = _Sink()
    video = frames(10, fps=10.0)  # 0.0 .. 0.9 s
    with FaceExtractor(max_rate_hz=5.0, crops=sink) as fx:
        for f in video:
            fx.insert_frame(f)
        out = fx.process_iter()
        assert list(out.t_s) == pytest.approx([0.0, 0.2, 0.4, 0.6, 0.8])
        assert fx.decimated == 5 and fx.drops == 0 and fx.frames == 5
        assert (out.values[:, FACE_PRESENT_INDEX] == 1.0).all()
    assert [round(c.t_s, 1) for c in sink.crops] == [0.0, 0.2, 0.4, 0.6, 0.8]
    with FaceExtractor(crops=sink, max_frames=16) as every:  # no rate: every frame
        for f in video:
            every.insert_frame(f)
        assert len(every.process_iter().t_s) == 10 and every.decimated == 0
