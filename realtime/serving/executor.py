"""Cross-stream batching: one forward pass for the work that many streams have due.

`BatchingExecutor` is generic: streams (sessions) `submit` items; its one thread waits until
either ``max_batch`` items are queued or the oldest has waited ``max_wait_ms``, runs them with
one ``run_batch(items)`` call and hands each result back to its stream through a
`concurrent.futures.Future`. `SharedModels` puts the engine's two per-tick models behind two
such executors, and offers what a `Pipeline` calls (``predict``, ``encode_words``, and the
sessions' Whisper, `SharedTranscriber`, a third executor):
* the sentiment model: `Engine.predict_batch` zero-pads the windows to the longest, with
  their lengths, so each answer is the one the window gets alone (within float rounding);
* the MiniLM word encoder: `Engine.encode_words_batch` encodes every due word list in one
  padded forward. Each session still asks only when its words changed (`WordWindow` keeps
  the vectors of an unchanged window);
* Whisper (`SharedTranscriber`): each session's `StreamingASR` keeps its own buffer, VAD and
  commits; its transcriptions run together with the other sessions' in
  `realtime.extract.whisper_batch.WhisperBatch` (one encoder, decoder and alignment call per
  window size; each answer is exactly the one the call gets alone);
* the facial expression network (`SharedClassifier`, a fourth executor): each session's
  `realtime.extract.expression.ExpressionExtractor` keeps its own rate and queue; the crops it
  classifies run in one forward with the other sessions' (each answer the one its crops get
  alone, within float rounding: the network has no cross-sample state).

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
from typing import Any, Generic, TypeVar

import numpy as np

from realtime.clock import perf_s
from realtime.engine import Engine, EngineOutput
from realtime.types import Word

log = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")
WindowArrays = tuple[np.ndarray, np.ndarray, np.ndarray]  # (T, D_text), (T, D_audio), (T, D_video)


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
class _Request(Generic[T]):
    item: T
    submitted_s: float
    future: Future


class BatchingExecutor(Generic[T, R]):
    """One thread runs every stream's items in batches (see the module doc).
    run_batch: items -> their results, in order (an exception in place of a result fails
    that item's future only; raising fails the whole batch); name: the thread's name."""

    def __init__(self, run_batch: Callable[[Sequence[T]], Sequence[R]],
                 config: BatchConfig | None = None, name: str = "executor") -> None:
        self.config = config or BatchConfig()
        self.name = name
        self._run_batch = run_batch
        self._queue: deque[_Request[T]] = deque()
        self._cond = threading.Condition()
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._windows = self._batches = self._drops = self._failures = self._largest = 0

    # ---- lifecycle ----------------------------------------------------------------------
    def start(self) -> BatchingExecutor[T, R]:
        with self._cond:
            if self._thread is not None:
                raise RuntimeError("the executor was already started")
            self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
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

    def __enter__(self) -> BatchingExecutor[T, R]:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---- use ----------------------------------------------------------------------------
    def submit(self, item: T) -> Future:
        """Queues ``item``; the future gives its result (or the batch's error)."""
        future: Future = Future()
        with self._cond:
            if self._stopping:
                future.set_exception(ExecutorStopped("the executor stopped"))
                return future
            if len(self._queue) >= self.config.max_queue:
                self._drops += 1
                future.set_exception(ExecutorBusy(
                    f"{self.name}: {len(self._queue)} items already wait (max_queue)"))
                return future
            self._queue.append(_Request(item, perf_s(), future))
            self._cond.notify()
        return future

    def call(self, item: T) -> R:
        """`submit` and wait for the result (in the calling stream's thread)."""
        return self.submit(item).result()

    def stats(self) -> ExecutorStats:
        with self._cond:
            return ExecutorStats(self._windows, self._batches, self._drops, self._failures,
                                 self._windows / self._batches if self._batches else 0.0,
                                 self._largest)

    # ---- the thread ---------------------------------------------------------------------
    def _next_batch(self) -> list[_Request[T]]:
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
                outputs = self._run_batch([r.item for r in batch])
            except Exception as exc:  # the streams see the error; the executor goes on
                log.warning("%s: a batch of %d failed: %s", self.name, len(batch), exc)
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
                if isinstance(output, BaseException):  # this item failed, the others did not
                    request.future.set_exception(output)
                else:
                    request.future.set_result(output)


ASR_BATCH = BatchConfig(max_batch=16, max_wait_ms=5.0, max_queue=256)


class SharedTranscriber:
    """A `realtime.extract.asr.Transcriber` for many sessions: each session keeps its own
    `StreamingASR` (buffer, VAD, commits), and its Whisper calls, made from its ASR thread,
    queue into one `BatchingExecutor` whose thread runs the queued calls together
    (`realtime.extract.whisper_batch.WhisperBatch`: one encoder, decoder and alignment call
    per window size, each caller getting what it gets alone). A call refused by a full queue
    raises `ExecutorBusy` in its caller, a call that fails raises its own error in its caller
    only, and a call after `stop` raises `ExecutorStopped`.

    run_batch: requests -> their segment lists (or an exception in place of one); config:
    `ASR_BATCH` by default. A session's ASR thread waits for its one call at a time, so the
    queue holds at most one call per session; while a batch runs, the calls that arrive
    queue up and form the next batch, so ``max_wait_ms`` only needs to be short (5 ms: a
    Whisper pass on this CPU takes 100-400 ms)."""

    def __init__(self, run_batch: Callable[[Sequence[Any]], Sequence[Any]],
                 config: BatchConfig | None = None) -> None:
        self.executor: BatchingExecutor[Any, Any] = BatchingExecutor(
            run_batch, config or ASR_BATCH, name="executor:asr")

    @classmethod
    def for_engine(cls, engine: Engine, config: BatchConfig | None = None,
                   prompt_tokens: int | None = None) -> SharedTranscriber | None:
        """One over the engine's loaded Whisper; None for an engine without one (no
        streaming stages, or a test's stand-in ASR)."""
        from realtime.extract.asr import WhisperTranscriber
        from realtime.extract.stages import AsrFactory

        factory = engine.stages.new_asr
        if not (isinstance(factory, AsrFactory)
                and isinstance(factory.transcriber, WhisperTranscriber)):
            return None
        from realtime.extract.whisper_batch import WhisperBatch

        return cls(WhisperBatch(factory.transcriber.model, prompt_tokens).run, config)

    def transcribe(self, audio: np.ndarray, *, prompt: str | None = None, beam_size: int = 1,
                   min_window_s: float | None = None, min_tail_s: float = 0.0) -> list:
        from realtime.extract.whisper_batch import TranscribeRequest

        return self.executor.call(TranscribeRequest(audio, prompt, beam_size, min_window_s,
                                                    min_tail_s))

    def start(self) -> SharedTranscriber:
        self.executor.start()
        return self

    def stop(self, timeout_s: float = 2.0) -> bool:
        return self.executor.stop(timeout_s)


EXPRESSION_BATCH = BatchConfig(max_batch=32, max_wait_ms=5.0, max_queue=256)


class SharedClassifier:
    """A `realtime.extract.expression.Classifier` for many sessions: a session's
    ``classify(grey)`` ((N, 64, 64) uint8 crops, from its video thread) queues into one
    `BatchingExecutor` whose thread classifies every queued session's crops in one forward
    and hands each its (N, 7) rows. A video thread waits for its one call at a time, so the
    queue holds at most one call per session; ``max_wait_ms`` is short (5 ms: one crop costs
    about 5 ms of CPU). Errors reach the caller as in `SharedTranscriber`.

    classify_batch: the loaded network's ``classify``; config: `EXPRESSION_BATCH` by
    default."""

    def __init__(self, classify_batch: Callable[[np.ndarray], np.ndarray],
                 config: BatchConfig | None = None) -> None:
        self._classify = classify_batch
        self.executor: BatchingExecutor[np.ndarray, np.ndarray] = BatchingExecutor(
            self._run, config or EXPRESSION_BATCH, name="executor:expression")

    @classmethod
    def for_engine(cls, engine: Engine,
                   config: BatchConfig | None = None) -> SharedClassifier | None:
        """One over the engine's loaded expression network; None for an engine without one
        (no streaming stages, or a test's stand-in)."""
        from realtime.extract.stages import ExpressionFactory

        factory = engine.stages.new_expression
        if not isinstance(factory, ExpressionFactory):
            return None
        return cls(factory.classifier.classify, config)

    def _run(self, stacks: Sequence[np.ndarray]) -> list[np.ndarray]:
        probs = self._classify(np.concatenate(stacks))
        bounds = np.cumsum([len(s) for s in stacks])[:-1]
        return np.split(probs, bounds)

    def classify(self, grey: np.ndarray) -> np.ndarray:
        return self.executor.call(np.asarray(grey))

    def start(self) -> SharedClassifier:
        self.executor.start()
        return self

    def stop(self, timeout_s: float = 2.0) -> bool:
        return self.executor.stop(timeout_s)


class SharedModels:
    """The engine's models for many sessions: a `Pipeline` given this (its ``models``) sends
    its windows and word lists to the two executors, and its `StreamingASR` transcribes
    through ``transcriber`` (a `SharedTranscriber` over the engine's Whisper; None when the
    engine has none), and its expression extractor classifies through ``classifier`` (a
    `SharedClassifier` over the engine's expression network; None when it has none).
    `start`/`stop` (or ``with``) run the threads. config, words, asr, expression: the
    `BatchConfig` of each executor (asr: `ASR_BATCH`, expression: `EXPRESSION_BATCH` by
    default); asr_prompt_tokens: see `realtime.extract.whisper_batch` (None: whole prompts,
    each call as alone)."""

    def __init__(self, engine: Engine, config: BatchConfig | None = None,
                 words: BatchConfig | None = None, asr: BatchConfig | None = None,
                 asr_prompt_tokens: int | None = None,
                 expression: BatchConfig | None = None) -> None:
        self.engine = engine
        self.model: BatchingExecutor[WindowArrays, EngineOutput] = BatchingExecutor(
            engine.predict_batch, config, name="executor:model")
        self.words: BatchingExecutor[tuple[Word, ...], np.ndarray] = BatchingExecutor(
            engine.encode_words_batch, words or config, name="executor:words")
        self.transcriber = SharedTranscriber.for_engine(engine, asr, asr_prompt_tokens)
        self.classifier = SharedClassifier.for_engine(engine, expression)

    def predict(self, text: np.ndarray, audio: np.ndarray, video: np.ndarray) -> EngineOutput:
        return self.model.call((text, audio, video))

    def encode_words(self, words: Sequence[Word]) -> np.ndarray:
        return self.words.call(tuple(words))

    def start(self) -> SharedModels:
        self.model.start()
        self.words.start()
        for extra in (self.transcriber, self.classifier):
            if extra is not None:
                extra.start()
        return self

    def stop(self, timeout_s: float = 2.0) -> bool:
        joined = self.model.stop(timeout_s) & self.words.stop(timeout_s)
        for extra in (self.transcriber, self.classifier):
            if extra is not None:
                joined &= extra.stop(timeout_s)
        return joined

    def __enter__(self) -> SharedModels:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
