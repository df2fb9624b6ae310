"""glibc's malloc and a long live session: keep large buffers out of the heap.

Why (issue 16, benchmarks/results/soak_notes.md): a real-speed session's RSS grew about
9 MiB a minute, not in Python objects and not per thread arena. glibc serves a request above
its mmap threshold (128 KiB at start) with its own mmap, given back on free; but each time
such a block is freed it raises the threshold to that block's size (up to 32 MiB), so after
the first few frees Whisper's audio and mel buffers (up to 15 s of audio, 80 x 3000 floats),
decoded 640x480 frames and torch's tensors all come from the arenas' heaps. Their lifetimes
interleave across the session's threads, the heaps fragment, and freed space in the middle
of a heap is never returned: RSS creeps while the bytes in use hardly move. Measured with
``python -m benchmarks.memory_bisect --stage pipeline:full --paced`` (glibc's figures next
to RSS): the growth is in the heaps, it needs the ASR's buffers, and with the threshold fixed
at its starting value the heap's free space stops growing.

`heap_mib` reads glibc's figures (in use, free in the arenas, mmapped), `trim_heap` returns
the arenas' free pages (``malloc_trim(0)``); the benchmarks sample them next to RSS.

`fix_mmap_threshold` sets the threshold once (``mallopt(M_MMAP_THRESHOLD, ...)``, which also
turns the dynamic raising off): every block above it is mmapped and returned whole on free.
It is process-wide (like torch's thread count), so an entry point sets it, once, for a
process that runs live sessions (`realtime.runtime.apply_process_settings`); it does nothing
where the C library is not glibc. The cost is a few more mmap/munmap calls for large buffers
(measured in the notes).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import threading
from functools import cache

log = logging.getLogger(__name__)

M_MMAP_THRESHOLD = -3  # glibc's malloc.h
DEFAULT_MMAP_THRESHOLD_BYTES = 128 * 1024  # glibc's starting value

_lock = threading.Lock()
_applied: int | None = None


class _MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
        "fordblks", "keepcost")]


@cache
def _glibc() -> ctypes.CDLL | None:
    """glibc >= 2.33 (it has mallinfo2), else None."""
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
    except OSError:
        return None
    if libc is None or not all(hasattr(libc, f) for f in ("mallopt", "mallinfo2",
                                                           "malloc_trim")):
        return None
    libc.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    libc.mallopt.restype = ctypes.c_int
    libc.mallinfo2.restype = _MallInfo2
    libc.malloc_trim.argtypes = [ctypes.c_size_t]
    return libc


def heap_mib() -> dict[str, float] | None:
    """glibc's malloc, all arenas, MiB: ``in_use`` (handed out and not freed), ``free``
    (freed, kept in the arenas), ``mmapped`` (large blocks, returned on free). None where the
    C library is not glibc >= 2.33."""
    libc = _glibc()
    if libc is None:
        return None
    m = libc.mallinfo2()
    return {"in_use": round(m.uordblks / 2**20, 1), "free": round(m.fordblks / 2**20, 1),
            "mmapped": round(m.hblkhd / 2**20, 1)}


def trim_heap() -> bool:
    """glibc's ``malloc_trim(0)``: returns the arenas' free pages to the system; True when
    some memory was released (False also where there is no glibc)."""
    libc = _glibc()
    return bool(libc.malloc_trim(0)) if libc is not None else False


def fix_mmap_threshold(threshold_bytes: int = DEFAULT_MMAP_THRESHOLD_BYTES) -> bool:
    """Fixes glibc's mmap threshold at ``threshold_bytes`` for this process (see the module
    doc); True when it is in force (also when an earlier call set the same value), False
    where there is no glibc or it refused. ValueError for a threshold glibc cannot take
    (<= 0 or above 32 MiB)."""
    global _applied
    if not 0 < threshold_bytes <= 32 * 2**20:
        raise ValueError(f"an mmap threshold must be in (0, 32 MiB], got {threshold_bytes}")
    with _lock:
        if _applied == threshold_bytes:
            return True
        libc = _glibc()
        if libc is None or libc.mallopt(M_MMAP_THRESHOLD, int(threshold_bytes)) != 1:
            log.info("malloc's mmap threshold left as it is (no glibc, or mallopt refused)")
            return False
        _applied = threshold_bytes
    log.info("malloc's mmap threshold fixed at %d KiB", threshold_bytes // 1024)
    return True


def mmap_threshold_fixed() -> int | None:
    """The threshold `fix_mmap_threshold` set in this process (bytes), or None."""
    return _applied
