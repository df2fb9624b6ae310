"""The one interface every capture source satisfies, and the bounded queue they share.

A source captures audio chunks and/or video frames, converts them to the pipeline's formats
(the contract every consumer relies on: see `Source`), stamps each with the session clock at
capture (``captured_at_s``) and puts it into a bounded queue. A live queue that is full drops
its OLDEST item and counts it (``drops``); a file replayed as fast as possible waits for room
instead (back-pressure), so nothing is lost. Every thread a source starts is joined by
``stop()`` within its timeout.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable
from typing import Generic, TypeVar

from realtime.clock import Clock, SessionClock, perf_s
from realtime.types import AudioChunk, VideoFrame

T = TypeVar("T")

# Frames a second that file and camera sources keep by default (decimation, not drops). The
# model sees 5 windows a second (a 0.2 s hop) and a word averages the face features over its
# ~0.3 s, so 10 frames a second give every window two new frames and every word about three;
# 15 made the face tracker and the expression model track half as many frames again, CPU
# the live session's budget (0.6 CPU-s per media second on 2 cores) did not have.
DEFAULT_MAX_FPS = 10.0

log = logging.getLogger(__name__)


class SourceError(RuntimeError):
    """A source cannot be opened or stopped delivering; the message says which and why."""


class RefusedMedia(ValueError):
    """One audio chunk or video frame outside the bounds a source accepts (checked before any
    conversion: `realtime.sources.audio.check_pcm`, `realtime.sources.image.check_picture`).
    ``key`` is the drop counter it is counted under ("audio_invalid", "video_invalid"); the
    message says what was wrong. A source drops the item, counts it and carries on."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(message)
        self.key = key


class DropQueue(Generic[T]):
    """A thread-safe FIFO of at most ``maxlen`` items.

    ``put(item)`` on a full queue drops the oldest item and counts it in ``dropped``;
    ``put(item, block=True)`` waits for room instead (until ``stop`` is set).
    """

    def __init__(self, maxlen: int, name: str = "queue") -> None:
        if maxlen < 1:
            raise ValueError(f"maxlen must be >= 1, got {maxlen}")
        self.maxlen = maxlen
        self.name = name
        self._items: deque[T] = deque()
        self._cond = threading.Condition()
        self.dropped = 0

    def put(self, item: T, block: bool = False, stop: threading.Event | None = None) -> bool:
        """Returns False only when a blocking put gave up because ``stop`` was set."""
        with self._cond:
            if block:
                while len(self._items) >= self.maxlen:
                    if stop is not None and stop.is_set():
                        return False
                    self._cond.wait(0.05)
            elif len(self._items) >= self.maxlen:
                self._items.popleft()
                self.dropped += 1
                log.debug("%s full: dropped its oldest item (%d so far)", self.name, self.dropped)
            self._items.append(item)
            self._cond.notify_all()
            return True

    def get_all(self, timeout_s: float = 0.0) -> list[T]:
        """Everything queued, oldest first; waits up to ``timeout_s`` for a first item."""
        with self._cond:
            if not self._items and timeout_s > 0:
                self._cond.wait(timeout_s)
            items = list(self._items)
            self._items.clear()
            self._cond.notify_all()
            return items

    def wake(self) -> None:
        """Wake any reader waiting in `get_all` (used when the source ends)."""
        with self._cond:
            self._cond.notify_all()

    def __len__(self) -> int:
        with self._cond:
            return len(self._items)


