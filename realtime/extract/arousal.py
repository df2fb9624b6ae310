"""Voice arousal (heuristic, not validated): how aroused the voice sounds relative to the
speaker's own running baseline in this session.

No offline speech-emotion model or labelled audio exists here, so this is a clearly named
heuristic, not a measurement of emotion. Every ``update`` reads the last ``span_s`` seconds:

- energy: mean log energy (dB) of the voiced acoustic frames;
- pitch level: median F0 (Hz) of the voiced frames;
- pitch range: 90th minus 10th percentile of that F0;
- speaking rate: committed words (from the ASR) ending in the span, per second.

Each is turned into a z-score against the session's running mean and standard deviation of
the same quantity (Welford, updated at every reading with voiced speech), clipped to +-3;
the arousal is their mean. While fewer than ``warmup_readings`` readings with voice have
formed the baseline, the value is NaN and ``warming_up`` is True (the dashboard says so).
Silence (no voiced frame in the span) gives NaN and leaves the baseline alone.

Push/poll, never reads the clock: `insert_frames` (acoustic `FeatureFrames`),
`insert_words`, then `update(t_end_s)` once per prediction.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

from realtime.types import FeatureFrames, Word

LABEL = "voice arousal (heuristic, not validated)"
FEATURES: tuple[str, ...] = ("energy_db", "pitch_hz", "pitch_range_hz", "words_per_s")
Z_CLIP = 3.0


@dataclass(frozen=True)
class ArousalReading:
    """value: mean clipped z-score (NaN while warming up or silent); warming_up: the baseline
    is not formed yet; readings: voiced readings in the baseline so far."""

    value: float
    warming_up: bool
    readings: int


class VoiceArousal:
    def __init__(self, pitch_hz_index: int, energy_db_index: int, span_s: float = 3.0,
                 warmup_readings: int = 25, max_frames: int = 2000) -> None:
        if span_s <= 0 or warmup_readings < 2:
            raise ValueError("span_s must be positive and warmup_readings at least 2")
        self._pitch, self._energy = pitch_hz_index, energy_db_index
        self.span_s, self.warmup_readings = span_s, warmup_readings
        self._frames: deque[tuple[float, float, float]] = deque(maxlen=max_frames)
        self._word_ends: deque[float] = deque(maxlen=200)
        n = len(FEATURES)
        self._count = 0
        self._mean, self._m2 = np.zeros(n), np.zeros(n)

    def insert_frames(self, frames: FeatureFrames) -> None:
        for t, row in zip(frames.t_s, frames.values, strict=True):
            self._frames.append((float(t), float(row[self._pitch]), float(row[self._energy])))

    def insert_words(self, words: list[Word] | tuple[Word, ...]) -> None:
        self._word_ends.extend(w.t1_s for w in words if w.committed)

    def features(self, t_end_s: float) -> np.ndarray | None:
        """The four prosody quantities over the span (FEATURES order); None when silent."""
        lo = t_end_s - self.span_s
        recent = np.array([f for f in self._frames if lo < f[0] <= t_end_s]).reshape(-1, 3)
        voiced = recent[recent[:, 1] > 0]
        if len(voiced) == 0:
            return None
        f0 = voiced[:, 1]
        words = sum(1 for t in self._word_ends if lo < t <= t_end_s)
        return np.array([voiced[:, 2].mean(), np.median(f0),
                         np.percentile(f0, 90) - np.percentile(f0, 10), words / self.span_s])

    def update(self, t_end_s: float) -> ArousalReading:
        x = self.features(t_end_s)
        if x is None:
            return ArousalReading(float("nan"), self._count < self.warmup_readings, self._count)
        value = float("nan")
        if self._count >= self.warmup_readings:
            std = np.sqrt(self._m2 / (self._count - 1))
            z = np.where(std > 1e-6, (x - self._mean) / np.maximum(std, 1e-6), 0.0)
            value = float(np.clip(z, -Z_CLIP, Z_CLIP).mean())
        self._count += 1
        delta = x - self._mean
        self._mean += delta / self._count
        self._m2 += delta * (x - self._mean)
        return ArousalReading(value, self._count <= self.warmup_readings, self._count)
