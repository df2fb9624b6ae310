"""Thread-safe store of predictions: the latest one and a bounded history.

The pipeline publishes; the dashboard and the command line only read. The history is a
ring buffer of ``max_history`` predictions (at a 200 ms hop, the default keeps 20 minutes).
Only the latest prediction keeps its MMLatch masks (what the dashboard's masks panel
shows): a prediction's masks are about 19 KB (T x 475 float32 at T = 10), so 6000 of them
grew a live session's memory by several MiB a minute for its first 20 minutes, which read
as a leak in every soak (benchmarks/results/soak_notes.md).
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import replace

from realtime.types import Prediction


class PredictionStore:
    def __init__(self, max_history: int = 6000) -> None:
        if max_history < 1:
            raise ValueError(f"max_history must be >= 1, got {max_history}")
        self._lock = threading.Lock()
        self._history: deque[Prediction] = deque(maxlen=max_history)
        self._version = 0

    def publish(self, prediction: Prediction) -> None:
        with self._lock:
            if self._history and self._history[-1].masks is not None:
                self._history[-1] = replace(self._history[-1], masks=None)
            self._history.append(prediction)
            self._version += 1

    @property
    def version(self) -> int:
        """Number of predictions published so far (grows past the history's size)."""
        with self._lock:
            return self._version

    def latest(self) -> Prediction | None:
        with self._lock:
            return self._history[-1] if self._history else None

    def history(self, since_s: float | None = None) -> list[Prediction]:
        """Predictions still held, oldest first; only those with ``t_end_s > since_s``."""
        with self._lock:
            items = list(self._history)
        if since_s is None:
            return items
        return [p for p in items if p.t_end_s > since_s]

    def clear(self) -> None:
        with self._lock:
            self._history.clear()
