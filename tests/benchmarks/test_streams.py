"""benchmarks.streams: the stream driver counts what it submits, answers and drops, and
max_streams picks the largest N within the latency limit with no drops. (The figures come
from running the benchmark; these tests check its bookkeeping.)"""

from __future__ import annotations

import threading

import numpy as np
import pytest

from benchmarks.streams import StreamsResult, drive, main, max_streams
from realtime.engine import EngineOutput
from realtime.serving.executor import BatchConfig, BatchingExecutor

WINDOWS = [(np.zeros((n, 2), np.float32),) * 3 for n in (1, 4, 9)]


def run_with(predict, config, streams, seconds=1.0, rate_hz=10.0) -> StreamsResult:
    with BatchingExecutor(predict, config) as executor:
        return drive(executor, WINDOWS, streams, seconds, rate_hz)


def test_fast_model_answers_every_window_with_no_drops():
    sizes = []

    def fast(batch):
        sizes.append(len(batch))
        return [EngineOutput(0.0, None, "fast") for _ in batch]

    r = run_with(fast, BatchConfig(max_batch=16, max_wait_ms=5.0), streams=5)
    assert r.streams == 5 and r.submitted == 50 and r.answered == 50
    assert r.drops == 0 and r.errors == 0
    assert 0 <= r.p50_ms <= r.p95_ms <= r.p99_ms < 1000  # loose: the machine may be busy
    # answered over the wall time, which lasts at least until the last window is due (0.98 s):
    # no lower bound, that would measure the shared machine
    assert 0 < r.throughput_per_s <= round(50 / 0.98, 1) and sum(sizes) == 50


def test_a_model_slower_than_the_streams_drops_and_counts():
    lock = threading.Lock()

    def slow(batch):
        with lock:
            threading.Event().wait(0.15)  # one window costs 150 ms: 10 Hz x 3 streams is too much
        return [EngineOutput(0.0, None, "slow") for _ in batch]

    r = run_with(slow, BatchConfig(max_batch=1, max_wait_ms=0.0), streams=3)
    assert r.drops > 0 and r.answered + r.drops == 30 and r.answered <= 10
    assert r.p95_ms >= 150


def test_max_streams_is_the_largest_run_within_the_limit_without_drops():
    def result(n, p95, drops=0):
        return StreamsResult(n, 10, 10, drops, 0, p95 / 2, p95, p95, 1.0, 1.0, 0.1, 1.0, 0.0)

    runs = [result(10, 20), result(20, 90), result(40, 140, drops=2), result(80, 400)]
    assert max_streams(runs, 150.0) == 20
    assert max_streams(runs, 10.0) == 0


def test_bad_stream_counts_exit_2_with_a_message(capsys):
    assert main(["--streams", "ten"]) == 2
    assert "--streams must be positive integers" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--backend", "nowhere"])


def test_windows_saved_and_read_back_are_the_same(tmp_path):
    from benchmarks.streams import load_windows, save_windows

    rng = np.random.default_rng(0)
    windows = [tuple(rng.standard_normal((n, d)).astype(np.float32) for d in (5, 3, 2))
               for n in (1, 7, 3)]
    back = load_windows(save_windows(tmp_path / "w.npz", windows))
    assert len(back) == 3
    for a, b in zip(windows, back, strict=True):
        for x, y in zip(a, b, strict=True):
            np.testing.assert_array_equal(x, y)
    with pytest.raises(FileNotFoundError, match="--save-windows"):
        load_windows(tmp_path / "missing.npz")
