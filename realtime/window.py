"""The word-aligned sliding window: what the model sees at each tick.

Rules (the contract with the models, which are trained on CMU-MOSI aligned the same way):

* Steps. The window ending at ``t_end_s`` holds the last ``max_words`` (default 20)
  committed words whose start lies within ``max_span_s`` (default 20 s) of ``t_end_s``,
  oldest first, one step per word. After them comes at most ONE open "tail" step.
* Utterances. Only the words of the current utterance are kept: the word steps start
  after the last utterance boundary, which is a `close_utterance` call (the pipeline makes
  one when the ASR's voice-activity detector closes an utterance after 0.5 s of silence)
  or a pause longer than ``utterance_gap_s`` (default 0.6 s) between the end of one
  committed word and the start of the next. The models learn from single CMU-MOSI
  opinion segments; a window that mixed a positive and a negative sentence would wash both
  out. ``utterance_gap_s=None`` leaves only the explicit closes.
* Word steps. A word spanning [t0_s, t1_s) gets its contextual MiniLM vector (the words
  are encoded together, so each vector depends on its neighbours) and the MEAN of the
  acoustic frames and of the face frames whose time t satisfies t0_s <= t < t1_s (start
  inclusive, end exclusive), as the CMU Multimodal SDK averages features over each word's
  interval for CMU-MOSI/MOSEI. A word with no acoustic frames in its interval gets zeros;
  with no face frames, zeros (so its face_present feature is 0). Frames without a face are
  rows of zeros with face_present=0 (see `realtime.extract.face`) and are averaged like any other,
  so a word's face_present feature is the fraction of its frames that had a face.
* Tail step. When frames arrived after the last word, one step covers
  [tail_start_s, t_end_s] (both ends inclusive, so the newest frame counts), where
  tail_start_s = max(last word's t1_s, t_end_s - max_tail_s). Its text vector is zero; its
  audio and face rows are the frame means as above. It lets face and voice move the
  prediction between words. ``max_tail_s`` (default 3 s) keeps a long pause from diluting
  what the face does now.
* Silence (no new words): the words stay until they fall out of ``max_span_s``, and the
  tail keeps tracking the newest audio and face frames.
* No speech yet: the tail step alone (zero text), from t_end_s - max_tail_s.
* Nothing at all (no word and no frame in range): `build` returns None.
* Missing face: zeros with face_present 0, as above; ``Window.face_present`` is the
  face_present flag of the newest face frame in range (False without frames).

Memory is bounded: frame batches older than the window's span are trimmed at every
`build`, and every buffer also has a hard length cap (oldest dropped first).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from realtime.types import FeatureFrames, Window, Word

TextEncoder = Callable[[Sequence[Word]], np.ndarray]


@dataclass(frozen=True)
class WindowConfig:
    """max_words: word steps kept; max_span_s: seconds of history; max_tail_s: longest
    tail step; utterance_gap_s: a pause between words longer than this (seconds) starts a
    new utterance, and only the current one is kept (None: no pause bound);
    max_batches: hard cap on buffered FeatureFrames batches per modality."""

    max_words: int = 20
    max_span_s: float = 20.0
    max_tail_s: float = 3.0
    utterance_gap_s: float | None = 0.6
    max_batches: int = 2048


class _FrameBuffer:
    """Time-ordered feature frames of one modality, held as the batches they came in."""

    def __init__(self, dim: int, max_batches: int) -> None:
        self.dim = dim
        self._batches: deque[FeatureFrames] = deque(maxlen=max_batches)
        self._cache: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None

    def add(self, frames: FeatureFrames) -> None:
        values = np.asarray(frames.values, np.float32).reshape(len(frames.t_s), -1)
        if values.shape[1] != self.dim:
            raise ValueError(f"expected {self.dim} features per frame, got {values.shape[1]}")
        if len(frames.t_s):
            self._batches.append(frames)
            self._cache = None

    def trim_before(self, t_s: float) -> None:
        while self._batches and float(self._batches[0].t_s[-1]) < t_s:
            self._batches.popleft()
            self._cache = None

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(t_s (N,), values (N, D), captured_at_s (N,)), sorted by time."""
        if self._cache is None:
            if not self._batches:
                self._cache = (np.zeros(0), np.zeros((0, self.dim), np.float32), np.zeros(0))
            else:
                t = np.concatenate([np.asarray(b.t_s, np.float64) for b in self._batches])
                v = np.concatenate([np.asarray(b.values, np.float32).reshape(len(b.t_s), -1)
                                    for b in self._batches])
                c = np.concatenate([np.full(len(b.t_s), b.captured_at_s) for b in self._batches])
                order = np.argsort(t, kind="stable")
                self._cache = (t[order], v[order], c[order])
        return self._cache

    def __len__(self) -> int:
        return sum(len(b.t_s) for b in self._batches)


