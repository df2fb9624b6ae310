"""The tick: what a session's stages have produced, turned every hop into a `Prediction`.

`Ticker` holds one session's model input: the word-aligned window (`realtime.window`), the
voice arousal (`realtime.extract.arousal`), the recent facial-expression rows, the
tentative words and the words not yet published. The stages feed it (from their threads, or
the replay loop; one lock guards the state):

* `add_frames(modality, frames)`: acoustic (``"audio"``) or face (``"video"``)
  `FeatureFrames` in session seconds; their ``computed_at_s`` becomes the clock's now;
* `add_asr(update, captured_at_s)`: a `realtime.extract.asr.AsrUpdate`; its committed words
  enter the window and the arousal once each (a word that does not start after the last
  one taken is ignored), ``closed`` closes the utterance, its tentative words replace the
  shown ones (`end_tentative` clears them when the audio ends);
* `add_expression(rows)`: the expression stage's rows (7 probabilities and a face flag).

`tick(t_end_s)` (one thread at a time: the pipeline's tick thread, or the replay loop)
publishes only when some input changed since the last prediction: it builds the window
ending at ``t_end_s``, runs the model on it (``(1, T, D)`` arrays through `ModelCalls`),
fuses the face (`models.expression.fuse_face` with the face weight W that answered with the
model, so a personal model swapped in brings its own) and publishes the `Prediction` to the
store; then it calls ``on_prediction`` and the window subscribers. It returns the
prediction, or None when nothing changed or no window could be built. A model error
propagates to the caller; a subscriber that raises is logged and the others still hear.

A prediction carries, besides the sentiment and the model's own (``model_sentiment``), the
facial expression (the 7 probabilities averaged over the face rows of the last
``expression_span_s``), its face valence (NaN without a face), the voice arousal (heuristic,
not validated), the signals read from the last ``signal_span_s`` of acoustic rows and the
last second of face rows, the drop counters (``drops()``) and the latencies in milliseconds
from data timestamps and the clock: per channel (``audio_``/``video_``)
capture->features and features->window, then window->prediction, ``audio_total`` /
``video_total`` (newest input of the channel -> prediction) and ``total`` (newest input in
the window -> prediction); ``capture_to_features`` and ``features_to_window`` are those of
the channel holding the newest input (`realtime.readout.latencies`). None of expression,
valence or arousal reach the model.

Window subscribers (`subscribe`, or ``on_window``) get each `Window` the model was given and
the `Prediction` made from it, right after it is published, on the thread that ticked; they
read the window's arrays and never change them.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Protocol

import numpy as np

from models.expression import face_valence, fuse_face
from realtime import readout
from realtime.clock import Clock, perf_s
from realtime.extract.arousal import VoiceArousal
from realtime.stats import RunStats, process_cpu_s
from realtime.store import PredictionStore
from realtime.types import FeatureFrames, FeatureLayout, Prediction, Signals, Window, Word
from realtime.window import WindowConfig, WordWindow

if TYPE_CHECKING:
    from realtime.engine import EngineOutput
    from realtime.extract.asr import AsrUpdate

NAN = readout.NAN
# the newest expression row may be this old and still shown: rows come at most 5 a second of
# media, fewer in a degraded session (1.25 a second at its lowest step), and lag behind the
# tick under load; a face gone for longer than this is no longer shown
EXPRESSION_STALE_S = 1.5
log = logging.getLogger(__name__)

WindowSubscriber = Callable[[Window, Prediction], None]
"""Called with each window the model was given and the prediction made from it."""


class ModelCalls(Protocol):
    """The two models a tick calls (an `Engine`, or `SharedModels`)."""

    def predict(self, text: np.ndarray, audio: np.ndarray,
                video: np.ndarray) -> EngineOutput: ...

    def encode_words(self, words: Sequence[Word]) -> np.ndarray: ...


class Ticker:
    """One session's model input and its tick (see the module doc).

    layout: the feature layout of the models' input; voice: the session has audio (voice
    arousal is read); drops: the session's drop counters, read into each prediction;
    on_prediction: called with each published prediction, on the ticking thread.
    """

    def __init__(self, models: ModelCalls, layout: FeatureLayout, store: PredictionStore,
                 stats: RunStats, clock: Clock, *, window: WindowConfig | None,
                 signal_span_s: float, expression_span_s: float, voice: bool,
                 drops: Callable[[], dict[str, int]],
                 on_prediction: Callable[[Prediction], None] | None = None,
                 on_window: Iterable[WindowSubscriber] = ()) -> None:
        self._models, self._layout, self._store = models, layout, store
        self._stats, self._clock, self._drops = stats, clock, drops
        self.signal_span_s, self.expression_span_s = signal_span_s, expression_span_s
        self.on_prediction = on_prediction
        self._window_subscribers: tuple[WindowSubscriber, ...] = tuple(on_window)
        self._subscribers_lock = threading.Lock()
        self._window = WordWindow(models.encode_words, layout.text_dim, layout.audio_dim,
                                  layout.video_dim, layout.face_present_index, window)
        self._arousal = (VoiceArousal(layout.pitch_hz_index, layout.energy_db_index)
                         if voice else None)
        self._lock = threading.RLock()
        self._expression_rows: deque[tuple[float, np.ndarray]] = deque(maxlen=64)
        self._tentative: tuple[Word, ...] = ()
        self._unpublished_words: list[str] = []
        self._last_commit_t0_s = -np.inf
        self._newest = {"audio": (NAN, NAN), "video": (NAN, NAN)}  # (captured_at, computed_at)
        self._published_key: tuple | None = None

    # -- subscribers -----------------------------------------------------------------
    def subscribe(self, subscriber: WindowSubscriber) -> Callable[[], None]:
        """Adds a window subscriber (any thread, also while ticking); returns the function
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

    # -- inputs (any thread) ---------------------------------------------------------
    @property
    def last_input_s(self) -> float:
        """Session time at which the newest audio or video that reached the features was
        captured; NaN before any."""
        with self._lock:
            times = [captured for captured, _ in self._newest.values() if captured == captured]
        return max(times) if times else NAN

    def add_frames(self, modality: str, frames: FeatureFrames | None) -> None:
        """Feature rows of ``"audio"`` or ``"video"``; None or no rows: nothing."""
        if frames is None or len(frames.t_s) == 0:
            return
        now_s = self._clock.now_s()
        frames = replace(frames, computed_at_s=now_s)
        self._stats.add(f"latency_ms.{modality}_capture_to_features",
                        (now_s - frames.captured_at_s) * 1000.0)
        with self._lock:
            (self._window.add_audio if modality == "audio" else self._window.add_video)(frames)
            if modality == "audio" and self._arousal is not None:
                self._arousal.insert_frames(frames)
            self._newest[modality] = (frames.captured_at_s, now_s)

    def add_asr(self, update: AsrUpdate, captured_at_s: float) -> None:
        """An ASR update; ``captured_at_s``: capture time of the newest audio it heard."""
        now_s = self._clock.now_s()
        fresh = []
        for word in update.committed:
            if word.committed and word.t0_s > self._last_commit_t0_s:
                fresh.append(word)
                self._last_commit_t0_s = word.t0_s
                self._stats.add("word_commit_ms", (now_s - word.t1_s) * 1000.0)
        with self._lock:
            self._window.add_words(fresh, captured_at_s)
            if self._arousal is not None:
                self._arousal.insert_words(fresh)
            if update.closed:
                self._window.close_utterance()
            self._unpublished_words.extend(w.text for w in fresh)
            tentative = tuple(update.tentative)
            if tentative != self._tentative:
                self._tentative = tentative

    def end_tentative(self) -> None:
        """The audio ended: no word is tentative any more."""
        with self._lock:
            self._tentative = ()

    def add_expression(self, rows: FeatureFrames | None) -> None:
        """The expression stage's rows (probabilities, then the face flag last)."""
        if rows is None:
            return
        with self._lock:
            for t_s, row in zip(rows.t_s, rows.values, strict=True):
                self._expression_rows.append((float(t_s), row))

    # -- the tick --------------------------------------------------------------------
    def tick(self, t_end_s: float) -> Prediction | None:
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
            expression = self.recent_expression(t_end_s)
            arousal = self._arousal.update(t_end_s) if self._arousal is not None else None
        built_s = self._clock.now_s()
        out = self._models.predict(window.text, window.audio, window.video)
        emitted_s = self._clock.now_s()
        self._stats.add_compute("window+model", perf_s() - t, 0.0, process_cpu_s() - c)
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
            face=window.face_present, signals=signals, latency_ms=latency, drops=self._drops(),
            emitted_at_s=emitted_s, model_name=out.model_name, masks=out.masks,
            new_words=new_words)
        self._store.publish(prediction)
        self._stats.add_latencies(latency)
        self._stats.emitted(emitted_s)
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

    def recent_expression(self, t_end_s: float) -> tuple[float, ...] | None:
        """Mean probabilities of the face rows in the ``expression_span_s`` that ends at the
        newest row at or before ``t_end_s``; None when that row is older than
        `EXPRESSION_STALE_S` or no face row is in that span. Anchored on the newest row, not
        on ``t_end_s``, so a face classified less often (a degraded session) or late (a
        loaded machine) is still shown rather than flickering to "no face"."""
        upto = [(t, r) for t, r in self._expression_rows if t <= t_end_s]
        if not upto or t_end_s - upto[-1][0] > EXPRESSION_STALE_S:
            return None
        lo = upto[-1][0] - self.expression_span_s
        rows = [r for t, r in upto if t > lo and r[-1] > 0.5]
        if not rows:
            return None
        return tuple(round(float(p), 6) for p in np.mean(rows, axis=0)[:-1])

    def _signals(self, window: Window, t_end_s: float) -> Signals:
        audio = self._window.frames_between("audio", t_end_s - self.signal_span_s, t_end_s)
        video = self._window.frames_between("video", t_end_s - 1.0, t_end_s)
        return readout.signals(audio, video, self._layout, window.face_present)
