"""The live pipeline: one session's stage runner, its threads and its replay.

`Pipeline(source, engine)` makes the session's streaming stages (acoustic features and ASR
when the source has audio; face features, and the facial expression when the engine has it,
when it has video) and a `realtime.tick.Ticker`, which turns what the stages produce into a
`Prediction` every ``hop_s`` seconds of session time and publishes it to the store (see
`realtime.tick` for the window, the model call, the face fusion, the prediction's fields and
the window subscribers).

Live (`start`, once per pipeline): the source's capture threads feed four threads,
``pipeline:audio`` (acoustic features for every chunk; chunks forwarded to the ASR thread
through a bounded queue, oldest dropped and counted as ``asr_queue``), ``pipeline:asr`` (the
ASR polled once ``asr_step_s`` of new audio has arrived; with no audio in a poll, an
utterance whose audio stopped is closed), ``pipeline:video`` (face features for the newest
frame; frames waiting behind it are skipped, counted as ``video_skipped``) and
``pipeline:tick`` (a tick every ``hop_s`` on the clock; missed ticks are skipped). Under
load a live session degrades in the open (`realtime.load.LoadGovernor`, fed by the tick
thread): the face tracker's and the expression network's rates go down a step while the
capture -> prediction latency stays over its bound (at the last step the speech is streamed
by a cheaper ASR policy, switched by the ASR thread before its next step), back up once it
is calm again, and `degraded` says what is cut (None: nothing). `stop`
ends them all (the source first) and joins them; `wait` waits for the end of a finite
source. A stage that raises stops the pipeline: ``error`` (and `status`) then says which
stage and why, ``error_detail`` holds the traceback.

Replay (`run_to_end`, for ``--fast`` and tests; a `FileSource` on a `ReplayClock`): the same
stages driven in the calling thread, in the data's time order, the clock advanced by the
data and ticks at fixed data times (every ``hop_s`` of source time), so the same recording
gives the same predictions (a replay never degrades). An exception of a stage is recorded as
for a thread and raised.
"""

from __future__ import annotations

import logging
import threading
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from realtime.clock import Clock, perf_s
from realtime.engine import Engine
from realtime.load import LoadConfig, LoadGovernor
from realtime.sources.base import DropQueue, Source
from realtime.stats import RunStats, process_cpu_s
from realtime.store import PredictionStore
from realtime.tick import NAN, ModelCalls, Ticker, WindowSubscriber
from realtime.types import AudioChunk, Prediction, VideoFrame
from realtime.window import WindowConfig

if TYPE_CHECKING:
    from realtime.extract.asr import AsrUpdate

__all__ = ["ModelCalls", "Pipeline", "PipelineStatus", "WindowSubscriber"]

log = logging.getLogger(__name__)


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
    degraded: str | None = None  # what the session cut to keep up (`Pipeline.degraded`)