class Source:
    """Base class: queues, drop counters, the stop event and the threads to join.

    The contract of every source, relied on by every consumer (the extractors check it and
    do not convert): audio comes as `AudioChunk`s of 16 kHz (``realtime.sources.audio.RATE_HZ``)
    mono float32 samples in [-1, 1], converted by `realtime.sources.audio`; video as
    `VideoFrame`s of RGB uint8 (H, W, 3) images, converted by `realtime.sources.image`.

    Subclasses set ``name``, ``has_audio`` and ``has_video``, start their capture in
    `_start` (using `_spawn` for threads) and release devices in `_close`. Times are session
    seconds from ``clock``; ``started_at_s`` is the session time the source started at.
    """

    name: str = "source"
    has_audio: bool = False
    has_video: bool = False

    def __init__(
        self,
        clock: Clock | None = None,
        audio_queue_len: int = 200,
        video_queue_len: int = 30,
    ) -> None:
        self.clock: Clock = clock if clock is not None else SessionClock()
        self.audio_queue: DropQueue[AudioChunk] = DropQueue(audio_queue_len, "audio queue")
        self.video_queue: DropQueue[VideoFrame] = DropQueue(video_queue_len, "video queue")
        self._stop = threading.Event()
        self._ended = threading.Event()
        self._threads: list[threading.Thread] = []
        self._error: str | None = None
        self._started = False
        self.started_at_s = 0.0
        self._extra_drops: dict[str, int] = {}
        self._refusals: dict[str, str] = {}
        self._delivered_bytes = 0
        self._lock = threading.Lock()

    # -- interface -------------------------------------------------------------------
    def start(self) -> None:
        if self._started:
            raise RuntimeError(f"{self.name} was already started")
        self._started = True
        self.started_at_s = self.clock.now_s()
        self._start()

    def stop(self, timeout_s: float = 2.0) -> bool:
        """Stops capture and joins every thread; True when all joined within ``timeout_s``."""
        self._stop.set()
        try:
            self._close()
        finally:
            self._mark_ended()
        deadline = _Deadline(timeout_s)
        for thread in self._threads:
            if thread is not threading.current_thread():
                thread.join(deadline.left())
        return not any(t.is_alive() for t in self._threads)

    def read_audio(self, timeout_s: float = 0.0) -> list[AudioChunk]:
        """Audio chunks captured since the last call, oldest first."""
        chunks = self.audio_queue.get_all(timeout_s)
        self._count_delivered(sum(c.samples.nbytes for c in chunks))
        return chunks

    def read_frames(self, timeout_s: float = 0.0) -> list[VideoFrame]:
        """Video frames captured since the last call, oldest first."""
        frames = self.video_queue.get_all(timeout_s)
        self._count_delivered(sum(f.image.nbytes for f in frames))
        return frames

    @property
    def delivered_bytes(self) -> int:
        """Bytes of media read from this source so far: the converted samples (16 kHz
        float32) and frames (RGB uint8) as delivered, not what was dropped or still queued (a
        file replayed by `realtime.pipeline.Pipeline.run_to_end` reads its timeline instead
        and counts nothing here)."""
        with self._lock:
            return self._delivered_bytes

    def pending_audio(self) -> int:
        """Chunks captured and not yet read."""
        return len(self.audio_queue)

    def pending_frames(self) -> int:
        """Frames captured and not yet read."""
        return len(self.video_queue)

    @property
    def ended(self) -> bool:
        """Capture has ended (end of file, error or stop); queued items may remain."""
        return self._ended.is_set()

    @property
    def finished(self) -> bool:
        """Capture has ended and everything captured has been read."""
        return self.ended and self.pending_audio() == 0 and self.pending_frames() == 0

    @property
    def error(self) -> str | None:
        """Why capture ended early (device lost, decode error), or None."""
        return self._error

    @property
    def drops(self) -> dict[str, int]:
        """Items dropped so far, per queue."""
        with self._lock:
            extra = dict(self._extra_drops)
        return {"audio_queue": self.audio_queue.dropped, "video_queue": self.video_queue.dropped,
                **extra}

    @property
    def refusals(self) -> dict[str, str]:
        """Why the latest refused item of each kind was refused (drop key -> reason)."""
        with self._lock:
            return dict(self._refusals)

    @property
    def threads(self) -> tuple[threading.Thread, ...]:
        return tuple(self._threads)

    # -- for subclasses --------------------------------------------------------------
    def _start(self) -> None:
        raise NotImplementedError

    def _close(self) -> None:
        """Release devices; called once from `stop` (threads may still be running)."""

    def _spawn(self, target: Callable[[], None], what: str) -> threading.Thread:
        def run() -> None:
            try:
                target()
            except Exception as exc:  # noqa: BLE001 - reported through .error, never lost
                self._fail(f"{self.name}: {what} failed: {type(exc).__name__}: {exc}")
            finally:
                self._mark_ended()

        thread = threading.Thread(target=run, name=f"{self.name}:{what}", daemon=True)
        self._threads.append(thread)
        thread.start()
        return thread

    def _fail(self, message: str) -> None:
        if self._error is None:
            log.warning("%s", message)
            self._error = message
        self._mark_ended()

    def _mark_ended(self) -> None:
        self._ended.set()
        self.audio_queue.wake()
        self.video_queue.wake()

    def _refuse(self, refused: RefusedMedia) -> None:
        """Drops an item that failed its check: counted under ``refused.key``, the reason
        kept in `refusals` and logged (a warning the first time, then at debug level)."""
        with self._lock:
            first = refused.key not in self._refusals
            self._refusals[refused.key] = str(refused)
        log.log(logging.WARNING if first else logging.DEBUG, "%s: dropped an item (%s): %s",
                self.name, refused.key, refused)
        self._count_drop(refused.key)

    def _count_delivered(self, n: int) -> None:
        with self._lock:
            self._delivered_bytes += n

    def _count_drop(self, key: str, n: int = 1) -> None:
        log.debug("%s: dropped %d (%s)", self.name, n, key)
        with self._lock:
            self._extra_drops[key] = self._extra_drops.get(key, 0) + n


class _Deadline:
    """One timeout shared by several joins (durations via `realtime.clock.perf_s`)."""

    def __init__(self, total_s: float) -> None:
        self._end = perf_s() + total_s

    def left(self) -> float:
        return max(0.0, self._end - perf_s())
