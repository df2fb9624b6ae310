"""The only module that reads the wall clock.

A `Clock` gives session time in float seconds (``now_s``), waits until a session time
(``sleep_until``) and measures compute durations (``stopwatch``). `SessionClock` is live:
monotonic time since the session started. `ReplayClock` is driven by the data: it jumps to
whatever time it is asked to wait for, so a replay with ``--fast`` runs as fast as the CPU
allows and gives the same timestamps (and so the same predictions) every run.
"""

from __future__ import annotations

import threading
import time
from typing import Protocol


class Clock(Protocol):
    def now_s(self) -> float: ...

    def sleep_until(self, t_s: float, stop: threading.Event | None = None) -> bool:
        """Wait until session time ``t_s``; returns False if ``stop`` was set first."""
        ...


def perf_s() -> float:
    """Monotonic seconds with an arbitrary origin, for measuring compute durations."""
    return time.perf_counter()


def wall_time_iso() -> str:
    """Local wall-clock time, ISO 8601, for naming session logs."""
    return time.strftime("%Y-%m-%dT%H:%M:%S")


def wall_time_s() -> float:
    """Wall-clock seconds since the Unix epoch, for comparing with file times (retention)."""
    return time.time()


class SessionClock:
    """Live time: seconds since construction, from the monotonic clock."""

    def __init__(self) -> None:
        self._t0 = time.monotonic()

    def now_s(self) -> float:
        return time.monotonic() - self._t0

    def sleep_until(self, t_s: float, stop: threading.Event | None = None) -> bool:
        stop = stop or threading.Event()
        while True:
            left = t_s - self.now_s()
            if left <= 0:
                return not stop.is_set()
            if stop.wait(min(left, 0.05)):
                return False


class ReplayClock:
    """Data-driven time for tests and ``--fast``: ``sleep_until`` advances instantly.

    Time never goes backwards; ``advance_to`` and ``sleep_until`` with an earlier time are
    no-ops. Thread-safe.
    """

    def __init__(self, start_s: float = 0.0) -> None:
        self._t = float(start_s)
        self._lock = threading.Lock()

    def now_s(self) -> float:
        with self._lock:
            return self._t

    def advance_to(self, t_s: float) -> None:
        with self._lock:
            self._t = max(self._t, float(t_s))

    def sleep_until(self, t_s: float, stop: threading.Event | None = None) -> bool:
        if stop is not None and stop.is_set():
            return False
        self.advance_to(t_s)
        return True
