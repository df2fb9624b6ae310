"""realtime.extract.audio_runs.AudioInbox: the bounded chunk queue both audio extractors drain
(`AudioRuns` itself is tested with the acoustic extractor)."""

from __future__ import annotations

import numpy as np
import pytest

from realtime.extract.audio_runs import AudioInbox
from realtime.sources.audio import RATE_HZ
from realtime.types import AudioChunk


def chunk(t0_s: float, seconds: float = 0.1, captured_s: float | None = None,
          value: float = 1.0) -> AudioChunk:
    samples = np.full(round(seconds * RATE_HZ), value, np.float32)
    return AudioChunk(t0_s, samples, RATE_HZ, t0_s + seconds if captured_s is None else captured_s)


def test_a_full_inbox_drops_its_oldest_chunks_and_counts_them():
    inbox = AudioInbox(max_chunks=3)
    dropped = [inbox.put(chunk(0.1 * i, value=i + 1)) for i in range(5)]
    assert dropped == [False, False, False, True, True]
    assert inbox.drops == 2 and len(inbox) == 3
    runs = list(inbox.drain())
    assert len(inbox) == 0
    # chunks 3..5 are left; the first of them starts the stream, the rest continue it
    assert [r.restart for r in runs] == [True, False, False]
    assert [float(r.samples[0]) for r in runs] == [3.0, 4.0, 5.0]
    assert runs[0].t0_s == pytest.approx(0.2) and runs[2].t0_s == pytest.approx(0.4)


def test_drain_raises_the_capture_time_as_it_takes_each_chunk():
    inbox = AudioInbox()
    inbox.put(chunk(0.0, captured_s=0.5))
    inbox.put(chunk(0.1, captured_s=0.4))  # captured earlier: the newest stays 0.5
    inbox.put(chunk(0.2, captured_s=0.9))
    seen = [inbox.captured_at_s for _ in inbox.drain()]
    assert seen == [0.5, 0.5, 0.9] and inbox.captured_at_s == 0.9


def test_end_makes_the_next_chunk_start_a_new_run_and_bad_chunks_are_refused():
    inbox = AudioInbox(max_gap_s=1.0)
    inbox.put(chunk(0.0))
    assert [r.restart for r in inbox.drain()] == [True]
    inbox.put(chunk(0.1))
    assert [r.restart for r in inbox.drain()] == [False]
    inbox.end()
    inbox.put(chunk(0.2))
    assert [r.restart for r in inbox.drain()] == [True] and inbox.runs.restarts == 1
    with pytest.raises(ValueError, match="16000 Hz"):
        inbox.put(AudioChunk(0.0, np.zeros(441, np.float32), 44100, 0.0))
    assert len(inbox) == 0 and inbox.drops == 0
