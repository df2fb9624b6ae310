"""Bounded run statistics of a pipeline: latency samples per stage, word commit delays,
compute time per stage against the media time it covered, and the update rate.

Everything is in-memory and bounded (the newest ``max_samples`` per series). Times come in
as session seconds from the data and the clock; compute durations from `perf_s` deltas.
"""

from __future__ import annotations

import os
import threading
from collections import deque
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Percentiles:
    """Milliseconds (or whatever unit was recorded) over ``n`` samples."""

    n: int
    p50: float
    p95: float
    p99: float
    mean: float
    max: float


def process_cpu_s() -> float:
    """CPU seconds (user + system) used by this process so far, all threads."""
    t = os.times()
    return t.user + t.system


class RunStats:
    def __init__(self, max_samples: int = 50_000) -> None:
        self._lock = threading.Lock()
        self._max = max_samples
        self._series: dict[str, deque[float]] = {}
        self._compute_s: dict[str, float] = {}
        self._media_s: dict[str, float] = {}
        self._cpu_s: dict[str, float] = {}
        self._emits: deque[float] = deque(maxlen=64)

    def add(self, series: str, value: float) -> None:
        with self._lock:
            q = self._series.get(series)
            if q is None:
                q = self._series[series] = deque(maxlen=self._max)
            q.append(float(value))

    def add_latencies(self, latency_ms: dict[str, float]) -> None:
        for stage, ms in latency_ms.items():
            if np.isfinite(ms):
                self.add(f"latency_ms.{stage}", ms)

    def add_compute(self, stage: str, seconds: float, media_s: float = 0.0,
                    cpu_s: float = 0.0) -> None:
        """``seconds`` (wall) and ``cpu_s`` (process CPU during the call: exact only when
        one thread drives every stage, as in a replay) spent by ``stage`` on ``media_s``
        seconds of input."""
        with self._lock:
            self._compute_s[stage] = self._compute_s.get(stage, 0.0) + seconds
            self._media_s[stage] = self._media_s.get(stage, 0.0) + media_s
            self._cpu_s[stage] = self._cpu_s.get(stage, 0.0) + cpu_s

    def emitted(self, at_s: float) -> None:
        with self._lock:
            self._emits.append(at_s)

    def updates_per_s(self, now_s: float, span_s: float = 5.0) -> float:
        with self._lock:
            recent = [t for t in self._emits if now_s - t <= span_s]
        return len(recent) / span_s

    def series(self, name: str) -> np.ndarray:
        with self._lock:
            return np.asarray(self._series.get(name, ()), np.float64)

    def names(self) -> list[str]:
        with self._lock:
            return sorted(self._series)

    def percentiles(self, name: str) -> Percentiles | None:
        x = self.series(name)
        if len(x) == 0:
            return None
        p50, p95, p99 = np.percentile(x, [50, 95, 99])
        return Percentiles(len(x), float(p50), float(p95), float(p99), float(x.mean()),
                           float(x.max()))

    def compute(self) -> dict[str, tuple[float, float]]:
        """stage -> (wall compute seconds, media seconds covered)."""
        with self._lock:
            return {k: (v, self._media_s.get(k, 0.0)) for k, v in self._compute_s.items()}

    def cpu(self) -> dict[str, float]:
        """stage -> process CPU seconds measured around its calls."""
        with self._lock:
            return dict(self._cpu_s)
