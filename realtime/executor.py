"""Cross-stream batching: one forward pass for the windows that many streams have due.

Streams (sessions) `submit` their windows; the executor's one thread waits until either
``max_batch`` windows are queued or the oldest has waited ``max_wait_ms``, runs them through
`Engine.predict_batch` (zero-padded to the longest window, with their lengths: each answer is
the one the window gets alone, within float rounding) and hands each `EngineOutput` back to
its stream through a `concurrent.futures.Future`.

Why the defaults (`BatchConfig`): a prediction's budget is 150 ms at p95 on CPU from the
window to its answer. On this project's 2-core machine one MMLatch forward takes ~19 ms at
batch 1 and ~3.5 ms a window at batch 128, so a window that waits 10 ms for company costs
half a batch-1 forward and lets one forward serve every stream due in that time; 64 windows
(~0.25 s of model time on one CPU thread) bound the time the last window of a full batch
waits behind the others. On a GPU a batch of 64 costs about the same as a batch of 1, so
``max_batch`` can grow with the number of streams.

The queue is bounded (``max_queue``): a window submitted to a full queue is refused at once
(its future raises `ExecutorBusy`) and counted in ``drops``. `stop` ends the thread and fails
every waiting future with `ExecutorStopped`; nothing waits forever.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass

import numpy as np

from realtime.clock import perf_s
from realtime.engine import EngineOutput

log = logging.getLogger(__name__)

WindowArrays = tuple[np.ndarray, np.ndarray, np.ndarray]  # (T, D_text), (T, D_audio), (T, D_video)
PredictBatch = Callable[[Sequence[WindowArrays]], list[EngineOutput]]


class ExecutorStopped(RuntimeError):
    """The executor was stopped before this window ran."""


class ExecutorBusy(RuntimeError):
    """The executor's queue was full; the window was dropped (and counted)."""


@dataclass(frozen=True)
class BatchConfig:
    """max_batch: windows per forward pass (1: no batching, one forward per window);
    max_wait_ms: the longest the oldest queued window waits for others to join its batch;
    max_queue: windows waiting at most, beyond which submissions are refused."""

    max_batch: int = 64
    max_wait_ms: float = 10.0
    max_queue: int = 4096

    def __post_init__(self) -> None:
        if self.max_batch < 1 or self.max_queue < self.max_batch or self.max_wait_ms < 0:
            raise ValueError("BatchConfig needs max_batch >= 1, max_queue >= max_batch and "
                             f"max_wait_ms >= 0 (got {self})")


@dataclass(frozen=True)
class ExecutorStats:
    """Counts since start: windows run, forward passes, refused windows, failed batches;
    mean and largest batch size."""

    windows: int
    batches: int
    drops: int
    failures: int
    mean_batch: float
    max_batch: int


@dataclass
class _Request:
    window: WindowArrays
    submitted_s: float
    future: Future


class BatchingExecutor:
    """One thread runs every stream's windows in batches (see the module doc)."""

    def __init__(self, predict_batch: PredictBatch, config: BatchConfig | None = None) -> None:
        self.config = config or BatchConfig()
        self._predict_batch = predict_batch
        self._queue: deque[_Request] = deque()
        self._cond = threading.Condition()
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._windows = self._batches = self._drops = self._failures = self._largest = 0

    # ---- lifecycle ----------------------------------------------------------------------
    def start(self) -> BatchingExecutor:
        with self._cond:
            if self._thread is not None:
                raise RuntimeError("the executor was already started")
            self._thread = threading.Thread(target=self._run, name="executor", daemon=True)
            self._thread.start()
        return self

    def stop(self, timeout_s: float = 2.0) -> bool:
        """Stops the thread (after the batch in flight) and fails every queued window with
        `ExecutorStopped`; returns whether the thread ended within ``timeout_s``."""
        with self._cond:
            self._stopping = True
            pending = list(self._queue)
            self._queue.clear()
            self._cond.notify_all()
        for request in pending:
            request.future.set_exception(ExecutorStopped("the executor stopped"))
        thread = self._thread
        if thread is None:
            return True
        thread.join(timeout_s)
        return not thread.is_alive()

    def __enter__(self) -> BatchingExecutor:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---- use ----------------------------------------------------------------------------
    def submit(self, text: np.ndarray, audio: np.ndarray, video: np.ndarray) -> Future:
        """Queues one window (T, D_m) per modality; the future gives its `EngineOutput`."""
        future: Future = Future()
        with self._cond:
            if self._stopping:
                future.set_exception(ExecutorStopped("the executor stopped"))
                return future
            if len(self._queue) >= self.config.max_queue:
                self._drops += 1
                future.set_exception(ExecutorBusy(
                    f"{len(self._queue)} windows already wait (max_queue)"))
                return future
            self._queue.append(_Request((text, audio, video), perf_s(), future))
            self._cond.notify()
        return future

    def predict(self, text: np.ndarray, audio: np.ndarray, video: np.ndarray) -> EngineOutput:
        """`submit` and wait: the drop-in for `Engine.predict` in a stream's thread."""
        return self.submit(text, audio, video).result()

    def stats(self) -> ExecutorStats:
        with self._cond:
            return ExecutorStats(self._windows, self._batches, self._drops, self._failures,
                                 self._windows / self._batches if self._batches else 0.0,
                                 self._largest)

    # ---- the thread ---------------------------------------------------------------------
    def _next_batch(self) -> list[_Request]:
        """Waits for a batch: ``max_batch`` windows, or what is queued once the oldest has
        waited ``max_wait_ms``. Empty when stopping."""
        max_wait_s = self.config.max_wait_ms / 1000.0
        with self._cond:
            while not self._queue and not self._stopping:
                self._cond.wait(0.5)
            while not self._stopping and len(self._queue) < self.config.max_batch:
                left = self._queue[0].submitted_s + max_wait_s - perf_s()
                if left <= 0:
                    break
                self._cond.wait(left)
            if self._stopping:
                return []
            return [self._queue.popleft()
                    for _ in range(min(self.config.max_batch, len(self._queue)))]

    def _run(self) -> None:
        while True:
            batch = self._next_batch()
            if not batch:
                return
            try:
                outputs = self._predict_batch([r.window for r in batch])
            except Exception as exc:  # the streams see the error; the executor goes on
                log.warning("a batch of %d windows failed: %s", len(batch), exc)
                with self._cond:
                    self._failures += 1
                for request in batch:
                    request.future.set_exception(exc)
                continue
            with self._cond:
                self._windows += len(batch)
                self._batches += 1
                self._largest = max(self._largest, len(batch))
            for request, output in zip(batch, outputs, strict=True):
                request.future.set_result(output)
