"""Audio chunks -> contiguous runs, for the streaming audio extractors (ASR and acoustic).

The chunks come as a `realtime.sources.Source` delivers them (16 kHz mono float32 in
[-1, 1], checked by `realtime.sources.audio.check_chunk`; nothing is converted here), but
their timestamps may jitter, and chunks may be missing (dropped by a full queue) or
overlap. `AudioRuns` keeps one timeline: a chunk within ``jitter_s`` of where the previous
one ended continues the run (its own sample count keeps time); a later one is preceded by
zeros up to ``max_gap_s``, beyond which a new run starts at the chunk's time; an earlier one
loses its overlap. `AudioInbox` is the bounded chunk queue in front of it that both
extractors drain.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
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


class AudioInbox:
    """An extractor's input: a queue of at most ``max_chunks`` chunks (the oldest dropped,
    counted in ``drops``) and the `AudioRuns` they make. Not thread-safe: one stage, one
    thread (or the caller's lock).

    `put` checks a chunk (ValueError for one that is not 16 kHz mono float32) and queues it,
    cheap and never blocking; `drain` yields the runs of everything queued, oldest first,
    raising ``captured_at_s`` (the capture time of the newest chunk taken, session seconds) as
    it takes each chunk; `end` makes the next chunk start a new run.
    """

    def __init__(self, max_chunks: int = 512, max_gap_s: float = 1.0) -> None:
        self.max_chunks = int(max_chunks)
        self.runs = AudioRuns(max_gap_s=max_gap_s)
        self._queue: deque[AudioChunk] = deque()
        self.drops = 0
        self.captured_at_s = 0.0

    def __len__(self) -> int:
        return len(self._queue)

    def put(self, chunk: AudioChunk) -> bool:
        """Queues ``chunk``; True when the queue was full and its oldest chunk was dropped."""
        check_chunk(chunk)
        full = len(self._queue) >= self.max_chunks
        if full:
            self._queue.popleft()
            self.drops += 1
        self._queue.append(chunk)
        return full

    def drain(self) -> Iterator[AudioRun]:
        while self._queue:
            chunk = self._queue.popleft()
            self.captured_at_s = max(self.captured_at_s, chunk.captured_at_s)
            run = self.runs.push(chunk)
            if run is not None:
                yield run

    def end(self) -> None:
        self.runs.end()
