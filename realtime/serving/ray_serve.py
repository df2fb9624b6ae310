"""Beyond one machine: the batched sentiment model and MiniLM word encoder as a Ray Serve
deployment, and the client that lets a `Pipeline` use it.

`SentimentModels` is the deployment. Each replica loads the two per-tick models itself
(``Engine.load(checkpoint, stages=False)``: the bundled checkpoint unless one is given, no
Whisper or face models) and answers two `@serve.batch` methods, ``predict`` (a window ->
`EngineOutput`, through `Engine.predict_batch`: one padded forward for the batch) and
``encode_words`` (a word list -> its vectors, through `Engine.encode_words_batch`). Their
``max_batch_size`` and ``batch_wait_timeout_s`` are the local executor's `BatchConfig`
(``max_batch``, ``max_wait_ms``); ``max_ongoing_requests`` is twice the larger batch size, so
a batch can fill while the previous one runs, and ``max_queued_requests`` is ``max_queue``:
past it a call is refused at once (Ray's back-pressure), counted as a drop and raised as
`realtime.serving.executor.ExecutorBusy`, as the local executor does. The replica keeps no session
state: a window or a word list comes in, its answer goes out; it only counts its batches.

Per-session state (the source, ASR buffer, acoustic and face stages, `WordWindow`, store)
stays in the session's own process, in its `Pipeline`: `RayModels` gives that pipeline the
two calls of `realtime.pipeline.ModelCalls` (``Pipeline(..., models=RayModels(...))``,
``SessionManager(..., shared=...)``), each a handle call waited on in the caller's thread.

`RayServe.connect` starts a local Ray instance (no ``address``) or joins an existing
cluster (``address``, e.g. ``"ray://head:10001"`` or ``"head:6379"``), deploys the
application with handles only (no HTTP proxy) and returns the client; `RayServe.close`
shuts down what it started (a local instance: Serve, then Ray) or, on a cluster, only
disconnects and leaves the deployment serving others. GPUs: with ``num_gpus=None`` a replica
takes `GPU_SHARE` of a GPU (and runs on ``cuda``) when the cluster has one, else runs on CPU;
a fraction lets several replicas share one GPU. Every node that runs a replica needs this
project importable (the same checkout and packages); a local instance gets the driver's
folder on its workers' ``PYTHONPATH``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import ray
from ray import serve
from ray.serve.exceptions import BackPressureError

from realtime.engine import Engine, EngineOutput
from realtime.serving.executor import BatchConfig, ExecutorBusy, ExecutorStats, WindowArrays
from realtime.types import Word

log = logging.getLogger(__name__)

GPU_SHARE = 0.25  # a replica's share of a GPU when the cluster has one (num_gpus=None)
PROJECT_ROOT = Path(__file__).resolve().parents[2]


class RayServeError(RuntimeError):
    """Ray could not start, join the cluster or deploy the models (the message says which)."""


@dataclass(frozen=True)
class RayServeConfig:
    """address: an existing cluster to join (None: start a local instance on this machine);
    checkpoint_dir: the sentiment model folder the replicas load (None: the bundled one);
    num_gpus: each replica's share of a GPU (None: `GPU_SHARE` when the cluster has a GPU,
    else 0); num_cpus: each replica's CPUs; replicas: how many; app_name: the Serve
    application's name (one per configuration on a shared cluster)."""

    address: str | None = None
    checkpoint_dir: Path | None = None
    num_gpus: float | None = None
    num_cpus: float = 1.0
    replicas: int = 1
    app_name: str = "sentiment-models"
    model: BatchConfig = field(default_factory=BatchConfig)
    words: BatchConfig = field(default_factory=BatchConfig)

    def __post_init__(self) -> None:
        if self.replicas < 1 or self.num_cpus < 0 or (self.num_gpus or 0) < 0:
            raise ValueError(f"RayServeConfig needs replicas >= 1 and no negative CPU or GPU "
                             f"share (got {self})")