class WordWindow:
    """Collects committed words and feature frames; `build(t_end_s)` makes the `Window`.

    text_encoder: words -> (len(words), text_dim) float32 (contextual; called only when
        the window's words change). face_present_index: the column of the face features
        that flags a detected face (None: no such column).
    Not thread-safe: the pipeline calls it under its own lock.
    """

    def __init__(
        self,
        text_encoder: TextEncoder,
        text_dim: int,
        audio_dim: int,
        video_dim: int,
        face_present_index: int | None = None,
        config: WindowConfig | None = None,
    ) -> None:
        self.config = config or WindowConfig()
        self.text_dim = text_dim
        self._encode = text_encoder
        self._face_index = face_present_index
        # (word, captured_at_s, utterance number); `close_utterance` starts a new number
        self._words: deque[tuple[Word, float, int]] = deque(
            maxlen=4 * self.config.max_words + 64)
        self._utterance = 0
        self.audio = _FrameBuffer(audio_dim, self.config.max_batches)
        self.video = _FrameBuffer(video_dim, self.config.max_batches)
        self._text_key: tuple | None = None
        self._text: np.ndarray = np.zeros((0, text_dim), np.float32)
        self.version = 0

    # -- input -----------------------------------------------------------------------
    def add_words(self, words: Iterable[Word], captured_at_s: float) -> int:
        """Committed words (tentative ones are ignored), with the capture time of the
        newest audio behind them. Words starting before the last kept word are skipped
        (a commit is final). Returns how many were added."""
        added = 0
        for word in words:
            if not word.committed:
                continue
            if self._words and word.t0_s < self._words[-1][0].t0_s:
                continue
            self._words.append((word, float(captured_at_s), self._utterance))
            added += 1
        if added:
            self.version += 1
        return added

    def close_utterance(self) -> None:
        """The utterance has ended: words added from now on start a new one."""
        if self._words and self._words[-1][2] == self._utterance:
            self._utterance += 1

    def add_audio(self, frames: FeatureFrames) -> None:
        self.audio.add(frames)
        self.version += 1

    def add_video(self, frames: FeatureFrames) -> None:
        self.video.add(frames)
        self.version += 1

    # -- output ----------------------------------------------------------------------
    def build(self, t_end_s: float) -> Window | None:
        cfg = self.config
        start_s = t_end_s - cfg.max_span_s
        self.audio.trim_before(start_s)
        self.video.trim_before(start_s)
        while self._words and self._words[0][0].t0_s < start_s:
            self._words.popleft()
        kept = [e for e in self._words if e[0].t0_s <= t_end_s][-cfg.max_words:]
        kept = kept[_utterance_start(kept, cfg.utterance_gap_s):]
        words = tuple(w for w, _, _ in kept)

        at, av, ac = self.audio.arrays()
        vt, vv, vc = self.video.arrays()
        intervals = [(w.t0_s, w.t1_s, False) for w in words]
        tail_start_s = max(words[-1].t1_s if words else -np.inf, t_end_s - cfg.max_tail_s)
        if tail_start_s <= t_end_s and (
            _count(at, tail_start_s, t_end_s, True) or _count(vt, tail_start_s, t_end_s, True)
        ):
            intervals.append((tail_start_s, t_end_s, True))
        if not intervals:
            return None

        steps = len(intervals)
        text = np.zeros((steps, self.text_dim), np.float32)
        if words:
            text[: len(words)] = self._text_for(words)
        audio = np.stack([_mean(at, av, a, b, inc) for a, b, inc in intervals])
        video = np.stack([_mean(vt, vv, a, b, inc) for a, b, inc in intervals])

        newest = [c for _, c, _ in kept]
        lo_s = intervals[0][0]
        for t, c in ((at, ac), (vt, vc)):
            i0, i1 = np.searchsorted(t, lo_s, "left"), np.searchsorted(t, t_end_s, "right")
            if i1 > i0:
                newest.append(float(c[i0:i1].max()))
        face_present = False
        if self._face_index is not None:
            i1 = int(np.searchsorted(vt, t_end_s, "right"))
            if i1 > 0 and vt[i1 - 1] >= start_s:
                face_present = bool(vv[i1 - 1, self._face_index] > 0.5)
        return Window(
            t_end_s=float(t_end_s),
            words=words,
            text=text,
            audio=audio.astype(np.float32),
            video=video.astype(np.float32),
            face_present=face_present,
            newest_input_t_s=max(newest) if newest else float(t_end_s),
        )

    def frames_between(self, modality: str, t0_s: float, t1_s: float) -> np.ndarray:
        """Rows of ``modality`` ("audio" or "video") with t0_s < t <= t1_s (for signals)."""
        t, v, _ = (self.audio if modality == "audio" else self.video).arrays()
        return v[np.searchsorted(t, t0_s, "right"): np.searchsorted(t, t1_s, "right")]

    def _text_for(self, words: tuple[Word, ...]) -> np.ndarray:
        key = tuple((w.t0_s, w.text) for w in words)
        if key != self._text_key:
            vectors = np.asarray(self._encode(words), np.float32)
            if vectors.shape != (len(words), self.text_dim):
                raise ValueError(f"text encoder returned {vectors.shape}, expected "
                                 f"{(len(words), self.text_dim)}")
            self._text_key, self._text = key, vectors
        return self._text


def _utterance_start(kept: list[tuple[Word, float, int]], gap_s: float | None) -> int:
    """Index of the first word after the last utterance boundary (see the module doc)."""
    start = 0
    for i in range(1, len(kept)):
        (before, _, n_before), (word, _, n) = kept[i - 1], kept[i]
        if n != n_before or (gap_s is not None and word.t0_s - before.t1_s > gap_s):
            start = i
    return start


def _count(t: np.ndarray, a: float, b: float, end_inclusive: bool) -> int:
    side = "right" if end_inclusive else "left"
    return int(np.searchsorted(t, b, side) - np.searchsorted(t, a, "left"))


def _mean(t: np.ndarray, v: np.ndarray, a: float, b: float, end_inclusive: bool) -> np.ndarray:
    """Mean of the rows with a <= t < b (or a <= t <= b); zeros when there are none."""
    i0 = int(np.searchsorted(t, a, "left"))
    i1 = int(np.searchsorted(t, b, "right" if end_inclusive else "left"))
    if i1 <= i0:
        return np.zeros(v.shape[1], np.float32)
    return v[i0:i1].mean(axis=0, dtype=np.float64).astype(np.float32)
