"""Resident memory (RSS) of this process, sampled on a thread: the soak's memory figure.

`RssSampler(interval_s)` reads ``/proc/self/statm`` every ``interval_s`` seconds from
`start` to `stop` (a stop event; the thread is joined), and with each sample glibc's heap
figures (`heap_mib`: what malloc hands out, what it keeps free, what it mmapped).
`summary(warmup_s)` says whether RSS stayed flat: growth from the first sample after the
warm-up to the last, in MiB, in percent and in MiB per minute.

Why the heap figures: RSS that grows while the bytes malloc has handed out stay flat is
memory malloc keeps (freed but not returned: fragmentation, a raised mmap threshold), not a
leak (`realtime.heap`, where `heap_mib` and `trim_heap` live).
"""

from __future__ import annotations

import logging
import os
import threading

from realtime.clock import perf_s
from realtime.heap import heap_mib, trim_heap

__all__ = ["FLAT_PCT", "RssSampler", "heap_mib", "rss_mib", "trim_heap"]

log = logging.getLogger(__name__)

FLAT_PCT = 5.0  # the soak's target: RSS within 5 % after warm-up


def rss_mib() -> float:
    """This process's resident set size, MiB (Linux /proc)."""
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


class RssSampler:
    def __init__(self, interval_s: float = 30.0) -> None:
        self.interval_s = interval_s
        self.samples: list[tuple[float, float]] = []  # (seconds since start, MiB)
        self.heap: list[dict[str, float] | None] = []  # `heap_mib` with each sample
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._t0_s = 0.0

    def start(self) -> None:
        self._t0_s = perf_s()
        self._sample()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5.0)
        self._sample()

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self._sample()

    def _sample(self) -> None:
        self.samples.append((round(perf_s() - self._t0_s, 1), round(rss_mib(), 1)))
        self.heap.append(heap_mib())
        log.info("rss %.1f MiB at %.0f s", self.samples[-1][1], self.samples[-1][0])

    def summary(self, warmup_s: float) -> dict:
        after = [(t, m) for t, m in self.samples if t >= warmup_s]
        if len(after) < 2:
            return {"samples": self.samples, "warmup_s": warmup_s, "flat": None,
                    "note": "too short: fewer than 2 samples after the warm-up"}
        (t0, m0), (t1, m1) = after[0], after[-1]
        peak = max(m for _, m in after)
        growth_pct = 100.0 * (m1 - m0) / m0
        return {
            "samples": self.samples, "interval_s": self.interval_s, "warmup_s": warmup_s,
            "after_warmup_mib": m0, "end_mib": m1, "peak_after_warmup_mib": peak,
            "growth_mib": round(m1 - m0, 1), "growth_pct": round(growth_pct, 2),
            "growth_mib_per_min": round((m1 - m0) / max((t1 - t0) / 60.0, 1e-9), 2),
            f"flat_within_{FLAT_PCT:g}_pct": bool(100.0 * (peak - m0) / m0 <= FLAT_PCT),
        }