@dataclass
class _Counts:
    windows: int = 0
    batches: int = 0
    largest: int = 0

    def add(self, size: int) -> None:
        self.windows += size
        self.batches += 1
        self.largest = max(self.largest, size)

    def stats(self, drops: int = 0) -> ExecutorStats:
        return ExecutorStats(self.windows, self.batches, drops, 0,
                             self.windows / self.batches if self.batches else 0.0, self.largest)


@serve.deployment
class SentimentModels:
    """The replica: the two per-tick models, batched (see the module doc). No session state."""

    def __init__(self, checkpoint_dir: str | None, device: str, model: BatchConfig,
                 words: BatchConfig) -> None:
        self.engine = Engine.load(checkpoint_dir, device=device, stages=False)
        for method, config in ((self.predict, model), (self.encode_words, words)):
            method.set_max_batch_size(config.max_batch)
            method.set_batch_wait_timeout_s(config.max_wait_ms / 1000.0)
        self._counts = {"predict": _Counts(), "encode_words": _Counts()}
        log.info("replica ready: %s on %s", self.engine.model_name, self.engine.device)

    @serve.batch(max_batch_size=BatchConfig().max_batch,
                 batch_wait_timeout_s=BatchConfig().max_wait_ms / 1000.0)
    async def predict(self, windows: list[WindowArrays]) -> list[EngineOutput]:
        self._counts["predict"].add(len(windows))
        # in a thread, so the next batch gathers while this one runs
        return await asyncio.to_thread(self.engine.predict_batch, windows)

    @serve.batch(max_batch_size=BatchConfig().max_batch,
                 batch_wait_timeout_s=BatchConfig().max_wait_ms / 1000.0)
    async def encode_words(self, lists: list[tuple[Word, ...]]) -> list[np.ndarray]:
        self._counts["encode_words"].add(len(lists))
        return await asyncio.to_thread(self.engine.encode_words_batch, lists)

    def stats(self, method: str) -> ExecutorStats:
        """This replica's batches of ``method`` ("predict" or "encode_words") so far."""
        return self._counts[method].stats()

    def describe(self) -> tuple[str, str]:
        """(model name, device) of this replica."""
        return self.engine.model_name, self.engine.device


class RayModels:
    """`realtime.pipeline.ModelCalls` through the deployment's handle, for any number of
    pipelines in this process (thread-safe). ``submit`` is the asynchronous form of
    ``predict`` (a `Future`, as `BatchingExecutor.submit` gives), answered by a pool of at
    most ``max_waiting`` threads; past that many unanswered windows a submission is refused
    and counted, as the local executor's full queue is."""

    def __init__(self, handle, max_waiting: int = 256) -> None:
        self._handle = handle
        self._lock = threading.Lock()
        self._drops = {"predict": 0, "encode_words": 0}
        self._waiting = 0
        self._max_waiting = max_waiting
        self._pool = ThreadPoolExecutor(max_workers=max_waiting, thread_name_prefix="ray-client")

    def predict(self, text: np.ndarray, audio: np.ndarray, video: np.ndarray) -> EngineOutput:
        return self._call("predict", (text, audio, video))

    def encode_words(self, words: Sequence[Word]) -> np.ndarray:
        return self._call("encode_words", tuple(words))

    def submit(self, window: WindowArrays) -> Future:
        with self._lock:
            if self._waiting >= self._max_waiting:
                self._drops["predict"] += 1
                future: Future = Future()
                future.set_exception(ExecutorBusy(
                    f"ray client: {self._waiting} windows already wait (max_waiting)"))
                return future
            self._waiting += 1
        future = self._pool.submit(self._call, "predict", window)
        future.add_done_callback(self._answered)
        return future

    def _answered(self, _future: Future) -> None:
        with self._lock:
            self._waiting -= 1

    def _call(self, method: str, item):
        try:
            return getattr(self._handle, method).remote(item).result()
        except BackPressureError as exc:
            with self._lock:
                self._drops[method] += 1
            raise ExecutorBusy(f"the Ray deployment refused a call ({method}): {exc}") from None

    def stats(self, method: str = "predict") -> ExecutorStats:
        """The deployment's batches of ``method`` (one replica's, the one that answers) with
        this client's refused calls as ``drops``."""
        counts = self._handle.stats.remote(method).result()
        with self._lock:
            drops = self._drops[method]
        return ExecutorStats(counts.windows, counts.batches, drops, counts.failures,
                             counts.mean_batch, counts.max_batch)

    def describe(self) -> tuple[str, str]:
        return self._handle.describe.remote().result()

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


