"""The live pipeline: it owns the threads, ticks every hop and publishes predictions.

Live (`start`): the source's capture threads feed
* an audio worker: acoustic features for every chunk, chunks forwarded to the ASR worker
  (bounded queue, oldest dropped and counted as ``asr_queue``);
* an ASR worker: `process_iter` once at least ``asr_step_s`` of new audio has arrived;
* a video worker: face features for the newest frame; older frames waiting behind it are
  skipped and counted as ``video_skipped`` drops;
* the tick loop: every ``hop_s`` it builds the word-aligned window (`realtime.window`), runs
  the model on it (``(1, T, D)`` tensors under ``torch.inference_mode``) and publishes a
  `Prediction` to the store, but only when some input changed since the last one.

Replay (`run_to_end`, for ``--fast`` and tests): the same stages driven in ONE thread, in
the data's time order, with the `ReplayClock` advanced by the data and ticks at fixed data
times (every ``hop_s`` of source time), so the same recording gives the same predictions.

Latencies come from data timestamps and the clock (milliseconds): for each channel
(``audio_``/``video_``) capture->features and features->window, then window->prediction,
``audio_total``/``video_total`` (newest input of the channel -> prediction) and ``total``
(newest input in the window -> prediction). ``capture_to_features`` and
``features_to_window`` are those of the channel that holds the newest input.
The model's output is the only source of sentiment here, unless the live model's face weight
W (`realtime.engine.Engine.face_weight`, answered with each prediction, so a personal model
swapped in brings its own) is set: then, with a face in view, the published sentiment is
clip(model + W * face_valence, -3, 3) (``model_sentiment`` keeps the model's own). With W = 0
or no face it is exactly the model's.

Besides the sentiment, each prediction carries the facial expression (the 7 probabilities
averaged over the face frames of the last ``expression_span_s``, from
`realtime.extract.expression`, fed by the face extractor's crops), its face valence, and the
voice arousal (heuristic, not validated; `realtime.extract.arousal`), none of which reach the model.

Window subscribers (``on_window`` / `Pipeline.subscribe`, e.g. personal calibration and the
spoken-MOSI evaluation) get each `Window` the model was given and the `Prediction` made from
it, right after it is published, from the tick thread (live) or the replay loop; they read
the window's arrays and never change them. A subscriber that raises is logged and the
pipeline carries on.
"""

from __future__ import annotations

import logging
import threading
import traceback
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Protocol

import numpy as np

from models.expression import face_valence, fuse_face
from realtime import readout
from realtime.clock import Clock, perf_s
from realtime.engine import Engine, EngineOutput
from realtime.extract.arousal import VoiceArousal
from realtime.sources.base import DropQueue, Source
from realtime.stats import RunStats, process_cpu_s
from realtime.store import PredictionStore
from realtime.types import (
    AudioChunk,
    FeatureFrames,
    Prediction,
    Signals,
    VideoFrame,
    Window,
    Word,
)
from realtime.window import WindowConfig, WordWindow

if TYPE_CHECKING:
    from realtime.extract.asr import AsrUpdate

NAN = readout.NAN
log = logging.getLogger(__name__)

WindowSubscriber = Callable[[Window, Prediction], None]


class ModelCalls(Protocol):
    """The two models a pipeline calls each tick (an `Engine`, or `SharedModels`)."""

    def predict(self, text: np.ndarray, audio: np.ndarray,
                video: np.ndarray) -> EngineOutput: ...

    def encode_words(self, words: Sequence[Word]) -> np.ndarray: ...
"""Called with each window the model was given and the prediction made from it."""


@dataclass(frozen=True)
class PipelineStatus:
    model_name: str
    device: str
    triton: bool
    source_name: str
    running: bool
    error: str | None
    drops: dict[str, int]
    updates_per_s: float


