"""realtime.heap: with the mmap threshold fixed, a large buffer freed does not pull the next
large buffers into the heap (where they fragment it and RSS creeps), as glibc's dynamic
threshold does. Each case runs in a fresh interpreter: the setting is process-wide."""

from __future__ import annotations

import subprocess
import sys

import pytest

from benchmarks.memory import heap_mib
from realtime.heap import fix_mmap_threshold
from tests.helpers import REPO

SCRIPT = """
import sys
import numpy as np
from benchmarks.memory import heap_mib
from realtime.heap import fix_mmap_threshold, mmap_threshold_fixed
if sys.argv[1] == "fixed":
    assert fix_mmap_threshold() and fix_mmap_threshold()  # twice: still in force
    assert mmap_threshold_fixed() == 128 * 1024
big = np.ones(8 * 2**20, np.uint8)  # mmapped, then freed: glibc raises its threshold to 8 MiB
del big
before = heap_mib()
held = [np.ones(2 * 2**20, np.uint8) for _ in range(4)]  # 8 MiB in 2 MiB buffers
after = heap_mib()
print(round(after["mmapped"] - before["mmapped"], 1), round(after["in_use"] - before["in_use"], 1))
"""


def _run(mode: str) -> tuple[float, float]:
    out = subprocess.run([sys.executable, "-c", SCRIPT, mode], cwd=REPO, capture_output=True,
                         text=True, timeout=120, check=True).stdout.split()
    return float(out[0]), float(out[1])


@pytest.mark.skipif(heap_mib() is None, reason="glibc only")
def test_a_fixed_threshold_keeps_large_buffers_out_of_the_heap():
    mmapped, in_heap = _run("default")
    assert mmapped < 1.0 and in_heap >= 7.5  # glibc's default: the 2 MiB buffers in the heap
    mmapped, in_heap = _run("fixed")
    assert mmapped >= 7.5 and in_heap < 1.0  # fixed: each one mmapped, returned whole on free


def test_thresholds_glibc_cannot_take_are_refused():
    with pytest.raises(ValueError, match=r"mmap threshold must be in \(0, 32 MiB\]"):
        fix_mmap_threshold(0)
    with pytest.raises(ValueError, match="mmap threshold"):
        fix_mmap_threshold(64 * 2**20)


TRIM_SCRIPT = """
import numpy as np
from benchmarks.memory import rss_mib
from realtime.heap import fix_mmap_threshold, heap_mib, trim_heap
fix_mmap_threshold()
blocks, pins = [], []
for _ in range(800):  # 64 KiB buffers (below the threshold: from the heap), each pinned in
    blocks.append(np.ones(64 * 1024, np.uint8))  # place by a small block after it
    pins.append(bytearray(1024))
del blocks  # 50 MiB of free space between live blocks: malloc keeps it
kept = heap_mib()["free"], rss_mib()
assert trim_heap()
print(kept[0], round(kept[1] - rss_mib(), 1))
"""


@pytest.mark.skipif(heap_mib() is None, reason="glibc only")
def test_trimming_hands_free_space_between_live_blocks_back():
    out = subprocess.run([sys.executable, "-c", TRIM_SCRIPT], cwd=REPO, capture_output=True,
                         text=True, timeout=120, check=True).stdout.split()
    free_mib, released_mib = float(out[0]), float(out[1])
    assert free_mib >= 45 and released_mib >= 40