class Pipeline:
    """One session: a source, per-session streaming stages, a `Ticker` and a store.

    clock: must be the source's own (ValueError otherwise); hop_s: seconds between ticks (> 0,
    ValueError otherwise). asr_step_s: new audio (seconds) after which the ASR stage is
    polled (its VAD runs and, when its policy says so, a pass; 0.1 s: an utterance's close or
    a due pass waits at most that long for the poll). asr_queue_len: chunks the audio thread
    may queue for the ASR thread. window, signal_span_s, expression_span_s, on_prediction,
    on_window: the `Ticker`'s (more subscribers with `subscribe`). models: what runs the
    sentiment model and the word encoder (default: the engine itself;
    `realtime.serving.executor.SharedModels` batches this session's calls with other
    sessions', its Whisper calls too when it has a ``transcriber`` (the session's
    `StreamingASR` is then made with it) and its face crops when it has a ``classifier``
    (the session's expression extractor is then made with it). load: when a live session
    degrades (`realtime.load.LoadConfig`; default its defaults).
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
        load: LoadConfig | None = None,
    ) -> None:
        if clock is not None and clock is not source.clock:
            raise ValueError("the pipeline must use its source's clock (pass it to the source)")
        if hop_s <= 0:
            raise ValueError(f"hop_s must be positive, got {hop_s}")
        self.source, self.engine, self.clock = source, engine, source.clock
        self.store = store if store is not None else PredictionStore()
        self.hop_s, self.asr_step_s = hop_s, asr_step_s
        self._models: ModelCalls = models or engine
        self.stats = RunStats()
        stages = engine.stages  # this session's own streaming stages, on the shared models
        self._acoustic = stages.new_acoustic() if source.has_audio else None
        self._asr = None
        if source.has_audio:  # SharedModels: this session's Whisper calls batched with others'
            shared_asr = getattr(self._models, "transcriber", None)
            self._asr = stages.new_asr(shared_asr) if shared_asr is not None else stages.new_asr()
        self._expression = None
        if source.has_video and stages.new_expression is not None:  # batched when shared
            shared_face = getattr(self._models, "classifier", None)
            self._expression = (stages.new_expression(shared_face) if shared_face is not None
                                else stages.new_expression())
        self._face = None
        self._face_lock = threading.Lock()
        if source.has_video:
            self._face = (stages.new_face(crops=self._expression) if self._expression
                          is not None else stages.new_face())
        self._face_open = self._face is not None
        self._rated = {name: stage for name, stage in (("face", self._face),
                                                       ("expression", self._expression))
                       if hasattr(stage, "set_max_rate_hz")}  # what may go slower under load
        self._asr_own = getattr(self._asr, "config", None)  # its own policy, restored when calm
        self._asr_policy: str | None = None  # the policy the ASR thread streams by (None: its own)
        self._load = (LoadGovernor({n: s.max_rate_hz for n, s in self._rated.items()}, load,
                                   speech=self._asr_own is not None
                                   and hasattr(self._asr, "set_policy"))
                      if "face" in self._rated else None)
        self._ticker = Ticker(self._models, engine.layout, self.store, self.stats, self.clock,
                              window=window, signal_span_s=signal_span_s,
                              expression_span_s=expression_span_s, voice=source.has_audio,
                              drops=lambda: self.drops, on_prediction=on_prediction,
                              on_window=on_window)
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
        return self._ticker.subscribe(subscriber)

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
                    self._ticker.tick(next_tick_s)
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
            self._ticker.tick(self.clock.now_s())
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
    def degraded(self) -> str | None:
        """What this session cut to keep up, in words (None: nothing; see the module doc)."""
        return None if self._load is None else self._load.describe()

    @property
    def last_input_s(self) -> float:
        """Session time at which the newest audio or video that reached the features was
        captured; NaN before any."""
        return self._ticker.last_input_s

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
        # the session's own model when its ModelCalls names one (a personal model:
        # realtime.calibration.controller.SessionModel), else the engine's
        return PipelineStatus(
            model_name=getattr(self._models, "model_name", self.engine.model_name),
            device=self.engine.device,
            triton=self.engine.triton, source_name=self.source.name,
            running=self._started and not self._done.is_set(), error=self.error,
            drops=self.drops, updates_per_s=self.stats.updates_per_s(self.clock.now_s()),
            degraded=self.degraded)

    # -- stages (shared by the threads and the replay) -------------------------------
    def _on_audio(self, chunk: AudioChunk) -> None:
        t, c = perf_s(), process_cpu_s()
        self._acoustic.insert_audio_chunk(chunk)
        frames = self._acoustic.process_iter()
        self.stats.add_compute("acoustic", perf_s() - t, chunk.duration_s, process_cpu_s() - c)
        self._ticker.add_frames("audio", frames)

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
        self._ticker.add_asr(update, self._asr_captured_s)

    def _finish_audio(self) -> None:
        if self._acoustic is not None:
            t, c = perf_s(), process_cpu_s()
            frames = self._acoustic.finish()
            self.stats.add_compute("acoustic", perf_s() - t, 0.0, process_cpu_s() - c)
            self._ticker.add_frames("audio", frames)
        if self._asr is not None:
            self._asr_step(final=True)
            self._ticker.end_tentative()

    def _on_frame(self, frame: VideoFrame) -> None:
        t, c = perf_s(), process_cpu_s()
        self._face.insert_frame(frame)
        frames = self._face.process_iter()
        media_s = 0.0 if self._last_frame_t_s is None else frame.t_s - self._last_frame_t_s
        self._last_frame_t_s = frame.t_s
        self.stats.add_compute("face", perf_s() - t, max(0.0, media_s), process_cpu_s() - c)
        self._ticker.add_frames("video", frames)
        if self._expression is not None:
            t, c = perf_s(), process_cpu_s()
            rows = self._expression.process_iter()
            self.stats.add_compute("expression", perf_s() - t, 0.0, process_cpu_s() - c)
            self._ticker.add_expression(rows)

    def _asr_follow_load(self) -> None:
        """The ASR thread: streams by the policy the governor asks for (its own when None)."""
        if self._load is None:
            return
        wanted = self._load.asr_policy()
        if wanted != self._asr_policy:
            from realtime.extract.asr import asr_policy

            self._asr.set_policy(self._asr_own if wanted is None else asr_policy(wanted))
            self._asr_policy = wanted

    def _observe_load(self, now_s: float, prediction: Prediction | None,
                      missed: bool) -> None:
        """The tick thread: feeds the governor; a new step sets the stages' rates (from
        their next frame on)."""
        if self._load is None:
            return
        steps = []
        if prediction is not None:
            steps.append(self._load.observe(now_s, prediction.latency_ms.get("total")))
        if missed:
            steps.append(self._load.observe(now_s, None))
        for step in steps:
            if step is None:
                continue
            for name, rate in self._load.rates(step).items():
                self._rated[name].set_max_rate_hz(rate)
            log.warning("session on %s: %s", self.source.name,
                        self._load.describe() or "keeps up again: the stages' own rates")

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
                self._ticker.add_frames("audio", self._acoustic.finish())
                self.stats.add_compute("acoustic", perf_s() - t, 0.0, process_cpu_s() - c)
        finally:
            self._audio_done.set()
            self._asr_queue.wake()

    def _asr_worker(self) -> None:
        while not self._stop.is_set():
            self._asr_follow_load()
            chunks = self._asr_queue.get_all(timeout_s=0.1)
            for chunk in chunks:
                self._asr_queue_feed(chunk)
            if self._asr_pending_s >= self.asr_step_s:
                self._asr_step(final=False)
            elif not chunks and self._audio_done.is_set() and len(self._asr_queue) == 0:
                self._asr_step(final=True)
                self._ticker.end_tentative()
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
                prediction = self._ticker.tick(self.clock.now_s())
                if finished:
                    break
                now_s = self.clock.now_s()
                next_s += self.hop_s
                missed = next_s < now_s
                if missed:  # fell behind: skip the missed ticks
                    next_s = now_s + self.hop_s
                self._observe_load(now_s, prediction, missed)
        except Exception as exc:  # noqa: BLE001 - reported through status().error
            self._fail("tick", exc)  # before the pipeline is marked done
        finally:
            self._done.set()


def _stage_drops(stage: object | None) -> int:
    """A stage's own ``drops`` counter (0 for a stage that is absent or keeps none)."""
    return int(getattr(stage, "drops", 0))