class Pipeline:
    """One session: a source, per-session streaming stages and a store.

    asr_step_s: new audio (seconds) after which the ASR stage is polled (its VAD runs and,
    when its policy says so, a pass; 0.1 s: an utterance's close or a due pass waits at most
    that long for the poll). signal_span_s: the span of
    recent frames the voice signals are read from. on_prediction: called with each
    published prediction, from the tick thread. on_window: window subscribers from the
    start (more with `subscribe`; see the module doc). models: what runs the sentiment
    model and the word encoder (default: the engine itself; `realtime.serving.executor.SharedModels`
    batches this session's calls with other sessions', and its Whisper calls too when it has a
    ``transcriber``: the session's `StreamingASR` is then made with it).
    expression_span_s: the span the expression is averaged over.
    """

    def __init__(
        self,
        source: Source,
        engine: Engine,
        store: PredictionStore | None = None,
        clock: Clock | None = None,
        hop_s: float = 0.2,
        *,
        asr_step_s: float = 0.1,
        window: WindowConfig | None = None,
        signal_span_s: float = 0.3,
        asr_queue_len: int = 600,
        on_prediction: Callable[[Prediction], None] | None = None,
        on_window: Iterable[WindowSubscriber] = (),
        models: ModelCalls | None = None,
        expression_span_s: float = 0.5,
    ) -> None:
        if clock is not None and clock is not source.clock:
            raise ValueError("the pipeline must use its source's clock (pass it to the source)")
        if hop_s <= 0:
            raise ValueError(f"hop_s must be positive, got {hop_s}")
        self.source, self.engine, self.clock = source, engine, source.clock
        self.store = store if store is not None else PredictionStore()
        self.hop_s, self.asr_step_s, self.signal_span_s = hop_s, asr_step_s, signal_span_s
        self.on_prediction = on_prediction
        self._models: ModelCalls = models or engine
        self._window_subscribers: tuple[WindowSubscriber, ...] = tuple(on_window)
        self._subscribers_lock = threading.Lock()
        self.stats = RunStats()
        lay = engine.layout
        self._window = WordWindow(self._models.encode_words, lay.text_dim, lay.audio_dim,
                                  lay.video_dim, lay.face_present_index, window)
        self._acoustic = engine.new_acoustic() if source.has_audio else None
        self._asr = None
        if source.has_audio:  # SharedModels: this session's Whisper calls batched with others'
            shared_asr = getattr(self._models, "transcriber", None)
            self._asr = engine.new_asr(shared_asr) if shared_asr is not None else engine.new_asr()
        self.expression_span_s = expression_span_s
        self._expression = (engine.new_expression() if source.has_video
                            and engine.new_expression is not None else None)
        self._face = None
        self._face_lock = threading.Lock()
        if source.has_video:
            self._face = (engine.new_face(crops=self._expression) if self._expression
                          is not None else engine.new_face())
        self._face_open = self._face is not None
        self._expression_rows: deque[tuple[float, np.ndarray]] = deque(maxlen=64)
        self._arousal = (VoiceArousal(lay.pitch_hz_index, lay.energy_db_index)
                         if source.has_audio else None)
        self._lock = threading.RLock()
        self._tentative: tuple[Word, ...] = ()
        self._unpublished_words: list[str] = []
        self._last_commit_t0_s = -np.inf
        self._newest = {"audio": (NAN, NAN), "video": (NAN, NAN)}  # (captured_at, computed_at)
        self._published_key: tuple | None = None
        self._asr_queue: DropQueue[AudioChunk] = DropQueue(asr_queue_len)
        self._asr_pending_s = 0.0
        self._asr_captured_s = NAN
        self._last_frame_t_s: float | None = None
        self._video_skipped = 0
        self._stop = threading.Event()
        self._audio_done = threading.Event()
        self._done = threading.Event()
        self._threads: list[threading.Thread] = []
        self._error: str | None = None
        self.error_detail: str | None = None
        self._started = False

    # -- public ----------------------------------------------------------------------
    def start(self) -> None:
        if self._started:
            raise RuntimeError("a pipeline runs once; build a new one for a new session")
        self._started = True
        try:
            self.source.start()
        except Exception as exc:
            # Nothing runs: say so (running False, the reason as the error), then raise.
            self._error = f"{self.source.name} could not start: {exc}"
            self._done.set()
            raise
        if self.source.has_audio:
            self._spawn(self._audio_worker, "audio")
            self._spawn(self._asr_worker, "asr")
        if self.source.has_video:
            self._spawn(self._video_worker, "video")
        self._spawn(self._tick_loop, "tick")

    def subscribe(self, subscriber: WindowSubscriber) -> Callable[[], None]:
        """Adds a window subscriber (any thread, also while running); returns the function
        that removes it again."""
        with self._subscribers_lock:
            self._window_subscribers = (*self._window_subscribers, subscriber)

        def unsubscribe() -> None:
            with self._subscribers_lock:
                subs = list(self._window_subscribers)
                if subscriber in subs:
                    subs.remove(subscriber)
                self._window_subscribers = tuple(subs)

        return unsubscribe

    def stop(self, timeout_s: float = 2.0) -> bool:
        """Stops the source and joins every thread; True when all joined in time."""
        end_s = perf_s() + timeout_s
        self._stop.set()
        joined = self.source.stop(timeout_s / 2)
        for thread in self._threads:
            thread.join(max(0.0, end_s - perf_s()))
        joined = joined and not any(t.is_alive() for t in self._threads)
        if joined:
            self._close_face()
        else:  # the video worker closes the face tracker itself when it ends
            log.warning("pipeline on %s: threads still running %.1f s after stop: %s",
                        self.source.name, timeout_s,
                        ", ".join(t.name for t in self._threads if t.is_alive()))
        self._done.set()
        return joined

    def _close_face(self) -> None:
        """Closes the face tracker once, from whichever of stop/the video worker is last."""
        with self._face_lock:
            was_open, self._face_open = self._face_open, False
        if was_open:
            self._face.close()

    def wait(self, timeout_s: float | None = None) -> bool:
        """Waits until the source has ended and everything was processed."""
        return self._done.wait(timeout_s)

    def run_to_end(self) -> int:
        """Replays a file source synchronously (see the module doc); returns the number of
        predictions published."""
        timeline = getattr(self.source, "timeline", None)
        advance = getattr(self.clock, "advance_to", None)
        if timeline is None or advance is None:
            raise TypeError("run_to_end needs a FileSource on a ReplayClock; "
                            "live sources run with start()")
        self._started = True
        published = self.store.version
        base_s = self.source.begin_replay()
        next_tick_s = base_s + self.hop_s
        try:
            for media in timeline():
                avail_s = base_s + media.available_s
                while next_tick_s < avail_s - 1e-9:
                    advance(next_tick_s)
                    self._tick(next_tick_s)
                    next_tick_s += self.hop_s
                advance(avail_s)
                item = media.stamp(base_s, self.clock.now_s())
                if media.is_audio:
                    self._on_audio(item)
                    self._asr_queue_feed(item)
                    if self._asr_pending_s >= self.asr_step_s:
                        self._asr_step(final=False)
                else:
                    self._on_frame(item)
            self._finish_audio()
            self._tick(self.clock.now_s())
        except Exception as exc:
            self._fail("replay", exc)
            raise
        finally:
            self._done.set()
            self._close_face()
        if self.source.error:
            self._error = self.source.error
        return self.store.version - published

    @property
    def error(self) -> str | None:
        return self._error or self.source.error

    @property
    def last_input_s(self) -> float:
        """Session time at which the newest audio or video that reached the features was
        captured; NaN before any."""
        with self._lock:
            times = [captured for captured, _ in self._newest.values() if captured == captured]
        return max(times) if times else NAN

    @property
    def drops(self) -> dict[str, int]:
        """Every drop counter: the source's queues, the pipeline's, and each stage's own
        input queue (``asr_input``, ``acoustic_input``, ``face_input``: items) and the audio
        the ASR let go unheard (``asr_audio_lost_ms``)."""
        return {**self.source.drops, "asr_queue": self._asr_queue.dropped,
                "video_skipped": self._video_skipped,
                "asr_input": _stage_drops(self._asr),
                "asr_audio_lost_ms": int(round(
                    1000.0 * float(getattr(self._asr, "dropped_audio_s", 0.0)))),
                "acoustic_input": _stage_drops(self._acoustic),
                "face_input": _stage_drops(self._face)}

    def status(self) -> PipelineStatus:
        return PipelineStatus(
            model_name=self.engine.model_name, device=self.engine.device,
            triton=self.engine.triton, source_name=self.source.name,
            running=self._started and not self._done.is_set(), error=self.error,
            drops=self.drops, updates_per_s=self.stats.updates_per_s(self.clock.now_s()))

    # -- stages (shared by the threads and the replay) -------------------------------
    def _on_audio(self, chunk: AudioChunk) -> None:
        t, c = perf_s(), process_cpu_s()
        self._acoustic.insert_audio_chunk(chunk)
        frames = self._acoustic.process_iter()
        self.stats.add_compute("acoustic", perf_s() - t, chunk.duration_s, process_cpu_s() - c)
        self._add_frames("audio", frames)

    def _asr_queue_feed(self, chunk: AudioChunk) -> None:
        t, c = perf_s(), process_cpu_s()
        self._asr.insert_audio_chunk(chunk)
        self.stats.add_compute("asr", perf_s() - t, 0.0, process_cpu_s() - c)
        self._asr_pending_s += chunk.duration_s
        self._asr_captured_s = chunk.captured_at_s

    def _asr_step(self, final: bool) -> None:
        t, c = perf_s(), process_cpu_s()
        update = self._asr.finish() if final else self._asr.process_iter()
        self._asr_took(update, t, c)

    def _asr_quiet(self) -> None:
        """No audio reached the ASR in the last poll: an utterance left open by a
        microphone that stopped mid-sentence is closed after ``max_gap_s``, not left
        tentative until someone speaks again."""
        t, c = perf_s(), process_cpu_s()
        update = self._asr.close_if_quiet(self.clock.now_s())
        if update is not None:
            self._asr_took(update, t, c)

    def _asr_took(self, update: AsrUpdate | None, t: float, c: float) -> None:
        self.stats.add_compute("asr", perf_s() - t, self._asr_pending_s, process_cpu_s() - c)
        self._asr_pending_s = 0.0
        if update is None:
            return
        now_s = self.clock.now_s()
        fresh = []
        for word in update.committed:
            if word.committed and word.t0_s > self._last_commit_t0_s:
                fresh.append(word)
                self._last_commit_t0_s = word.t0_s
                self.stats.add("word_commit_ms", (now_s - word.t1_s) * 1000.0)
        with self._lock:
            self._window.add_words(fresh, self._asr_captured_s)
            if self._arousal is not None:
                self._arousal.insert_words(fresh)
            if update.closed:
                self._window.close_utterance()
            self._unpublished_words.extend(w.text for w in fresh)
            tentative = tuple(update.tentative)
            if tentative != self._tentative:
                self._tentative = tentative

    def _finish_audio(self) -> None:
        if self._acoustic is not None:
            t, c = perf_s(), process_cpu_s()
            frames = self._acoustic.finish()
            self.stats.add_compute("acoustic", perf_s() - t, 0.0, process_cpu_s() - c)
            self._add_frames("audio", frames)
        if self._asr is not None:
            self._asr_step(final=True)
            with self._lock:
                self._tentative = ()

    def _on_frame(self, frame: VideoFrame) -> None:
        t, c = perf_s(), process_cpu_s()
        self._face.insert_frame(frame)
        frames = self._face.process_iter()
        media_s = 0.0 if self._last_frame_t_s is None else frame.t_s - self._last_frame_t_s
        self._last_frame_t_s = frame.t_s
        self.stats.add_compute("face", perf_s() - t, max(0.0, media_s), process_cpu_s() - c)
        self._add_frames("video", frames)
        if self._expression is not None:
            t, c = perf_s(), process_cpu_s()
            rows = self._expression.process_iter()
            self.stats.add_compute("expression", perf_s() - t, 0.0, process_cpu_s() - c)
            if rows is not None:
                with self._lock:
                    for t_s, row in zip(rows.t_s, rows.values, strict=True):
                        self._expression_rows.append((float(t_s), row))

    def _add_frames(self, modality: str, frames: FeatureFrames | None) -> None:
        if frames is None or len(frames.t_s) == 0:
            return
        now_s = self.clock.now_s()
        frames = replace(frames, computed_at_s=now_s)
        self.stats.add(f"latency_ms.{modality}_capture_to_features",
                       (now_s - frames.captured_at_s) * 1000.0)
        with self._lock:
            (self._window.add_audio if modality == "audio" else self._window.add_video)(frames)
            if modality == "audio" and self._arousal is not None:
                self._arousal.insert_frames(frames)
            self._newest[modality] = (frames.captured_at_s, now_s)

    def _tick(self, t_end_s: float) -> Prediction | None:
        t, c = perf_s(), process_cpu_s()
        with self._lock:
            key = (self._window.version, tuple(w.text for w in self._tentative))
            if key == self._published_key:
                return None
            self._published_key = key
            window = self._window.build(t_end_s)
            if window is None:
                return None
            newest = dict(self._newest)
            tentative = self._tentative
            new_words, self._unpublished_words = tuple(self._unpublished_words), []
            signals = self._signals(window, t_end_s)
            expression = self._recent_expression(t_end_s)
            arousal = self._arousal.update(t_end_s) if self._arousal is not None else None
        built_s = self.clock.now_s()
        out = self._models.predict(window.text, window.audio, window.video)
        emitted_s = self.clock.now_s()
        self.stats.add_compute("window+model", perf_s() - t, 0.0, process_cpu_s() - c)
        latency = readout.latencies(window, newest, built_s, emitted_s)
        valence = NAN if expression is None else float(face_valence(np.asarray(expression)))
        prediction = Prediction(
            t_end_s=float(t_end_s),
            sentiment=fuse_face(out.sentiment, out.face_weight, valence),
            model_sentiment=out.sentiment,
            expression=expression, face_valence=valence,
            voice_arousal=NAN if arousal is None else arousal.value,
            arousal_warming_up=arousal is None or arousal.warming_up,
            face_weight=out.face_weight,
            words=tuple(w.text for w in window.words), tentative=tuple(w.text for w in tentative),
            face=window.face_present, signals=signals, latency_ms=latency, drops=self.drops,
            emitted_at_s=emitted_s, model_name=out.model_name, masks=out.masks,
            new_words=new_words)
        self.store.publish(prediction)
        self.stats.add_latencies(latency)
        self.stats.emitted(emitted_s)
        if self.on_prediction is not None:
            self.on_prediction(prediction)
        self._tell_subscribers(window, prediction)
        return prediction

    def _tell_subscribers(self, window: Window, prediction: Prediction) -> None:
        for subscriber in self._window_subscribers:
            try:
                subscriber(window, prediction)
            except Exception:  # noqa: BLE001 - a subscriber never stops the pipeline
                log.exception("window subscriber %r failed at t=%.2f s", subscriber,
                              prediction.t_end_s)

    def _recent_expression(self, t_end_s: float) -> tuple[float, ...] | None:
        """Mean probabilities of the face rows in (t_end - expression_span_s, t_end]."""
        lo = t_end_s - self.expression_span_s
        rows = [r for t, r in self._expression_rows if lo < t <= t_end_s and r[-1] > 0.5]
        if not rows:
            return None
        return tuple(round(float(p), 6) for p in np.mean(rows, axis=0)[:-1])

    def _signals(self, window: Window, t_end_s: float) -> Signals:
        audio = self._window.frames_between("audio", t_end_s - self.signal_span_s, t_end_s)
        video = self._window.frames_between("video", t_end_s - 1.0, t_end_s)
        return readout.signals(audio, video, self.engine.layout, window.face_present)

    # -- threads ---------------------------------------------------------------------
    def _spawn(self, target: Callable[[], None], what: str) -> None:
        def run() -> None:
            try:
                target()
            except Exception as exc:  # noqa: BLE001 - reported through status().error
                self._fail(what, exc)

        thread = threading.Thread(target=run, name=f"pipeline:{what}", daemon=True)
        self._threads.append(thread)
        thread.start()

    def _fail(self, what: str, exc: BaseException) -> None:
        if self._error is None:
            self._error = f"{what} stage failed: {type(exc).__name__}: {exc}"
            self.error_detail = traceback.format_exc()
        self._stop.set()  # every worker ends; the tick loop marks the pipeline done
        self.source.stop(0.0)
        log.error("pipeline %s stage failed on %s", what, self.source.name, exc_info=exc)

    def _audio_worker(self) -> None:
        try:
            while not self._stop.is_set():
                chunks = self.source.read_audio(timeout_s=0.1)
                for chunk in chunks:
                    self._on_audio(chunk)
                    self._asr_queue.put(chunk)
                if not chunks and self.source.ended and self.source.pending_audio() == 0:
                    break
            if not self._stop.is_set():
                t, c = perf_s(), process_cpu_s()
                self._add_frames("audio", self._acoustic.finish())
                self.stats.add_compute("acoustic", perf_s() - t, 0.0, process_cpu_s() - c)
        finally:
            self._audio_done.set()
            self._asr_queue.wake()

    def _asr_worker(self) -> None:
        while not self._stop.is_set():
            chunks = self._asr_queue.get_all(timeout_s=0.1)
            for chunk in chunks:
                self._asr_queue_feed(chunk)
            if self._asr_pending_s >= self.asr_step_s:
                self._asr_step(final=False)
            elif not chunks and self._audio_done.is_set() and len(self._asr_queue) == 0:
                self._asr_step(final=True)
                with self._lock:
                    self._tentative = ()
                return
            elif not chunks:
                self._asr_quiet()

    def _video_worker(self) -> None:
        try:
            while not self._stop.is_set():
                frames = self.source.read_frames(timeout_s=0.1)
                if frames:
                    self._video_skipped += len(frames) - 1
                    self._on_frame(frames[-1])
                elif self.source.ended and self.source.pending_frames() == 0:
                    return
        finally:
            if self._stop.is_set():  # stopped: nothing uses the tracker any more
                self._close_face()

    def _tick_loop(self) -> None:
        workers = [t for t in self._threads if t.name != "pipeline:tick"]
        next_s = self.clock.now_s() + self.hop_s
        try:
            while not self._stop.is_set():
                if not self.clock.sleep_until(next_s, self._stop):
                    break
                finished = not any(t.is_alive() for t in workers)
                self._tick(self.clock.now_s())
                if finished:
                    break
                now_s = self.clock.now_s()
                next_s += self.hop_s
                if next_s < now_s:  # fell behind: skip the missed ticks
                    next_s = now_s + self.hop_s
        except Exception as exc:  # noqa: BLE001 - reported through status().error
            self._fail("tick", exc)  # before the pipeline is marked done
        finally:
            self._done.set()


def _stage_drops(stage: object | None) -> int:
    """A stage's own ``drops`` counter (0 for a stage that is absent or keeps none)."""
    return int(getattr(stage, "drops", 0))
