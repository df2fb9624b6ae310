"""Test-only stand-ins for the dashboard's unit tests (no tests here).

`FakePipeline` has the pipeline's surface the dashboard uses (store, status(), start(),
stop(), source); its predictions are made by the test with `make_prediction`, never by the
product.
"""

from __future__ import annotations

import numpy as np

from realtime.clock import ReplayClock
from realtime.pipeline import PipelineStatus
from realtime.stats import RunStats
from realtime.store import PredictionStore
from realtime.types import Prediction, Signals


class FakeBrowserSource:
    name = "browser"

    def __init__(self) -> None:
        self.frames: list[np.ndarray] = []
        self.audio: list[tuple[int, np.ndarray]] = []
        self.started_at_s = 0.0

    def push_frame(self, image_rgb) -> None:
        self.frames.append(np.asarray(image_rgb))

    def push_audio(self, rate_hz: int, samples) -> None:
        self.audio.append((rate_hz, np.asarray(samples)))


class FakeFileSource:
    def __init__(self, name: str = "file:demo.mp4", started_at_s: float = 0.0) -> None:
        self.name = name
        self.started_at_s = started_at_s


class FakePipeline:
    def __init__(self, source=None, model_name: str = "mmlatch-test",
                 start_error: str | None = None) -> None:
        self.start_error = start_error  # start() raises this, like a device that won't open
        self.store = PredictionStore(max_history=500)
        self.source = source if source is not None else FakeFileSource()
        self.model_name = model_name
        self.running = False
        self.starts = 0
        self.stops = 0
        self.error: str | None = None
        self.clock = ReplayClock()  # the test moves time with clock.advance_to
        self.last_input_s = float("nan")  # session time of the newest input (nan: none yet)
        self.stats = RunStats()

    def start(self) -> None:
        if self.start_error is not None:
            raise RuntimeError(self.start_error)
        self.running = True
        self.starts += 1

    def stop(self, timeout_s: float = 2.0) -> bool:
        self.running = False
        self.stops += 1
        return True

    def status(self) -> PipelineStatus:
        return PipelineStatus(self.model_name, "cpu", False, self.source.name, self.running,
                              self.error, {"audio_queue": 0}, 4.8)


def with_stages(engine, **factories):
    """``engine`` (a `realtime.engine.Engine`) with some of its stage factories
    (`realtime.extract.stages.Stages`: new_asr, new_acoustic, new_face, new_expression)
    replaced by stand-ins."""
    from dataclasses import replace

    return replace(engine, stages=replace(engine.stages, **factories))


def make_prediction(t_s: float, sentiment: float, words=("hello", "world"),
                    tentative=("again",), face: bool = True, masks=None,
                    latency_total_ms: float = 120.0, new_words=()) -> Prediction:
    return Prediction(
        t_end_s=t_s,
        sentiment=sentiment,
        words=tuple(words),
        tentative=tuple(tentative),
        face=face,
        signals=Signals(pitch_hz=180.0, energy_db=-22.5, smile=0.6, brow=0.2, jaw=0.1,
                        face_present=face),
        latency_ms={"total": latency_total_ms, "asr": latency_total_ms * 0.6,
                    "model": 8.0},
        drops={"audio_queue": 0, "video_queue": 2},
        emitted_at_s=t_s + latency_total_ms / 1000.0,
        model_name="mmlatch-test",
        masks=masks,
        new_words=tuple(new_words),
    )


def flaky_capture(frames: int, shape=(480, 1280, 3), delay_s: float = 0.0):
    """An OpenCV ``VideoCapture`` stand-in (patch ``cv2.VideoCapture`` with it) whose camera
    gives ``frames`` frames, frame n filled with n (``delay_s`` apart), then nothing more,
    like an unplugged camera."""
    import threading

    class FlakyCapture:
        def __init__(self, device) -> None:
            self.n = 0

        def isOpened(self) -> bool:  # noqa: N802 - OpenCV's name
            return True

        def read(self):
            self.n += 1
            if self.n > frames:
                return False, None
            threading.Event().wait(delay_s)
            return True, np.full(shape, self.n, np.uint8)

        def release(self) -> None:
            pass

    return FlakyCapture