def deployment_options(config: RayServeConfig, num_gpus: float) -> dict:
    """Ray's options for `SentimentModels` (Ray's API takes them as keywords)."""
    largest = max(config.model.max_batch, config.words.max_batch)
    return {
        "name": "SentimentModels",
        "num_replicas": config.replicas,
        "max_ongoing_requests": 2 * largest,
        "max_queued_requests": max(config.model.max_queue, config.words.max_queue),
        "ray_actor_options": {"num_cpus": config.num_cpus, "num_gpus": num_gpus},
    }


class RayServe:
    """A connection to the deployment: ``models`` for the pipelines, ``close`` at the end."""

    def __init__(self, config: RayServeConfig, models: RayModels, owns_ray: bool) -> None:
        self.config, self.models, self.owns_ray = config, models, owns_ray

    @classmethod
    def connect(cls, config: RayServeConfig | None = None) -> RayServe:
        """Starts or joins Ray, deploys the models (replacing an older deployment of the same
        ``app_name``) and waits until they answer. Raises `RayServeError`."""
        config = config or RayServeConfig()
        owns_ray = not ray.is_initialized()  # else the caller's Ray, left as it is
        started_local = owns_ray and config.address is None
        try:
            if owns_ray:
                if config.address is None:
                    ray.init(include_dashboard=False, log_to_driver=False,
                             runtime_env={"env_vars": {"PYTHONPATH": _pythonpath()}})
                else:
                    ray.init(address=config.address, log_to_driver=False)
            serve.start(proxy_location="Disabled")
            has_gpu = ray.cluster_resources().get("GPU", 0) > 0
            num_gpus = (GPU_SHARE if has_gpu else 0.0) if config.num_gpus is None \
                else config.num_gpus
            app = SentimentModels.options(**deployment_options(config, num_gpus)).bind(
                None if config.checkpoint_dir is None else str(config.checkpoint_dir),
                "cuda" if num_gpus > 0 else "cpu", config.model, config.words)
            handle = serve.run(app, name=config.app_name, route_prefix=None)
        except Exception as exc:  # Ray's own errors are many; the caller gets one kind
            log.debug("ray serve failed", exc_info=True)
            if started_local:
                _shutdown_local()
            elif owns_ray:
                ray.shutdown()
            raise RayServeError(f"cannot serve the models on Ray: {type(exc).__name__}: "
                                f"{exc}") from exc
        models = RayModels(handle, max_waiting=min(config.model.max_queue, 1024))
        log.info("Ray Serve: %s on %s (%s)", *models.describe(),
                 "local instance" if started_local else config.address)
        return cls(config, models, owns_ray)

    def close(self) -> None:
        """Stops the client; a local instance it started is shut down (Serve, then Ray), a
        joined cluster keeps the deployment and is only disconnected; a Ray that was already
        running in this process is left as it was."""
        self.models.close()
        if self.owns_ray and self.config.address is None:
            _shutdown_local()
        elif self.owns_ray:
            ray.shutdown()

    def __enter__(self) -> RayServe:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _shutdown_local() -> None:
    try:
        serve.shutdown()
    finally:
        ray.shutdown()


def _pythonpath() -> str:
    """This project first, then whatever the driver had."""
    return os.pathsep.join(p for p in (str(PROJECT_ROOT), os.environ.get("PYTHONPATH")) if p)
