"""The soak's memory figure: RSS samples on a thread with a stop path, and the flatness
judgement after the warm-up."""

from __future__ import annotations

import threading

from benchmarks.memory import RssSampler, rss_mib


def test_rss_is_read_and_sampled_until_stopped():
    assert 1.0 < rss_mib() < 1_000_000
    sampler = RssSampler(interval_s=0.02)
    sampler.start()
    threading.Event().wait(0.2)
    sampler.stop()
    n = len(sampler.samples)
    assert n >= 3 and sampler._thread is not None and not sampler._thread.is_alive()
    threading.Event().wait(0.1)
    assert len(sampler.samples) == n  # nothing after stop


def test_flat_and_growing_memory_are_told_apart():
    sampler = RssSampler(30.0)
    sampler.samples = [(0.0, 900.0), (30.0, 1000.0), (60.0, 1010.0), (90.0, 1030.0)]
    flat = sampler.summary(warmup_s=30.0)
    assert flat["flat_within_5_pct"] is True and flat["growth_mib"] == 30.0
    assert flat["growth_mib_per_min"] == 30.0
    sampler.samples.append((120.0, 1080.0))
    growing = sampler.summary(warmup_s=30.0)
    assert growing["flat_within_5_pct"] is False and growing["growth_pct"] == 8.0
    assert sampler.summary(warmup_s=100.0)["flat"] is None  # one sample after warm-up
