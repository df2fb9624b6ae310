"""Audio chunks -> contiguous runs, for the streaming audio extractors (ASR and acoustic).

The chunks come as a `realtime.sources.Source` delivers them (16 kHz mono float32 in
[-1, 1], checked by `realtime.sources.audio.check_chunk`; nothing is converted here), but
their timestamps may jitter, and chunks may be missing (dropped by a full queue) or
overlap. `AudioRuns` keeps one timeline: a chunk within ``jitter_s`` of where the previous
one ended continues the run (its own sample count keeps time); a later one is preceded by
zeros up to ``max_gap_s``, beyond which a new run starts at the chunk's time; an earlier one
loses its overlap.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from realtime.sources.audio import RATE_HZ, check_chunk
from realtime.types import AudioChunk


@dataclass(frozen=True)
class AudioRun:
    """Contiguous 16 kHz samples starting at session time ``t0_s``; ``restart``: a long gap
    (or the start of the stream) separates it from what came before."""

    t0_s: float
    samples: np.ndarray
    restart: bool


class AudioRuns:
    """push(chunk) -> the run it continues or starts; `end()` makes the next chunk start a
    new run. Counts ``gap_filled_s``, ``overlap_dropped_s`` and ``restarts``."""

    def __init__(self, max_gap_s: float = 1.0, jitter_s: float = 0.1) -> None:
        self.max_gap_s, self.jitter_s = float(max_gap_s), float(jitter_s)
        self._in_end_s: float | None = None  # session time just after the last sample
        self._out_t0_s = 0.0
        self._out_count = 0
        self._restart = True  # the next run out starts a new run
        self.gap_filled_s = 0.0
        self.overlap_dropped_s = 0.0
        self.restarts = 0

    def push(self, chunk: AudioChunk) -> AudioRun | None:
        """Raises ValueError for a chunk that is not 16 kHz mono float32."""
        check_chunk(chunk)
        x = chunk.samples
        t0 = float(chunk.t0_s)
        if self._in_end_s is not None:
            delta = t0 - self._in_end_s
            if delta > self.max_gap_s:
                self.end()
            elif delta > self.jitter_s:
                self.gap_filled_s += delta
                x = np.concatenate([np.zeros(round(delta * RATE_HZ), np.float32), x])
            elif delta < -self.jitter_s:
                cut = min(len(x), round(-delta * RATE_HZ))
                self.overlap_dropped_s += cut / RATE_HZ
                x = x[cut:]
        if self._in_end_s is None:
            self._out_t0_s, self._out_count, self._restart = t0, 0, True
            self._in_end_s = t0
        self._in_end_s += len(x) / RATE_HZ
        if len(x) == 0:
            return None
        run = AudioRun(self._out_t0_s + self._out_count / RATE_HZ, x, self._restart)
        self._out_count += len(x)
        self._restart = False
        return run

    def end(self) -> None:
        """The stream ended (or broke): the next chunk starts a new run."""
        if self._in_end_s is not None:
            self.restarts += 1
        self._in_end_s = None
