"""realtime.serving.sessions: many sessions on one engine, each with its own predictions; one
failing session leaves the others running; the session limit and idle reaping; health shows no data
of anyone; sessions may share a batching executor."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from realtime.clock import SessionClock
from realtime.serving.executor import BatchConfig, SharedModels
from realtime.serving.sessions import SessionHealth, SessionManager, SessionRefused
from realtime.sources.base import Source, SourceError
from realtime.types import VideoFrame
from tests.realtime.test_pipeline import fake_engine

FPS = 20.0


class ColourSource(Source):
    """Frames of one colour at FPS for ``seconds`` (then the source ends), or until stopped;
    with ``fail_after`` frames, its capture thread raises instead."""

    has_video = True

    def __init__(self, red: int, seconds: float = 30.0, fail_after: int | None = None) -> None:
        super().__init__(SessionClock())
        self.name = f"colour:{red}"
        self.red, self.seconds, self.fail_after = red, seconds, fail_after

    def _start(self) -> None:
        self._spawn(self._capture, "video")

    def _capture(self) -> None:
        image = np.zeros((8, 8, 3), np.uint8)
        image[..., 0] = self.red
        k = 0
        while not self._stop.is_set() and k / FPS < self.seconds:
            if self.fail_after is not None and k >= self.fail_after:
                raise OSError("the camera disappeared")
            t_s = self.started_at_s + k / FPS
            self.clock.sleep_until(t_s, self._stop)
            self.video_queue.put(VideoFrame(t_s, image, self.clock.now_s()))
            k += 1


class BrokenSource(ColourSource):
    def _start(self) -> None:
        raise SourceError("colour:broken: cannot open the device")


def wait_for(condition, timeout_s: float = 10.0) -> bool:
    done = threading.Event()
    for _ in range(int(timeout_s / 0.05)):
        if condition():
            return True
        done.wait(0.05)
    return condition()


@pytest.fixture
def manager():
    # 2 s: at load 30 a busy source lagged past 0.6 s and was reaped with the idle one
    mgr = SessionManager(fake_engine(), max_sessions=3, idle_timeout_s=2.0)
    yield mgr
    assert mgr.stop_all()


def test_two_sessions_each_get_their_own_predictions(manager):
    dark, bright = manager.create(ColourSource(20)), manager.create(ColourSource(230))
    assert dark != bright and set(manager.ids()) == {dark, bright}
    stores = {sid: manager.pipeline(sid).store for sid in (dark, bright)}
    assert wait_for(lambda: all(len(s.history()) >= 3 for s in stores.values()))
    # MeanModel: 3 * tanh(mean red / 255) for a face-only window
    for sid, red in ((dark, 20), (bright, 230)):
        sentiments = {round(p.sentiment, 4) for p in stores[sid].history()}
        assert sentiments == {round(3 * float(np.tanh(red / 255)), 4)}, (sid, sentiments)
        assert manager.pipeline(sid).status().source_name == f"colour:{red}"


def test_a_failing_session_ends_alone_and_shows_its_error(manager):
    healthy = manager.create(ColourSource(100))
    failing = manager.create(ColourSource(200, fail_after=5), source_kind="devices")
    assert wait_for(lambda: manager.pipeline(failing).error is not None)
    by_id = {h.id: h for h in manager.health()}
    assert "the camera disappeared" in by_id[failing].error
    assert by_id[healthy].error is None and by_id[healthy].running
    before = len(manager.pipeline(healthy).store.history())
    assert wait_for(lambda: len(manager.pipeline(healthy).store.history()) > before + 3)


def test_a_source_that_cannot_start_is_refused_and_not_listed(manager):
    with pytest.raises(SourceError, match="cannot open the device"):
        manager.create(BrokenSource(0))
    assert manager.ids() == []


def test_past_max_sessions_a_new_one_is_refused_with_a_clear_message(manager):
    ids = [manager.create(ColourSource(10 * k)) for k in range(3)]
    with pytest.raises(SessionRefused, match=r"3 sessions are running.*--max-sessions 3"):
        manager.create(ColourSource(99))
    assert manager.stop(ids[0]) is True
    manager.create(ColourSource(99))  # room again
    with pytest.raises(SessionRefused, match="no session"):
        manager.stop(ids[0])


def test_an_idle_session_is_reaped_and_its_resources_freed(manager):
    short = manager.create(ColourSource(50, seconds=0.5))  # its input ends after 0.5 s
    busy = manager.create(ColourSource(150))
    pipeline = manager.pipeline(short)
    manager.start_reaper(reap_every_s=0.1)
    assert wait_for(lambda: short not in manager.ids(), timeout_s=10)
    assert busy in manager.ids() and manager.reaped == 1
    assert not any(t.is_alive() for t in pipeline.source.threads)  # threads joined


def test_health_shows_no_sentiment_words_or_signals(manager):
    sid = manager.create(ColourSource(80), source_kind="browser")
    assert wait_for(lambda: manager.health()[0].updates_per_s > 0)
    health = manager.health()[0]
    assert isinstance(health, SessionHealth) and health.id == sid
    assert health.source_kind == "browser" and health.running and health.drops == 0
    assert set(vars(health)) == {"id", "source_kind", "running_s", "updates_per_s",
                                 "latency_p95_ms", "drops", "error", "running", "degraded"}
    assert health.degraded is None  # what a session under load cut: stage rates, nothing personal


def test_sessions_share_the_batched_models():
    engine = fake_engine()
    with SharedModels(engine, BatchConfig(max_batch=8, max_wait_ms=20)) as shared:
        mgr = SessionManager(engine, max_sessions=4, shared=shared)
        ids = [mgr.create(ColourSource(red)) for red in (30, 130, 230)]
        assert wait_for(lambda: all(len(mgr.pipeline(i).store.history()) >= 3 for i in ids))
        for sid, red in zip(ids, (30, 130, 230), strict=True):
            assert {round(p.sentiment, 4) for p in mgr.pipeline(sid).store.history()} == {
                round(3 * float(np.tanh(red / 255)), 4)}
        assert mgr.stop_all()
        stats = shared.model.stats()
    assert stats.windows >= 9 and stats.failures == 0


def test_a_stopped_session_hands_the_freed_heap_back(monkeypatch):
    from realtime import heap

    trims = []
    monkeypatch.setattr(heap, "trim_heap", lambda: trims.append(1) or True)
    for trim_on_stop, expected in ((True, 1), (False, 0)):
        trims.clear()
        mgr = SessionManager(fake_engine(), max_sessions=2, trim_on_stop=trim_on_stop)
        session = mgr.create(ColourSource(50))
        assert trims == []  # only when a session stops
        assert mgr.stop(session)
        assert len(trims) == expected


class CutOffRecording(ColourSource):
    """A recording named after a person that stops decoding part-way (issue #25, item 9)."""

    PATH = "/tmp/gradio/1f2e3d/Jane Doe - therapy session 3.mp4"

    def __init__(self) -> None:
        super().__init__(60)
        self.name = "file:Jane Doe - therapy session 3.mp4"

    def _capture(self) -> None:
        raise OSError(f"{self.PATH}: decoding stopped part-way: cut off at 12.5 s "
                      f"(input: '{self.PATH}')")


def test_health_shows_no_path_or_file_name_of_a_failed_recording(manager):
    sid = manager.create(CutOffRecording())
    assert wait_for(lambda: manager.pipeline(sid).error is not None)
    assert "Jane Doe" in manager.pipeline(sid).error  # the session itself keeps the detail
    [health] = manager.health()
    assert "decoding stopped part-way: cut off at 12.5 s" in health.error
    assert "<file>" in health.error
    text = repr(health)
    assert "Jane" not in text and "therapy" not in text and "/tmp" not in text


@pytest.mark.parametrize("message, shown", [
    ("C:\\Users\\jane\\talk.wav: the file is empty (0 bytes)",
     "<file>: the file is empty (0 bytes)"),
    ("file:jane_smith.mp4: video failed: OSError: gone",
     "file:<file>: video failed: OSError: gone"),
    ("audio at 8000 Hz is too low after 2.5 s", "audio at 8000 Hz is too low after 2.5 s"),
    (None, None),
])
def test_scrub_error_takes_out_paths_and_file_names_only(message, shown):
    from realtime.serving.sessions import scrub_error

    assert scrub_error(message) == shown


def test_the_reaper_keeps_reaping_after_an_exception(manager, monkeypatch):
    calls = []

    def flaky_reap() -> list[str]:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("a session's status failed")
        return []

    monkeypatch.setattr(manager, "reap_idle", flaky_reap)
    manager.start_reaper(reap_every_s=0.05)
    assert wait_for(lambda: len(calls) >= 3, timeout_s=5)


def test_open_registers_any_session_and_a_replacement_does_not_count(manager):
    from realtime.serving.sessions import PipelineSession
    from tests.helpers.fakes import FakePipeline

    def start() -> PipelineSession:
        pipeline = FakePipeline()
        pipeline.start()
        return PipelineSession(pipeline)

    ids = [manager.open(start, "browser") for _ in range(3)]
    with pytest.raises(SessionRefused, match="3 sessions are running"):
        manager.open(start, "browser")
    again = manager.open(start, "browser", replaces=ids[0])  # in its place: not refused
    assert ids[0] not in manager and again in manager and len(manager) == 3
