"""Faults at the pipeline and dashboard level (not only at the source): a camera or a
microphone that disappears mid-session is shown while the other modality carries on; a model
that raises ends the session with its error shown and the log kept. Small test doubles for the
extractors and the model (tests/realtime/test_pipeline.py); real sources with patched
devices."""

from __future__ import annotations

import threading

import pytest

from realtime.clock import SessionClock, perf_s
from realtime.dashboard.controller import Dashboard, SourceChoice
from realtime.personal.consent import consent_record
from realtime.pipeline import Pipeline
from realtime.sources import FileSource
from realtime.sources.combined import CombinedSource
from realtime.sources.devices import MicrophoneSource, WebcamSource
from tests.helpers import media
from tests.helpers.fakes import flaky_capture
from tests.realtime.sources.test_sources_mic import DyingStream
from tests.realtime.test_pipeline import MeanModel, fake_engine

AGREED = consent_record("the notice", "2026-12-02T10:00:00")
DEVICES = SourceChoice("devices")


def _until(check, deadline_s: float = 15.0) -> bool:
    end_s = perf_s() + deadline_s
    while perf_s() < end_s:
        if check():
            return True
        threading.Event().wait(0.05)
    return False


def test_a_camera_that_disappears_mid_session_is_shown_and_the_voice_goes_on(
        monkeypatch, tmp_path):
    import cv2

    monkeypatch.setattr(cv2, "VideoCapture",
                        flaky_capture(8, shape=(240, 320, 3), delay_s=0.25))
    clock = SessionClock()
    text = f"{media.POSITIVE_TEXT} {media.NEGATIVE_TEXT}"  # about 8 s: longer than the camera
    voice = FileSource(media.speech_wav(tmp_path, text), realtime=True, clock=clock)
    camera = WebcamSource(0, clock, max_fps=None, lost_after_s=0.3)
    pipe = Pipeline(CombinedSource(camera, voice), fake_engine())
    dash = Dashboard(pipe, DEVICES, None, sync_interval_s=0.05)
    dash.start_session(consent=AGREED)
    try:
        assert _until(lambda: "camera 0 stopped delivering frames" in (dash.status().error
                                                                       or ""))
        assert dash.status().pipeline.running and dash.session_active  # the voice goes on
        words_then = len(dash.log.transcript())
        rows_then = len(dash.log)
        # more predictions and more committed words after the camera is gone
        assert _until(lambda: len(dash.log.transcript()) >= words_then + 2)
        assert len(dash.log) > rows_then
        assert "camera 0" in dash.status().error  # still shown
    finally:
        dash.close()


def test_a_microphone_that_disappears_mid_session_is_shown_and_the_face_goes_on(
        monkeypatch, tmp_path):
    import sounddevice as sd

    monkeypatch.setattr(sd, "InputStream", DyingStream)
    clock = SessionClock()
    video = FileSource(media.face_video(tmp_path, seconds=4.0, fps=15), realtime=True,
                       clock=clock)
    mic = MicrophoneSource("default", clock, lost_after_s=0.3)
    pipe = Pipeline(CombinedSource(mic, video), fake_engine())
    dash = Dashboard(pipe, DEVICES, None, sync_interval_s=0.05)
    dash.start_session(consent=AGREED)
    try:
        assert _until(lambda: "delivered no audio" in (dash.status().error or ""))
        rows_then = len(dash.log)
        assert _until(lambda: len(dash.log) >= rows_then + 5)
        assert dash.status().pipeline.running and dash.session_active
        assert dash.log.rows()[-1].face_present  # the face is still read
    finally:
        dash.close()


def test_a_model_that_raises_mid_session_ends_it_with_the_error_and_keeps_the_log(av_file):
    class BreaksLater(MeanModel):
        def forward(self, *args):
            if len(self.shapes) >= 4:
                raise RuntimeError("boom after four windows")
            return super().forward(*args)

    pipe = Pipeline(FileSource(av_file, realtime=True, clock=SessionClock()),
                    fake_engine(BreaksLater()))
    dash = Dashboard(pipe, SourceChoice("file", path=av_file), None, sync_interval_s=0.05)
    dash.start_session()
    try:
        assert _until(lambda: not dash.status().pipeline.running)
        dash.sync()
        st = dash.status()
        assert "boom after four windows" in st.error and not st.pipeline.running
        assert len(dash.log) == 4  # what came before the failure is kept
        assert dash.log.to_jsonl().count('"type": "prediction"') == 4
    finally:
        dash.close()


@pytest.fixture(scope="module")
def av_file(tmp_path_factory):
    return media.face_video(tmp_path_factory.mktemp("av"), seconds=3.0, fps=15,
                            with_audio_text="hello there")
